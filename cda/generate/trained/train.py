"""Fine-tune the counterfactual generator: a LoRA adapter on the generator LLM (AutoCAD).

:func:`load_or_train_generator` is what ``cda train-generator`` and ``cda build`` (with a
``generator`` section) call: it collects the examples (:mod:`cda.generate.trained.examples`),
trains a peft LoRA adapter with ``NLL + α·UL`` under accelerate, and keeps the adapter in
the cache under a hash of everything that changes it (examples, base model, settings,
seed), so a rerun loads it. The adapter folder is a plain peft folder that vLLM
(``LoRARequest``, ``vllm serve --lora-modules``) and transformers + peft load, plus
``cda_generator.json`` (what it was trained on, how long it took) and ``loss.jsonl``.

Examples:
    >>> from cda import load_config
    >>> cfg = load_config("configs/imdb_trained.yaml")  # doctest: +SKIP
    >>> adapter = load_or_train_generator(cfg, Cache(cfg.resolved_cache_dir()))  # doctest: +SKIP
    >>> sorted(p.name for p in adapter.iterdir())  # doctest: +SKIP
    ['.complete', 'adapter_config.json', 'adapter_model.safetensors', 'cda_generator.json', 'loss.jsonl']
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from cda.cache import Cache, fingerprint
from cda.config import Config
from cda.errors import CdaError
from cda.generate.trained.examples import TrainingExample, pair_examples, rewrite_examples, self_supervised_examples
from cda.records import Record

log = logging.getLogger(__name__)

# Bump when example building or training changes what an adapter learns.
GENERATOR_TRAIN_VERSION = 1
META_FILE = "cda_generator.json"
LOSS_FILE = "loss.jsonl"


class GeneratorTrainingError(CdaError, ValueError):
    """The generator cannot be trained as configured (no examples, unreadable pairs)."""


def check_generator_template(config: Config) -> None:
    """The prompt template, windows and blanks fit the generator section, checked before any model loads.

    * An adapter at ``generator.path`` only knows the answers and template it was trained with (its
      ``cda_generator.json``), so ``edit.strategy`` must ask for those answers (:func:`answer_format`)
      and ``generate.template`` must name that template.
    * A rewrite generator chooses what to change and learns from human pairs: its strategy must not
      hold the edit to Explain's spans (``anchor: false``; a sentence rewriter may be asked only the
      sentences that hold spans), and it has no self-supervised examples.
    * The adapter's prompts showed ``generator.context_words`` words around each blank and at most
      ``generator.max_blanks`` blanks: generation must show the same windows and no more blanks.
    * Self-supervised examples answer with the blanked words, so their template must not show
      those words (``trained_infill.v2`` does: it is for human pairs), or the generator learns to copy.

    Raises:
        GeneratorTrainingError: one does not hold (the message says what to set).
    """
    from cda.generate.prompts import TRAINED_TEMPLATE, shows_replaced_words, template_name

    generator = config.generator
    if generator is None:
        return
    name = template_name(config)
    meta = adapter_meta(Path(generator.path).expanduser()) if generator.path else {}
    answers = answer_format(config)
    learnt = meta.get("answers", "infill")
    if generator.path is not None and answers != learnt:
        raise GeneratorTrainingError(
            f"generator.path {generator.path!r} was trained to answer with {_FORMATS[learnt]}, but edit.strategy "
            f"{config.edit.strategy.name!r} asks for {_FORMATS[answers]}; set edit.strategy: "
            + _STRATEGY_FOR[learnt]
        )
    trained_with = meta.get("template")
    if trained_with is not None and trained_with != name:
        raise GeneratorTrainingError(
            f"generator.path {generator.path!r} was trained with the prompt template {trained_with!r}, but "
            f"generate.template is {name!r}; set generate.template: {trained_with} (an adapter knows only its own format)"
        )
    if answers in REWRITES:
        if answers == "rewrite" and getattr(config.edit.strategy, "anchor", True):
            raise GeneratorTrainingError(
                "A trained rewrite generator chooses what to change (its prompt shows no spans), so the edit cannot be "
                "held to Explain's spans; set edit.strategy: {name: rewrite, anchor: false} (filter.checks.minimality "
                "bounds the edit)"
            )
        if generator.path is None and generator.train is not None and generator.train.self_supervised:
            raise GeneratorTrainingError(
                "generator.train.self_supervised needs blanks to mask (edit.strategy: infill); a rewrite generator "
                "learns from human pairs only (generator.train.pairs)"
            )
        return  # no windows, no blanks
    words = meta.get("context_words")
    if words is not None and words != generator.context_words:
        raise GeneratorTrainingError(
            f"generator.path {generator.path!r} was trained with generator.context_words: {words} (words shown around "
            f"each blank), but the config has {generator.context_words}; set generator.context_words: {words}"
        )
    most = meta.get("max_blanks")
    if most is not None and generator.max_blanks > most:
        raise GeneratorTrainingError(
            f"generator.path {generator.path!r} was trained with at most {most} blanks per prompt, but "
            f"generator.max_blanks is {generator.max_blanks}; set generator.max_blanks to at most {most}"
        )
    if generator.path is None and generator.train is not None and generator.train.self_supervised and shows_replaced_words(config):
        raise GeneratorTrainingError(
            f"generator.train.self_supervised: the template {name!r} shows the words each blank replaces, and "
            "self-supervised examples answer with those words, so the generator would learn to copy them; "
            f"use generate.template: {TRAINED_TEMPLATE} (or train from pairs only)"
        )


_FORMATS = {"infill": "one replacement per blank", "rewrite": "the whole edited segment", "sentences": "one rewritten sentence"}
_STRATEGY_FOR = {
    "infill": "infill (or a strategy built on it)",
    "rewrite": "{name: rewrite, anchor: false}",
    "sentences": "{name: rewrite, unit: sentence, anchor: false}",
}
#: The answer formats that rewrite text rather than fill blanks (no windows, no blanks).
REWRITES = ("rewrite", "sentences")


def answer_format(config: Config) -> str:
    """What a trained generator answers for ``edit.strategy`` (the strategy's ``trained_answers``):
    ``"infill"`` (one replacement per blank: ``infill`` and the strategies built on it, ``lexicon``),
    ``"rewrite"`` (the segment) or ``"sentences"`` (one sentence: ``rewrite`` with ``unit: sentence``).

    Raises:
        GeneratorTrainingError: the strategy asks for neither (``entity_swap``).

    Examples:
        >>> from cda.config import config_from_dict
        >>> task = {"segments": {"text": "Text"}, "label_column": "y", "labels": ["a", "b"]}
        >>> [answer_format(config_from_dict({"data": {"path": "x.tsv"}, "task": task, "edit": {"strategy": s}}))
        ...  for s in ("infill", {"name": "rewrite", "anchor": False}, {"name": "rewrite", "unit": "sentence"})]
        ['infill', 'rewrite', 'sentences']
    """
    from cda.edit.strategies import make_strategy

    strategy = make_strategy(config)
    if strategy.trained_answers is not None:
        return strategy.trained_answers
    raise GeneratorTrainingError(
        f"edit.strategy {strategy.name!r} cannot use a trained generator (generator section); allowed: infill "
        "(or a strategy built on it, such as lexicon) or rewrite"
    )


# ---------------------------------------------------------------------- examples
def human_pairs(config: Config) -> list[tuple[Record, dict[str, str], str, str]]:
    """``(original, revised segments, target label, edited segment)`` from ``generator.train.pairs``
    (both directions of every pair; :func:`cda.generate.pairs.read_pairs`).

    Raises:
        FileNotFoundError: a pairs file does not exist.
        GeneratorTrainingError: nothing pairs up.
    """
    from cda.generate.pairs import PairsError, read_pairs

    assert config.generator is not None and config.generator.train is not None
    spec = config.generator.train.pairs
    if spec is None:
        return []
    try:
        return read_pairs(spec, config, "generator.train.pairs")
    except PairsError as e:
        raise GeneratorTrainingError(str(e)) from None


def collect_examples(config: Config, explained: Callable[[], list[Record]] | None = None) -> list[TrainingExample]:
    """All training examples ``generator.train`` asks for.

    Args:
        config: the run config (``generator``, ``task``, ``edit``).
        explained: with ``self_supervised``, returns the input records with their rationale
            spans (the Runner runs Explain on them).
    """
    assert config.generator is not None and config.generator.train is not None
    check_generator_template(config)
    train = config.generator.train
    examples: list[TrainingExample] = []
    from_pair = rewrite_examples if answer_format(config) in REWRITES else pair_examples
    for original, revised, target, segment in human_pairs(config):
        examples += from_pair(original, revised, target, segment, config)
    if train.self_supervised:
        if explained is None:
            raise GeneratorTrainingError("generator.train.self_supervised needs the input records and a classifier to explain them")
        for record in explained():
            examples += self_supervised_examples(record, config)
    if not examples:
        raise GeneratorTrainingError(
            "No training examples for the generator: the pairs have no word-level edits that fit the answer format "
            "and self-supervised masking found no rationale spans"
        )
    return examples


# ---------------------------------------------------------------------- encoding
def _chat_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt as the generation backends send it: the model's chat template, user turn only."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    else:
        text = prompt
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode(tokenizer: Any, example: TrainingExample) -> tuple[list[int], list[int], list[int]]:
    """``(input ids, likely mask, unlikely mask)``: masks mark the answer tokens each loss term uses.

    A likely example trains every answer token and the end-of-turn token; an unlikely one
    penalises only its replacement tokens.
    """
    ids = list(_chat_ids(tokenizer, example.prompt))
    likely, unlikely = [0] * len(ids), [0] * len(ids)
    for text, is_value in example.pieces():
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        likely += [0 if example.unlikely else 1] * len(piece)
        unlikely += [1 if (example.unlikely and is_value) else 0] * len(piece)
    if not example.unlikely and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        likely.append(1)
        unlikely.append(0)
    return ids, likely, unlikely


# ---------------------------------------------------------------------- training
def _training_key(examples: list[TrainingExample], config: Config, base_name: str) -> dict[str, Any]:
    assert config.generator is not None and config.generator.train is not None
    train = config.generator.train
    return {
        "version": GENERATOR_TRAIN_VERSION,
        "examples": fingerprint([[e.prompt, e.answer, e.unlikely] for e in examples]),
        "base": base_name,
        "train": train.model_dump(exclude={"pairs", "self_supervised", "self_supervised_limit"}),
        "seed": config.seed,
    }


def train_generator(examples: list[TrainingExample], config: Config, output: Path) -> dict[str, Any]:
    """Train a LoRA adapter on ``examples`` and save it (peft format) into ``output``.

    Batches are drawn by a seeded generator from the examples; sequences longer than
    ``generator.train.max_length`` tokens are skipped (counted in the metadata).

    Returns:
        The metadata written to ``cda_generator.json``.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    from cda.generate.model_files import resolve_model_name
    from cda.generate.prompts import template_name
    from cda.generate.trained.loss import generator_loss
    from cda.generate.transformers_backend import TransformersGenerator
    from cda.models import set_threads

    assert config.generator is not None and config.generator.train is not None
    train = config.generator.train
    set_threads(config.threads)
    set_seed(config.seed)
    folder = TransformersGenerator.from_config(config).model_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded = [encode(tokenizer, e) for e in examples]
    kept = [i for i, (ids, _, _) in enumerate(encoded) if len(ids) <= train.max_length]
    if not kept:
        raise GeneratorTrainingError(f"Every training example is longer than generator.train.max_length={train.max_length} tokens")
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    lora = train.lora
    layers = base.config.num_hidden_layers
    top = None if train.top_layers is None or train.top_layers >= layers else list(range(layers - train.top_layers, layers))
    model = get_peft_model(base, PeftLoraConfig(
        task_type=TaskType.CAUSAL_LM, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules or _linear_modules(base),
        layers_to_transform=top,
    ))  # fmt: skip
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.05 * train.max_steps), train.max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device = accelerator.device
    generator = torch.Generator().manual_seed(config.seed)
    log.info("Training the generator on %d examples (%d too long): %d steps, batch %d, lr %g, LoRA r=%d, UL weight %g",
             len(kept), len(examples) - len(kept), train.max_steps, train.batch_size, train.learning_rate, lora.r,
             train.unlikelihood)  # fmt: skip
    model.train()
    losses: list[dict[str, float]] = []
    start, step, order = time.perf_counter(), 0, []
    log_every = max(1, train.max_steps // 10)
    with tqdm(total=train.max_steps, desc="Train generator", unit="step", disable=None) as bar:
        while step < train.max_steps:
            if not order:
                order = [kept[i] for i in torch.randperm(len(kept), generator=generator).tolist()]
            batch, order = order[: train.batch_size], order[train.batch_size :]
            ids, attention, positions, likely, unlikely = (t.to(device) for t in _collate([encoded[i] for i in batch], tokenizer.pad_token_id))
            # Logits only from the position before the first answer token on (answers end at the right edge).
            keep = ids.shape[1] - int(((likely + unlikely) > 0).float().argmax(dim=1).min().item()) + 1
            keep = min(keep, ids.shape[1])
            logits = model(input_ids=ids, attention_mask=attention, position_ids=positions, logits_to_keep=keep).logits
            cut = ids.shape[1] - keep + 1
            loss, nll, ul = generator_loss(logits[:, :-1], ids[:, cut:], likely[:, cut:], unlikely[:, cut:], train.unlikelihood)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append({"step": step, "loss": float(loss.detach()), "nll": nll, "ul": ul})
            bar.set_postfix(nll=f"{nll:.3f}", ul=f"{ul:.3f}")
            bar.update(1)
            if step % log_every == 0:
                recent = losses[-log_every:]
                log.info("step %d/%d NLL %.3f UL %.3f (%.0fs)", step, train.max_steps,
                         sum(r["nll"] for r in recent) / len(recent), sum(r["ul"] for r in recent) / len(recent),
                         time.perf_counter() - start)  # fmt: skip
    seconds = time.perf_counter() - start
    output.mkdir(parents=True, exist_ok=True)
    accelerator.unwrap_model(model).save_pretrained(str(output))
    with (output / LOSS_FILE).open("w", encoding="utf-8") as f:
        for row in losses:
            f.write(json.dumps(row) + "\n")
    tail = losses[-max(1, len(losses) // 10) :]
    answers = answer_format(config)
    meta = {
        "base_model": resolve_model_name(config.generate.model),
        "template": template_name(config),
        "answers": answers,
        "context_words": None if answers in REWRITES else config.generator.context_words,
        "max_blanks": None if answers in REWRITES else config.generator.max_blanks,
        "examples": {
            "used": len(kept),
            "too_long": len(examples) - len(kept),
            "likely": sum(not examples[i].unlikely for i in kept),
            "unlikely": sum(examples[i].unlikely for i in kept),
            "from_pairs": sum(examples[i].source == "pairs" for i in kept),
            "self_supervised": sum(examples[i].source == "self_supervised" for i in kept),
        },
        "steps": train.max_steps,
        "epochs": round(train.max_steps * train.batch_size / len(kept), 3),
        "seconds": round(seconds, 1),
        "final_nll": round(sum(r["nll"] for r in tail) / len(tail), 4),
        "final_ul": round(sum(r["ul"] for r in tail) / len(tail), 4),
        "seed": config.seed,
    }
    (output / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log.info("Trained the generator in %.0fs (%.2fs/step), final NLL %.3f", seconds, seconds / train.max_steps, meta["final_nll"])
    return meta


def _collate(encoded: list[tuple[list[int], list[int], list[int]]], pad_id: int) -> tuple[Any, ...]:
    """Left-padded ``(ids, attention mask, position ids, likely mask, unlikely mask)`` tensors."""
    import torch

    width = max(len(seq) for seq, _, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    likely = torch.zeros((len(encoded), width))
    unlikely = torch.zeros((len(encoded), width))
    for row, (seq, lk, ul) in enumerate(encoded):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        attention[row, width - len(seq) :] = 1
        likely[row, width - len(seq) :] = torch.tensor(lk, dtype=torch.float)
        unlikely[row, width - len(seq) :] = torch.tensor(ul, dtype=torch.float)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return ids, attention, positions, likely, unlikely


def _linear_modules(model: Any) -> list[str] | str:
    """The attention and MLP projections LoRA adapts (Llama/Mistral/Qwen/Gemma names), else every linear layer."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    wanted = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return [n for n in wanted if n in names] or "all-linear"


def load_or_train_generator(
    config: Config, cache: Cache, explained: Callable[[], list[Record]] | None = None
) -> Path:
    """The trained adapter's folder: ``generator.path``, else the cached one, else trained now.

    Raises:
        GeneratorTrainingError: no examples, or ``generator.path`` is not an adapter folder.
    """
    from cda.generate.model_files import resolve_model_name

    assert config.generator is not None
    if config.generator.path is not None:
        path = Path(config.generator.path).expanduser()
        if not (path / "adapter_config.json").is_file():
            raise GeneratorTrainingError(
                f"generator.path {str(path)!r} is not a LoRA adapter folder (no adapter_config.json); "
                "write one with `cda train-generator --output DIR`"
            )
        return path
    examples = collect_examples(config, explained)
    key = cache.key("generator", _training_key(examples, config, resolve_model_name(config.generate.model)))
    with cache.lock(key):  # another run training the same adapter: wait for it, then use its result
        folder = cache.folder(key)
        if folder is not None:
            log.info("Loading the trained generator from the cache: %s", folder)
            return folder
        staging = cache.staging_folder(key)
        train_generator(examples, config, staging)
        cache.commit_folder(staging)
    return staging


def copy_adapter(adapter: Path, output: Path) -> Path:
    """Copy an adapter folder (without the cache's marker) to ``output`` and return it."""
    if output.exists():
        shutil.rmtree(output)
    shutil.copytree(adapter, output, ignore=shutil.ignore_patterns(".complete"))
    return output


def adapter_meta(adapter: Path) -> dict[str, Any]:
    """The ``cda_generator.json`` of an adapter folder (``{}`` for a foreign adapter)."""
    path = Path(adapter) / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

