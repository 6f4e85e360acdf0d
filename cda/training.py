"""Helpers a training script calls on a dataset exported by ``cda build``.

The exported dataset holds the user's rows (``cda_is_counterfactual`` false) followed by
the accepted counterfactuals, each pointing at its original through
``cda_original_index``. These helpers select either kind, mix them at a ratio, and pair
each counterfactual with its original so that :class:`CounterfactualPairCollator` can
put both in the same batch (for paired or contrastive objectives).

Examples:
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({
    ...     "text": ["a dull film", "a great film"], "label": ["Negative", "Positive"],
    ...     "cda_is_counterfactual": [False, True], "cda_original_index": [0, 0]})
    >>> len(originals(ds)), len(counterfactuals(ds))
    (1, 1)
    >>> pair_counterfactuals(ds)[0]["original_text"]
    'a dull film'
"""

from __future__ import annotations

import logging
import random
from typing import Any, Sequence

import datasets

from cda.errors import CdaError

log = logging.getLogger(__name__)

IS_COUNTERFACTUAL = "cda_is_counterfactual"
ORIGINAL_INDEX = "cda_original_index"
PREFIX = "original_"


class NotCdaDatasetError(CdaError, ValueError):
    """The dataset lacks the ``cda_`` columns that ``cda build`` writes."""


def require_cda_columns(dataset: datasets.Dataset, columns: Sequence[str] = (IS_COUNTERFACTUAL, ORIGINAL_INDEX)) -> None:
    """Raise :class:`NotCdaDatasetError` naming the missing ``cda_`` columns.

    Examples:
        >>> try:
        ...     require_cda_columns(datasets.Dataset.from_dict({"text": ["x"]}))
        ... except NotCdaDatasetError as e:
        ...     print(str(e)[:60])
        The dataset has no column(s) ['cda_is_counterfactual', 'cda_
    """
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise NotCdaDatasetError(
            f"The dataset has no column(s) {missing}: expected a dataset written by `cda build` "
            f"(its dataset/ folder). It has columns {dataset.column_names}."
        )


def _split_indices(dataset: datasets.Dataset) -> tuple[list[int], list[int]]:
    require_cda_columns(dataset, (IS_COUNTERFACTUAL,))
    flags = dataset[IS_COUNTERFACTUAL]
    return [i for i, f in enumerate(flags) if not f], [i for i, f in enumerate(flags) if f]


def originals(dataset: datasets.Dataset) -> datasets.Dataset:
    """The user's original rows.

    Examples:
        >>> list(originals(augmented)["Text"])  # an exported dataset: two reviews, one counterfactual of each
        ['A dull film.', 'Loved it.']
    """
    return dataset.select(_split_indices(dataset)[0])


def counterfactuals(dataset: datasets.Dataset) -> datasets.Dataset:
    """The generated counterfactual rows.

    Examples:
        >>> list(counterfactuals(augmented)["cda_target_label"])
        ['Positive', 'Negative']
    """
    return dataset.select(_split_indices(dataset)[1])


def mix(
    dataset: datasets.Dataset, counterfactuals_per_original: float = 1.0, seed: int = 0, shuffle: bool = True
) -> datasets.Dataset:
    """All originals plus a seeded sample of ``round(ratio * originals)`` counterfactuals.

    Args:
        dataset: an exported dataset.
        counterfactuals_per_original: how many counterfactuals to add per original row
            (``0`` gives the originals only; more than there are adds all, with a warning).
        seed: seeds the sample and the shuffle.
        shuffle: shuffle the mixed rows (else originals first, then counterfactuals).

    Examples:
        >>> len(mix(augmented, counterfactuals_per_original=0.5))  # 2 originals + 1 counterfactual
        3
    """
    if counterfactuals_per_original < 0:
        raise ValueError(f"counterfactuals_per_original must be >= 0, got {counterfactuals_per_original}")
    orig, cf = _split_indices(dataset)
    wanted = round(counterfactuals_per_original * len(orig))
    rng = random.Random(seed)
    if wanted > len(cf):
        log.warning("mix: %d counterfactuals wanted (%.2f per original) but only %d exist; using all", wanted,
                    counterfactuals_per_original, len(cf))  # fmt: skip
        wanted = len(cf)
    chosen = sorted(rng.sample(cf, wanted))
    indices = orig + chosen
    if shuffle:
        rng.shuffle(indices)
    return dataset.select(indices)


