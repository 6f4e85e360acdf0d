"""Read what ``cda build`` wrote: ``dataset/``, ``audit/``, ``config.yaml``, ``summary.json``.

The exported dataset keeps the user's columns and adds ``cda_`` columns; originals have
``cda_is_counterfactual`` false and each counterfactual points at its original through
``cda_original_index``. :class:`BuildOutput` turns rows back into records (text cleaned
as the task cleans it, labels as names) for the evaluation and the experiment.

Examples:
    >>> out = load_build_output(build_dir)  # a tiny `cda build` output folder
    >>> len(out.originals()), len(out.counterfactuals())
    (3, 2)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from cda.config import Config, load_saved_config
from cda.records import Record
from cda.training import IS_COUNTERFACTUAL, ORIGINAL_INDEX, NotCdaDatasetError, require_cda_columns

log = logging.getLogger(__name__)

REQUIRED = (IS_COUNTERFACTUAL, ORIGINAL_INDEX, "cda_source_label", "cda_target_label", "cda_edited_segment")


@dataclass
class Counterfactual:
    """A counterfactual of the original with ``original_index`` (generated or human)."""

    original_index: int
    segments: dict[str, str]
    source: str
    target: str
    segment: str
    kind: str = "cda"
    # Provenance columns of a generated one (generator, checks, label_prob, ...).
    provenance: dict = field(default_factory=dict)


@dataclass
class BuildOutput:
    """A ``cda build`` output folder, read back."""

    root: Path
    dataset: datasets.Dataset
    config: Config
    audit: datasets.Dataset | None = None
    summary: dict | None = None

    def originals(self) -> list[Record]:
        """The original rows as records; ``index`` is their ``cda_original_index``."""
        flags = self.dataset[IS_COUNTERFACTUAL]
        rows = [i for i, f in enumerate(flags) if not f]
        records = _records(self.dataset.select(rows), self.config)
        index = self.dataset[ORIGINAL_INDEX]
        for record in records:
            record.index = int(index[rows[record.index]])
        return records

    def counterfactuals(self) -> list[Counterfactual]:
        """The accepted counterfactuals, in dataset order."""
        flags = self.dataset[IS_COUNTERFACTUAL]
        rows = [i for i, f in enumerate(flags) if f]
        if not rows:
            return []
        subset = self.dataset.select(rows)
        records = _records(subset, self.config)
        columns = {c: subset[c] for c in subset.column_names if c.startswith("cda_")}
        out = []
        for record in records:
            row = {c: values[record.index] for c, values in columns.items()}
            out.append(
                Counterfactual(
                    original_index=int(row[ORIGINAL_INDEX]),
                    segments=record.segments,
                    source=str(row["cda_source_label"]),
                    target=record.label,
                    segment=str(row["cda_edited_segment"]),
                    provenance=row,
                )
            )
        return out

    def original_values(self, column: str) -> dict[int, object]:
        """``cda_original_index`` -> the original row's value in ``column`` (e.g. ``batch_id``).

        Raises:
            KeyError: the dataset has no such column.
        """
        if column not in self.dataset.column_names:
            raise KeyError(f"The dataset has no column {column!r}; it has {self.dataset.column_names}")
        flags, index, values = self.dataset[IS_COUNTERFACTUAL], self.dataset[ORIGINAL_INDEX], self.dataset[column]
        return {int(i): v for f, i, v in zip(flags, index, values) if not f}


def _records(table: datasets.Dataset, config: Config) -> list[Record]:
    from cda.data import to_records

    records = to_records(table, config.task, on_invalid="skip")
    if len(records) < len(table):
        log.warning("%d of %d rows of the dataset do not fit the task and are left out", len(table) - len(records), len(table))
    return records


def load_build_output(path: str | Path, config: str | Path | Config | None = None) -> BuildOutput:
    """Read a ``cda build`` output: the folder it wrote, or its ``dataset/`` folder.

    Args:
        path: ``<out>`` or ``<out>/dataset``.
        config: the run config (a path or a :class:`Config`); default ``<out>/config.yaml``.

    Raises:
        FileNotFoundError: no dataset or config there.
        NotCdaDatasetError: the dataset lacks the ``cda_`` columns.

    Examples:
        >>> out = load_build_output(build_dir / "dataset")
        >>> out.config.task.labels, out.audit is not None
        (['Negative', 'Positive'], True)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such folder: {path} (expected the output folder of `cda build` or its dataset/)")
    root, data_dir = (path, path / "dataset") if (path / "dataset").is_dir() else (path.parent, path)
    try:
        dataset = datasets.load_from_disk(str(data_dir))
    except FileNotFoundError:
        raise FileNotFoundError(f"{data_dir} holds no dataset saved with save_to_disk (expected `cda build` output)") from None
    if isinstance(dataset, datasets.DatasetDict):
        raise NotCdaDatasetError(f"{data_dir} holds splits {list(dataset)}; expected the single dataset `cda build` writes")
    require_cda_columns(dataset, REQUIRED)
    if not isinstance(config, Config):
        config_path = Path(config) if config is not None else root / "config.yaml"
        if not config_path.is_file():
            raise FileNotFoundError(
                f"No run config at {config_path}: `cda build` writes config.yaml beside dataset/; pass the config used"
            )
        config = load_saved_config(config_path)
    audit = None
    if (root / "audit").is_dir():
        audit = datasets.load_from_disk(str(root / "audit"))
    summary = None
    if (root / "summary.json").is_file():
        summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    return BuildOutput(root=root, dataset=dataset, config=config, audit=audit, summary=summary)


__all__ = ["BuildOutput", "Counterfactual", "NotCdaDatasetError", "load_build_output"]
