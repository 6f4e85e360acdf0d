"""The task classifier's model wrapper: a HF sequence classifier over named text segments.

:class:`TransformersClassifier` implements :class:`cda.protocols.Classifier` for Explain
(attribution) and Filter (label probabilities). Inputs are dicts of named segments in
task order: one segment is a single text, two a text pair, more than two the first
segment paired with the rest joined by the tokenizer's separator. Every sub-word
token is mapped back to (segment, character offsets), so attributions and
``seen_chars`` (how much of each segment survived truncation) refer to the user's text.

Loading a folder is :mod:`cda.explain.classifier_loading`, training one
:mod:`cda.explain.classifier_training`; :mod:`cda.explain.classifier` puts them together.

Examples:
    >>> clf  # as load_or_train_classifier returns it  # doctest: +ELLIPSIS
    TransformersClassifier(name='lora-minilm@...', labels=['Negative', 'Positive'], origin='trained')
    >>> clf.predict_proba([{"text": "A dull film."}])  # doctest: +ELLIPSIS
    [{'Negative': 0..., 'Positive': 0...}]
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import torch

from cda.config import LongInputs
from cda.errors import CdaError
from cda.explain.methods import TokenIds, make_method
from cda.protocols import Attribution, TokenScore
from cda.registry import ComponentSettings

log = logging.getLogger(__name__)

META_FILE = "cda_classifier.json"
#: How :meth:`TransformersClassifier.predict_proba` reads inputs longer than ``max_length``.
LONG_INPUTS: tuple[str, ...] = get_args(LongInputs)


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
        max_length: tokens per input; longer inputs are truncated (longest segment first) for
            attribution and training.
        batch_size: inputs per forward pass.
        long_inputs: how :meth:`predict_proba` reads an input longer than ``max_length``:
            ``"windows"`` averages the label probabilities of overlapping windows over its
            longest segment (so a verdict at the end of a long review counts), ``"truncate"``
            reads its first ``max_length`` tokens only.
        origin: where the weights came from (``"trained"``, ``"cache"`` or the loaded path).
        backbone: the base model folder/id a LoRA adapter applies to (written by :meth:`save`).

    Examples:
        >>> from transformers import AutoModelForSequenceClassification, AutoTokenizer
        >>> from cda.models import default_backbone
        >>> model = AutoModelForSequenceClassification.from_pretrained(default_backbone(), num_labels=2)
        >>> clf = TransformersClassifier(model, AutoTokenizer.from_pretrained(default_backbone()),
        ...                              ["Negative", "Positive"], "minilm-untrained", max_length=128)
        >>> clf.attribute([{"text": "A dull film."}], ["Negative"], "grad_x_input")[0].tokens[1]  # doctest: +ELLIPSIS
        TokenScore(segment='text', start=2, end=6, score=...)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: list[str],
        name: str,
        max_length: int = 256,
        batch_size: int = 32,
        origin: str = "",
        backbone: str | None = None,
        long_inputs: LongInputs = "windows",
    ) -> None:
        if long_inputs not in LONG_INPUTS:
            raise ClassifierError(f"{name}: long_inputs {long_inputs!r} is not one of {list(LONG_INPUTS)}")
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
        self.long_inputs = long_inputs
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
            >>> clf.encode([{"text": "Fine."}]).locations[0]
            [None, ('text', 0, 4), ('text', 4, 5), None]
        """
        memo_key = (self.max_length, [tuple(x.items()) for x in inputs])
        if self._memo is not None and self._memo[0] == memo_key:
            return self._memo[1]
        out = self._tokenize(inputs)
        n_truncated = sum(out.truncated)
        if n_truncated:
            read = (
                "their label probabilities average overlapping windows (classifier.long_inputs)"
                if self.long_inputs == "windows"
                else "the classifier reads their first tokens only (classifier.long_inputs: truncate)"
            )
            log.warning(
                "%d of %d inputs are longer than classifier.max_length=%d tokens and were truncated for training and "
                "attribution (record.seen_chars says how much of each segment the classifier saw); %s",
                n_truncated,
                len(inputs),
                self.max_length,
                read,
            )
        self._memo = (memo_key, out)
        return out

    def _tokenize(self, inputs: list[dict[str, str]]) -> Encoded:
        """:meth:`encode` without the memo and the warning."""
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
        return out

    def windows(self, segments: dict[str, str]) -> list[dict[str, str]]:
        """The input as overlapping windows that each fit ``max_length`` tokens.

        The longest segment (in tokens) is cut between words into pieces that overlap by about
        a quarter; every window holds one piece and the other segments whole. An input that
        fits is its own single window, as is one whose other segments leave less than a
        quarter of ``max_length`` for the piece (it stays truncated).

        Examples:
            >>> import copy
            >>> short = copy.copy(clf)
            >>> short.max_length = 128  # 126 tokens of text between [CLS] and [SEP]
            >>> [len(w["text"].split()) for w in short.windows({"text": " ".join(["fine"] * 300)})]
            [126, 126, 110]
            >>> clf.windows({"text": "A dull film."})
            [{'text': 'A dull film.'}]
        """
        text, pair, _ = self._parts(segments)
        full = len(self.tokenizer(text, pair, add_special_tokens=True)["input_ids"])
        if full <= self.max_length:
            return [dict(segments)]
        encodings = {name: self.tokenizer(value, add_special_tokens=False, return_offsets_mapping=True)
                     for name, value in segments.items()}  # fmt: skip
        longest = max(encodings, key=lambda name: len(encodings[name]["input_ids"]))
        cuts, words = encodings[longest]["offset_mapping"], encodings[longest].word_ids()
        room = self.max_length - (full - len(cuts))  # what the special tokens and other segments leave
        if room < self.max_length // 4:
            return [dict(segments)]

        def word_start(k: int) -> int:  # the first token of the word that token k belongs to
            while 0 < k < len(cuts) and words[k] == words[k - 1]:
                k -= 1
            return k

        out, start = [], 0
        while True:
            end = len(cuts) if start + room >= len(cuts) else word_start(start + room)
            end = end if end > start else start + room  # a word longer than a window is cut
            piece = segments[longest][cuts[start][0] : cuts[end - 1][1]]
            out.append({name: piece if name == longest else value for name, value in segments.items()})
            if end == len(cuts):
                return out
            start = max(word_start(end - room // 4), start + 1)

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
            >>> clf.predict_proba([{"text": "A wonderful film."}])  # doctest: +ELLIPSIS
            [{'Negative': 0..., 'Positive': 0...}]
        """
        if not inputs:
            return []
        encoded = self.encode(inputs)
        if self.long_inputs == "windows" and any(encoded.truncated):
            owners, shown = [], []
            for i, (segments, truncated) in enumerate(zip(inputs, encoded.truncated)):
                parts = self.windows(segments) if truncated else [segments]
                owners += [i] * len(parts)
                shown += parts
            encoded = self._tokenize(shown)
        else:
            owners = list(range(len(inputs)))
        sums = torch.zeros((len(inputs), len(self.labels)), dtype=torch.float64)
        counts = torch.zeros(len(inputs), dtype=torch.float64)
        self.model.eval()
        with torch.no_grad():
            for idx in self.batches(encoded):
                batch, _ = self.collate(encoded, idx)
                probs = self.model(**batch).logits.float().softmax(-1).cpu().double()
                for row, i in enumerate(idx):
                    sums[owners[i]] += probs[row]
                    counts[owners[i]] += 1
        means = (sums / counts[:, None]).tolist()
        return [dict(zip(self.labels, row)) for row in means]

    def attribute(
        self, inputs: list[dict[str, str]], targets: list[str], method: str | ComponentSettings = "grad_x_input"
    ) -> list[Attribution]:
        """Signed per-token saliency of each input toward its target label.

        Args:
            inputs: segment dicts in task order.
            targets: one label per input.
            method: a registered attribution method (``grad_x_input``, ``integrated_gradients``,
                ``occlusion``) by name or as an ``explain.method`` section with its settings.

        Returns:
            One :class:`Attribution` per input: scores of sub-word tokens (special tokens
            left out) with character offsets in their segment, and ``seen_chars``.

        Examples:
            >>> a = clf.attribute([{"text": "A dull film."}], ["Negative"], "occlusion")[0]
            >>> [(t.start, t.end) for t in a.tokens], a.seen_chars
            ([(0, 1), (2, 6), (7, 11), (11, 12)], {'text': 12})
        """
        scorer = make_method(method)
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
        ids = TokenIds(pad=self.tokenizer.pad_token_id, mask=mask_id, batch_size=self.batch_size)
        out: list[Attribution | None] = [None] * len(inputs)
        self.model.eval()
        for idx in self.batches(encoded):
            batch, fixed = self.collate(encoded, idx)
            tgt = torch.tensor([target_ids[i] for i in idx], device=self.device)
            scores = scorer.scores(self.model, batch, tgt, fixed, ids)
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
            >>> folder = clf.save(tmp_dir / "classifier")
            >>> (folder / "cda_classifier.json").is_file(), (folder / "adapter_config.json").is_file()
            (True, True)
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
