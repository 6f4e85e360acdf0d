"""Load the user's labelled data (TSV/CSV/JSONL/JSON, ``save_to_disk`` folder, Hub id)
and turn rows into :class:`~cda.records.Record` objects, with validation.

Examples:
    >>> from cda.config import DataConfig, TaskConfig
    >>> table = load_table(DataConfig(path="demo/imdb_sample.tsv"))
    >>> task = TaskConfig(segments={"text": "Text"}, label_column="Sentiment", labels=["Negative", "Positive"])
    >>> records = to_records(table, task)
    >>> records[0].label in task.labels
    True
"""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path

import datasets

from cda.config import DataConfig, TaskConfig
from cda.errors import CdaError
from cda.records import Record
from cda.tasks import clean_text

log = logging.getLogger(__name__)

_SUFFIX_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json"}
ALLOWED_FORMATS = "a .tsv/.csv/.jsonl/.json file, a folder written by datasets' save_to_disk, or hub:owner/name"


class DataError(CdaError, ValueError):
    """The input data does not fit the task; the message names the row/column and what is allowed."""


def detect_format(data: DataConfig) -> str:
    """The configured format, or the one implied by the path."""
    if data.format != "auto":
        return data.format
    if data.path.startswith("hub:"):
        return "hub"
    path = Path(data.path)
    if path.is_dir():
        return "disk"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"Cannot tell the format of {data.path!r}: expected {ALLOWED_FORMATS}, or set data.format.")
    return fmt


def sample_indices(n: int, k: int | None, seed: int) -> list[int]:
    """A seeded random ``k`` of the indices ``0..n-1``, in order (all of them when ``k`` is None or >= n).

    Files are often sorted by label, so a sample in file order, not the first ``k`` rows,
    is how every subset here (``data.sample``, training and evaluation limits) is taken.

    Examples:
        >>> sample_indices(5, 2, seed=0)
        [3, 4]
        >>> sample_indices(3, None, seed=0)
        [0, 1, 2]
    """
    if k is None or k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


def load_table(data: DataConfig) -> datasets.Dataset:
    """Read the rows exactly as the user wrote them (all columns kept, all as given).

    Raises:
        FileNotFoundError: the path does not exist.
        DataError: the format is unknown or the file cannot be parsed.
    """
    fmt = detect_format(data)
    if fmt != "hub" and not Path(data.path).exists():
        raise FileNotFoundError(f"Data file not found: {data.path} (data.path must be {ALLOWED_FORMATS})")
    if fmt in ("tsv", "csv"):
        # pandas-free, quote-aware reading; every value stays a string as written.
        with open(data.path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ","))
        if not rows:
            raise DataError(f"{data.path} has a header but no rows")
        table = datasets.Dataset.from_list(rows)
    elif fmt in ("jsonl", "json"):
        table = datasets.load_dataset("json", data_files=str(data.path), split="train")
    elif fmt == "disk":
        loaded = datasets.load_from_disk(data.path)
        table = _pick_split(loaded, data)
    else:
        loaded = datasets.load_dataset(data.path.removeprefix("hub:"))
        table = _pick_split(loaded, data)
    if data.dedupe_on is not None:
        if data.dedupe_on not in table.column_names:
            raise DataError(f"data.dedupe_on column {data.dedupe_on!r} not in {table.column_names}")
        seen: set = set()
        keep = []
        for i, value in enumerate(table[data.dedupe_on]):
            if value not in seen:
                seen.add(value)
                keep.append(i)
        table = table.select(keep)
    if data.sample is not None and data.sample < len(table):
        table = table.select(sample_indices(len(table), data.sample, data.sample_seed))
    if data.limit is not None:
        table = table.select(range(min(data.limit, len(table))))
    return table


def _pick_split(loaded: datasets.Dataset | datasets.DatasetDict, data: DataConfig) -> datasets.Dataset:
    if isinstance(loaded, datasets.Dataset):
        return loaded
    split = data.split or ("train" if "train" in loaded else None)
    if split not in loaded:
        raise DataError(f"{data.path} has splits {list(loaded)}; set data.split to one of them")
    return loaded[split]


def label_names(table: datasets.Dataset, task: TaskConfig) -> list[str]:
    """The label of every row as a string from ``task.labels``.

    Integer labels are mapped through the column's ``ClassLabel`` names, or else by
    position in ``task.labels``.
    """
    column = task.label_column
    feature = table.features[column]
    values = table[column]
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(v) for v in values]
    return [task.labels[v] if isinstance(v, int) and 0 <= v < len(task.labels) else str(v).strip() for v in values]


def check_columns(table: datasets.Dataset, task: TaskConfig) -> None:
    """Raise :class:`DataError` if a configured column is missing."""
    needed = {**{f"task.segments.{k}": v for k, v in task.segments.items()}, "task.label_column": task.label_column}
    missing = {key: col for key, col in needed.items() if col not in table.column_names}
    if missing:
        detail = ", ".join(f"{key}={col!r}" for key, col in missing.items())
        raise DataError(f"Missing column(s) {detail}; the data has columns {table.column_names}")


def to_records(table: datasets.Dataset, task: TaskConfig, on_invalid: str = "error") -> list[Record]:
    """Turn rows into records. ``index`` is the row's position in ``table``.

    Rows with an empty segment or a label outside ``task.labels`` raise
    :class:`DataError` naming the first bad rows; with ``on_invalid="skip"`` they are
    left out and logged (the caller counts them via ``len(table) - len(records)``).
    """
    check_columns(table, task)
    labels = label_names(table, task)
    columns = {name: table[col] for name, col in task.segments.items()}
    records, problems = [], []
    for i, label in enumerate(labels):
        segments = {name: clean_text(task, "" if col[i] is None else str(col[i])) for name, col in columns.items()}
        empty = [name for name, text in segments.items() if not text.strip()]
        if label not in task.labels:
            problems.append(f"row {i}: label {label!r} is not in task.labels {task.labels}")
        elif empty:
            problems.append(f"row {i}: empty text in segment(s) {empty} (columns {[task.segments[e] for e in empty]})")
        else:
            records.append(Record(index=i, segments=segments, label=label))
    if problems and on_invalid == "error":
        shown = "\n  ".join(problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DataError(f"{len(problems)} invalid row(s):\n  {shown}{more}")
    for p in problems:
        log.warning("skipped %s", p)
    return records
