"""The robustness experiment's config: a pydantic model loaded from YAML, with dotted overrides.

Like the run config, every model forbids unknown keys, and errors name the YAML path of
the bad value and the allowed keys. Budgets live under ``quick`` and ``full``; ``mode``
picks one, so ``cda experiment robustness --config FILE mode=full`` reruns at full size.

Examples:
    >>> cfg = load_experiment_config("configs/experiment_imdb.yaml", ["mode=quick"])
    >>> cfg.budget.seeds
    [0, 1, 2]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cda.config import ConfigError, DataFormat, apply_overrides, format_validation_error, read_yaml_mapping

TrainingSet = Literal["original", "original+cda", "original+human", "original+more"]
TRAINING_SETS: tuple[str, ...] = ("original", "original+cda", "original+human", "original+more")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EvalSetConfig(_Strict):
    """A labelled set every trained classifier is scored on.

    ``path`` is a TSV/CSV/JSONL/JSON file (optionally ``.bz2``/``.gz``/``.xz`` compressed), a
    ``save_to_disk`` folder, or ``package:<package>/<file>`` for a data file shipped inside
    an installed wheel (found without importing the package).
    """

    name: str
    path: str
    format: DataFormat = "auto"
    # A split of a file with several (FEVEROUS-S: train, build, test).
    split: str | None = None
    # segment -> column; default: the task's segments.
    segments: dict[str, str] | None = None
    # default: the task's label column.
    label_column: str | None = None
    # Raw label -> task label. Rows whose label is not mapped are left out (and counted).
    label_map: dict[str, str] | None = None
    # With a column that pairs rows (Kaushik's batch_id): take the first row per key (the
    # originals) or the rest (the human counterfactuals).
    pair_key: str | None = None
    take: Literal["all", "first", "rest"] = "all"
    # A seeded sample of at most this many rows (after label mapping).
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _take_needs_key(self) -> "EvalSetConfig":
        if self.take != "all" and self.pair_key is None:
            raise ValueError(f"eval set {self.name!r}: take={self.take!r} needs pair_key (the column that pairs rows)")
        return self


class ReferenceSetConfig(_Strict):
    """Human counterfactuals for the training originals (e.g. Kaushik's train_paired.tsv)."""

    path: str
    # Column shared with the build's dataset (batch_id); None pairs by position.
    key: str | None = None
    per_original: int = Field(default=2, ge=1)


class MoreOriginalsConfig(_Strict):
    """Where the "more data" control draws extra *original* examples from."""

    path: str
    format: DataFormat = "auto"
    split: str | None = None
    dedupe_on: str | None = None


class Budget(_Strict):
    """Training budget and sizes; the same recipe is used for every training set."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    # Fixed optimizer steps (the same for every training set) or, when unset, epochs.
    max_steps: int | None = Field(default=None, ge=1)
    epochs: float = Field(default=3.0, gt=0)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=5e-4, gt=0)
    max_length: int = Field(default=256, ge=8)
    # Use a seeded sample of at most this many originals from the build (and only their counterfactuals).
    train_limit: int | None = Field(default=None, ge=1)
    # Score on a seeded sample of at most this many rows per evaluation set.
    eval_limit: int | None = Field(default=None, ge=1)

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {v}")
        return v


class ExperimentConfig(_Strict):
    """``cda experiment robustness``: train on each training set, score on each eval set."""

    name: str = "robustness"
    # A `cda build` output folder: dataset/ (originals + cda counterfactuals) and config.yaml.
    build_dir: str
    reference: ReferenceSetConfig | None = None
    more_originals: MoreOriginalsConfig | None = None
    training_sets: list[TrainingSet] = Field(default_factory=lambda: list(TRAINING_SETS))
    eval_sets: list[EvalSetConfig]
    mode: Literal["quick", "full"] = "quick"
    quick: Budget = Field(default_factory=lambda: Budget(seeds=[0], max_steps=20, max_length=128, eval_limit=100))
    full: Budget = Field(default_factory=Budget)
    # Classifier backbone (HF folder or id); default: the build's classifier.backbone (MiniLM).
    backbone: str | None = None
    threads: int = Field(default=1, ge=1)
    output_dir: str = "outputs/experiment"

    @property
    def budget(self) -> Budget:
        """The budget of the selected ``mode``."""
        return self.quick if self.mode == "quick" else self.full

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentConfig":
        if not self.training_sets or len(set(self.training_sets)) != len(self.training_sets):
            raise ValueError(f"training_sets must list distinct sets from {list(TRAINING_SETS)}, got {self.training_sets}")
        if "original+human" in self.training_sets and self.reference is None:
            raise ValueError("training_sets has 'original+human' but no reference (human counterfactuals) is configured")
        if "original+more" in self.training_sets and self.more_originals is None:
            raise ValueError("training_sets has 'original+more' but more_originals (the pool of extra originals) is not set")
        if not self.eval_sets:
            raise ValueError("eval_sets needs at least one evaluation set")
        names = [e.name for e in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval set names must be distinct, got {names}")
        return self



def experiment_config_from_dict(data: dict[str, Any], source: str = "dict") -> ExperimentConfig:
    """Validate an experiment config given as a dict.

    Raises:
        ConfigError: an unknown key or a bad value; the message names where and what is allowed.

    Examples:
        >>> experiment_config_from_dict({"build_dir": "b",  # doctest: +ELLIPSIS
        ...                              "eval_sets": [{"name": "x", "path": "p", "labelmap": {}}]})
        Traceback (most recent call last):
        ...
        cda.config.ConfigError: Invalid experiment config (dict):
          eval_sets.0.labelmap: unknown key. Allowed keys here: name, path, format, split, segments, label_column, ...
    """
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, ExperimentConfig, "experiment config")) from None


def load_experiment_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load an experiment YAML file, apply ``key.sub=value`` overrides, validate.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid YAML, an unknown key, or a bad value.
    """
    data = read_yaml_mapping(path, "Experiment config")
    return experiment_config_from_dict(apply_overrides(data, list(overrides or [])), source=str(path))
