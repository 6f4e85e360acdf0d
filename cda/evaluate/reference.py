"""Pair human (reference) counterfactuals with the originals of a cda dataset.

Two ways to pair, both checked and counted:

* **by key**: a column both files share (Kaushik sentiment's ``batch_id``; the exported
  dataset keeps the user's columns). In the reference, the rows with the original's key
  and another label are its human counterfactuals.
* **by position**: reference rows ``k*i .. k*i+k-1`` belong to original ``i`` (Kaushik NLI's
  revised files, ``k = 2``: one per other label). Each pairing is verified by overlap: a
  segment is unchanged, or the texts are within a token edit distance of 0.5.

Examples:
    >>> from cda.data import load_table, to_records
    >>> table = load_table(DataConfig(path="demo/imdb_pairs.tsv", dedupe_on="batch_id"))  # the first row of each pair
    >>> originals = to_records(table, cfg.task)
    >>> reference = load_reference("demo/imdb_pairs.tsv", cfg.task)
    >>> pairing = pair_reference(originals, table["batch_id"], reference, cfg.task, key="batch_id")
    >>> pairing.paired, pairing.unpaired
    (400, 0)
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import datasets

from cda.config import DataConfig, TaskConfig
from cda.errors import CdaError
from cda.evaluate.build_output import Counterfactual
from cda.records import Record

log = logging.getLogger(__name__)

# Position pairing accepts a reference row when the texts are at most this far apart.
MAX_POSITION_DISTANCE = 0.5


class ReferencePairingError(CdaError, ValueError):
    """The reference cannot be used: unreadable, wrong columns, or nothing pairs up."""


@dataclass
class ReferencePairing:
    """Which originals got human counterfactuals, and why the others did not."""

    method: str
    originals: int
    counterfactuals: list[Counterfactual] = field(default_factory=list)
    # Why originals (by key) or reference rows (by position) did not pair, with counts.
    problems: Counter = field(default_factory=Counter)

    @property
    def paired(self) -> int:
        """Originals with at least one human counterfactual."""
        return len({c.original_index for c in self.counterfactuals})

    @property
    def unpaired(self) -> int:
        return self.originals - self.paired

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "originals": self.originals,
            "paired": self.paired,
            "unpaired": self.unpaired,
            "human_counterfactuals": len(self.counterfactuals),
            "problems": dict(self.problems.most_common()),
        }


def load_reference(path: str | Path, task: TaskConfig) -> datasets.Dataset:
    """Read a reference file (any format :func:`cda.data.load_table` reads) and check its columns.

    Raises:
        FileNotFoundError: no such file.
        ReferencePairingError: the task's text or label columns are missing.

    Examples:
        >>> load_reference("demo/imdb_pairs.tsv", cfg.task).num_rows
        800
    """
    from cda.data import load_table

    table = load_table(DataConfig(path=str(path)))
    needed = [*task.segments.values(), task.label_column]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ReferencePairingError(
            f"Reference {path} lacks column(s) {missing} of the task (segments {dict(task.segments)}, label "
            f"{task.label_column!r}); it has {table.column_names}"
        )
    return table


def reference_rows(table: datasets.Dataset, task: TaskConfig) -> list[tuple[dict[str, str], str]]:
    """``(segments, label)`` of every reference row, cleaned as the task cleans text."""
    from cda.data import label_names
    from cda.tasks import clean_text

    labels = label_names(table, task)
    columns = {name: table[col] for name, col in task.segments.items()}
    return [
        ({name: clean_text(task, "" if col[i] is None else str(col[i])) for name, col in columns.items()}, labels[i])
        for i in range(len(table))
    ]


def guess_key(dataset_columns: Sequence[str], reference_columns: Sequence[str], task: TaskConfig) -> str | None:
    """The one column (not a task or ``cda_`` column) both tables have, else ``None``.

    Raises:
        ReferencePairingError: several columns qualify; the caller must choose one.
    """
    task_columns = {*task.segments.values(), task.label_column}
    shared = [c for c in dataset_columns if c in reference_columns and c not in task_columns and not c.startswith("cda_")]
    if len(shared) > 1:
        raise ReferencePairingError(f"Reference and dataset share several key columns {shared}; choose one with reference_key")
    return shared[0] if shared else None


def pair_reference(
    originals: Sequence[Record],
    keys: Sequence[object] | None,
    reference: datasets.Dataset,
    task: TaskConfig,
    key: str | None = None,
    per_original: int = 2,
) -> ReferencePairing:
    """Find each original's human counterfactuals in ``reference``.

    Args:
        originals: the dataset's originals; ``index`` is their ``cda_original_index``.
        keys: with ``key``, each original's value in the key column (same order).
        reference: the reference table (see :func:`load_reference`).
        task: the task (segments, label column, labels, text cleaning).
        key: pair by this column; ``None`` pairs by position.
        per_original: reference rows per original when pairing by position.

    Raises:
        ReferencePairingError: no original pairs up (the message says how many were tried and why).

    Examples:
        >>> from cda import load_config
        >>> from cda.data import load_table, to_records
        >>> nli = load_config("configs/snli.yaml")
        >>> originals = to_records(load_table(nli.data), nli.task)
        >>> ref = load_reference("demo/snli_revised_hypothesis.tsv", nli.task)  # rows 2i, 2i+1 revise original i
        >>> pair_reference(originals, None, ref, nli.task).method
        'position:2'
    """
    rows = reference_rows(reference, task)
    if key is not None:
        if keys is None or len(keys) != len(originals):
            raise ValueError("pair_reference by key needs one key value per original")
        pairing = _pair_by_key(originals, keys, rows, reference[key], task, key)
    else:
        pairing = _pair_by_position(originals, rows, task, per_original)
    if not pairing.counterfactuals:
        reasons = ", ".join(f"{n} {why}" for why, n in pairing.problems.most_common()) or "no rows"
        hint = (
            f"pairing by column {key!r}" if key is not None
            else f"pairing by position ({per_original} reference rows per original, checked by text overlap); "
            "give reference_key if both files share an id column"
        )  # fmt: skip
        raise ReferencePairingError(f"None of the {len(originals)} originals paired with the reference ({hint}): {reasons}")
    if pairing.unpaired:
        log.warning(
            "Reference: %d of %d originals paired (%s); %d did not: %s",
            pairing.paired, pairing.originals, pairing.method, pairing.unpaired, dict(pairing.problems),
        )  # fmt: skip
    return pairing


def _edited_segment(original: dict[str, str], revised: dict[str, str]) -> str | None:
    for name in original:
        if original[name].strip() != revised.get(name, "").strip():
            return name
    return None


def _add(pairing: ReferencePairing, record: Record, revised: dict[str, str], label: str, task: TaskConfig) -> str | None:
    """Add one human counterfactual; return why it was rejected, if it was."""
    if label not in task.labels:
        return f"label not in task.labels {task.labels}"
    if label == record.label:
        return "same label as the original"
    segment = _edited_segment(record.segments, revised)
    if segment is None:
        return "text identical to the original"
    pairing.counterfactuals.append(Counterfactual(record.index, revised, record.label, label, segment, kind="human"))
    return None


def _pair_by_key(
    originals: Sequence[Record], keys: Sequence[object], rows: list[tuple[dict[str, str], str]],
    key_values: list[object], task: TaskConfig, key: str,
) -> ReferencePairing:
    groups: dict[str, list[int]] = {}
    for j, value in enumerate(key_values):
        groups.setdefault(str(value), []).append(j)
    pairing = ReferencePairing(method=f"key:{key}", originals=len(originals))
    for record, value in zip(originals, keys):
        members = groups.get(str(value))
        if not members:
            pairing.problems[f"{key} not in the reference"] += 1
            continue
        found = 0
        for j in members:
            segments, label = rows[j]
            if label == record.label:
                continue  # the original itself (or a same-label copy)
            why = _add(pairing, record, segments, label, task)
            found += why is None
        if not found:
            pairing.problems[f"no row with the same {key} and another label"] += 1
    return pairing


def _pair_by_position(
    originals: Sequence[Record], rows: list[tuple[dict[str, str], str]], task: TaskConfig, per_original: int
) -> ReferencePairing:
    from cda.filter.minimality import token_edit_distance

    pairing = ReferencePairing(method=f"position:{per_original}", originals=len(originals))
    for record in originals:
        block = range(per_original * record.index, min(per_original * (record.index + 1), len(rows)))
        if not block:
            pairing.problems["beyond the end of the reference"] += 1
            continue
        for j in block:
            segments, label = rows[j]
            unchanged = any(record.segments[n].strip() == segments[n].strip() for n in record.segments)
            joined_a = " ".join(record.segments.values())
            joined_b = " ".join(segments.values())
            if not unchanged and token_edit_distance(joined_a, joined_b) > MAX_POSITION_DISTANCE:
                pairing.problems["texts do not overlap (position pairing)"] += 1
                continue
            why = _add(pairing, record, segments, label, task)
            if why is not None:
                pairing.problems[why] += 1
    return pairing