def pair_counterfactuals(
    dataset: datasets.Dataset, columns: Sequence[str] | None = None, prefix: str = PREFIX
) -> datasets.Dataset:
    """One row per counterfactual, with its original's values in ``<prefix><column>`` columns.

    Args:
        dataset: an exported dataset (originals and counterfactuals).
        columns: the original's columns to copy (default: every column not starting with ``cda_``).
        prefix: prefix of the copied columns.

    Raises:
        NotCdaDatasetError: the ``cda_`` columns are missing.
        ValueError: no counterfactual's original is in the dataset. Counterfactuals whose
            original is missing are dropped with a warning that counts them.

    Examples:
        >>> pairs = pair_counterfactuals(augmented)
        >>> pairs[0]["original_Text"], pairs[0]["Text"]
        ('A dull film.', 'A great film.')
    """
    require_cda_columns(dataset)
    columns = list(columns) if columns is not None else [c for c in dataset.column_names if not c.startswith("cda_")]
    unknown = [c for c in columns if c not in dataset.column_names]
    if unknown:
        raise ValueError(f"pair_counterfactuals: unknown column(s) {unknown}; the dataset has {dataset.column_names}")
    orig, cf = _split_indices(dataset)
    index = dataset[ORIGINAL_INDEX]
    row_of = {index[i]: i for i in orig}
    kept = [i for i in cf if index[i] in row_of]
    if len(kept) < len(cf):
        log.warning("pair_counterfactuals: %d of %d counterfactuals have no original in the dataset; dropped",
                    len(cf) - len(kept), len(cf))  # fmt: skip
    if cf and not kept:
        raise ValueError("pair_counterfactuals: no counterfactual's cda_original_index matches an original row")
    pairs = dataset.select(kept)
    for column in columns:
        values = dataset[column]
        pairs = pairs.add_column(prefix + column, [values[row_of[index[i]]] for i in kept])
    return pairs


class CounterfactualPairCollator:
    """Batches each original next to its counterfactual, tokenized, for transformers ``Trainer``.

    Each feature is a row of :func:`pair_counterfactuals`; a batch of ``B`` pairs becomes
    ``2B`` rows ordered ``original_1, counterfactual_1, original_2, ...``, so row ``2k``
    and ``2k+1`` are a pair (for a paired loss in ``compute_loss``). ``Trainer`` drops
    columns its model does not take unless ``TrainingArguments(remove_unused_columns=False)``.

    Args:
        tokenizer: an HF tokenizer.
        text_columns: one text column, or two for text pairs (premise, hypothesis).
        label_column: the label column (string labels are mapped through ``labels``).
        labels: label names in the model's output order.
        max_length: tokens per input (longer ones are truncated).
        prefix: the prefix :func:`pair_counterfactuals` gave the original's columns.

    Examples:
        >>> pairs = pair_counterfactuals(augmented)
        >>> collator = CounterfactualPairCollator(tokenizer, ["Text"], "Sentiment", ["Negative", "Positive"])
        >>> batch = collator([pairs[0], pairs[1]])  # original 1, counterfactual 1, original 2, counterfactual 2
        >>> batch["labels"].tolist()
        [0, 1, 1, 0]
    """

    def __init__(
        self, tokenizer: Any, text_columns: Sequence[str], label_column: str, labels: Sequence[str],
        max_length: int = 256, prefix: str = PREFIX,
    ) -> None:  # fmt: skip
        if len(text_columns) not in (1, 2):
            raise ValueError(f"text_columns must name one or two columns, got {list(text_columns)}")
        self.tokenizer = tokenizer
        self.text_columns = list(text_columns)
        self.label_column = label_column
        self.labels = list(labels)
        self.max_length = max_length
        self.prefix = prefix

    def _label(self, value: Any) -> int:
        if isinstance(value, int):
            return value
        if value not in self.labels:
            raise ValueError(f"Label {value!r} is not one of {self.labels}")
        return self.labels.index(value)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows: list[tuple[list[str], Any]] = []
        for f in features:
            rows.append(([f[self.prefix + c] for c in self.text_columns], f[self.prefix + self.label_column]))
            rows.append(([f[c] for c in self.text_columns], f[self.label_column]))
        first = [texts[0] for texts, _ in rows]
        second = [texts[1] for texts, _ in rows] if len(self.text_columns) == 2 else None
        batch = self.tokenizer(
            first, second, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        batch["labels"] = torch.tensor([self._label(label) for _, label in rows], dtype=torch.long)
        return dict(batch)
