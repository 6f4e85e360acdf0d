"""The Stage shape and the runner: validate, run Explain → Edit → Generate → Filter, export.

Every stage has the same small shape (``load``, ``process(records) -> records``,
``unload``); the runner times each one and collects a :class:`Summary` that accounts
for every input row and every candidate.

Examples:
    >>> from cda import augment, load_config
    >>> cfg = load_config("configs/imdb.yaml", ["data.path=demo/imdb_sample.tsv", "data.limit=4"])
    >>> augmented = augment(load_table(cfg.data), cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

import datasets

from cda.cache import Cache
from cda.config import Config
from cda.data import DataError, load_table, to_records
from cda.protocols import Classifier, Generator, LanguageModel
from cda.records import Record

if TYPE_CHECKING:
    from cda.generate.demonstrations import DemonstrationPool

log = logging.getLogger(__name__)


class Stage(Protocol):
    """One pipeline step. ``process`` fills in its part of each record and returns them."""

    name: str

    def load(self) -> None: ...

    def process(self, records: list[Record]) -> list[Record]: ...

    def unload(self) -> None: ...


@dataclass
class Summary:
    """What happened to every row and every candidate."""

    rows: int = 0
    skipped_rows: int = 0
    truncated: int = 0
    originals: int = 0
    plans: int = 0
    plans_without_spans: int = 0
    candidates: int = 0
    accepted_candidates: int = 0
    counterfactuals: int = 0
    originals_with_counterfactual: int = 0
    drops: Counter = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    generator: str = ""
    classifier: str = ""
    # Per search round: plans, candidates, accepted candidates, counterfactuals (round 1 alone without search).
    rounds: dict[int, dict[str, int]] = field(default_factory=dict)

    def update_from(self, records: Sequence[Record]) -> None:
        """Recount everything derived from the records (idempotent)."""
        self.originals = len(records)
        self.truncated = sum(any(n < len(r.segments[s]) for s, n in r.seen_chars.items()) for r in records)
        plans = [p for r in records for p in r.plans]
        self.plans = len(plans)
        self.plans_without_spans = sum(not p.spans and not p.substitutions for p in plans)  # nothing to edit
        cands = [c for p in plans for c in p.candidates]
        self.candidates = len(cands)
        self.accepted_candidates = sum(c.accepted for c in cands)
        self.counterfactuals = sum(p.selected is not None for p in plans)
        self.originals_with_counterfactual = sum(any(p.selected is not None for p in r.plans) for r in records)
        self.drops = Counter(c.drop_reason for c in cands if not c.accepted)
        self.rounds = {}
        for plan in plans:
            row = self.rounds.setdefault(plan.round, {"plans": 0, "candidates": 0, "accepted_candidates": 0, "counterfactuals": 0})
            row["plans"] += 1
            row["candidates"] += len(plan.candidates)
            row["accepted_candidates"] += sum(c.accepted for c in plan.candidates)
            row["counterfactuals"] += plan.selected is not None
        self.rounds = dict(sorted(self.rounds.items()))

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "drops"}
        out["drops"] = dict(self.drops.most_common())
        out["rounds"] = {str(k): v for k, v in self.rounds.items()}  # JSON object keys are strings
        return out


def run_stages(records: list[Record], stages: Sequence[Stage], summary: Summary) -> list[Record]:
    """Run stages in order, timing each (load + process + unload)."""
    for stage in stages:
        start = time.perf_counter()
        stage.load()
        try:
            records = stage.process(records)
        finally:
            stage.unload()
        summary.seconds[stage.name] = summary.seconds.get(stage.name, 0.0) + time.perf_counter() - start
        log.info("%s done in %.1fs", stage.name, summary.seconds[stage.name])
    summary.update_from(records)
    return records


@dataclass
class Components:
    """The models a run uses; any left ``None`` is built from the config when needed."""

    classifier: Classifier | None = None
    generator: Generator | None = None
    language_model: LanguageModel | None = None
    demonstrations: "DemonstrationPool | None" = None


class Runner:
    """Builds the stages from a config and runs them.

    Args:
        config: the run config.
        use_cache: reuse (and store) trained classifiers, attributions and generations.
        components: models to use instead of building them from the config (tests pass fakes).
    """

    def __init__(self, config: Config, use_cache: bool = True, components: Components | None = None) -> None:
        from cda.models import set_threads

        set_threads(config.threads)
        self.config = config
        self.cache = Cache(config.resolved_cache_dir(), enabled=use_cache)
        self.components = components or Components()
        self.summary = Summary()

    # Models are built lazily and once: the classifier serves Explain and Filter,
    # the generator's LM serves Generate and the fluency check.
    def classifier(self, train_records: list[Record] | None = None) -> Classifier:
        if self.components.classifier is None:
            from cda.explain.classifier import load_or_train_classifier

            start = time.perf_counter()
            self.components.classifier = load_or_train_classifier(self.config, self.cache, train_records)
            self.summary.seconds["train"] = time.perf_counter() - start
        self.summary.classifier = self.components.classifier.name
        return self.components.classifier

    def generator(self, train_records: list[Record] | None = None) -> Generator:
        if self.components.generator is None:
            from cda.generate.backends import make_generator

            self.components.generator = make_generator(self.generation_config(train_records))
            if self.components.generator.capabilities.server:
                # A server is checked now, before any training, and names the model its outputs are cached under.
                self.components.generator.load()
        self.summary.generator = self.components.generator.name
        return self.components.generator

    def generation_config(self, train_records: list[Record] | None = None) -> Config:
        """The config the generator is built from: with a ``generator`` section, ``generate.lora_path``
        is its trained adapter (loaded, or trained now and cached; self-supervised examples come
        from the classifier's training data, ``classifier.train.path`` or else ``train_records``,
        explained by the task classifier)."""
        if self.config.generator is None:
            return self.config
        from cda.generate.trained.train import load_or_train_generator

        def explained() -> list[Record]:
            from cda.config import DataConfig
            from cda.data import sample_indices
            from cda.explain.stage import ExplainStage

            train = self.config.generator.train  # type: ignore[union-attr]  # set when self_supervised
            # The labelled data the classifier learns from: classifier.train.path, else the input rows.
            path = self.config.classifier.train.path
            labelled = to_records(load_table(DataConfig(path=path)), self.config.task, on_invalid="skip") if path else train_records
            records = [r.model_copy(deep=True) for r in labelled or []]
            records = [records[i] for i in sample_indices(len(records), train.self_supervised_limit, self.config.seed)]
            stage = ExplainStage(self.config, self.cache, self.classifier(train_records))
            stage.load()
            try:
                return stage.process(records)
            finally:
                stage.unload()

        start = time.perf_counter()
        adapter = load_or_train_generator(self.config, self.cache, explained)
        self.summary.seconds["train_generator"] = time.perf_counter() - start
        generate = self.config.generate.model_copy(update={"lora_path": str(adapter)})
        return self.config.model_copy(update={"generate": generate})

    def demonstrations(self) -> "DemonstrationPool | None":
        """The demonstration pool ``generate.demonstrations`` describes (built once), or ``None``."""
        if self.components.demonstrations is None and self.config.generate.demonstrations is not None:
            from cda.generate.demonstrations import pool_from_config

            self.components.demonstrations = pool_from_config(self.config, self.cache)
        return self.components.demonstrations

    def language_model(self) -> LanguageModel | None:
        if "fluency" not in self.config.filter.checks:
            return None
        if self.components.language_model is None:
            generator = self.generator()
            if isinstance(generator, LanguageModel) and getattr(generator, "lora_path", None) is None:
                self.components.language_model = generator
            else:
                from cda.generate.backends import make_language_model

                self.components.language_model = make_language_model(self.config)
        return self.components.language_model

    def records(self, table: datasets.Dataset) -> list[Record]:
        records = to_records(table, self.config.task, on_invalid="error")
        self.summary.rows = len(table)
        self.summary.skipped_rows = len(table) - len(records)
        return records

    def stages(self, names: Sequence[str], train_records: list[Record] | None = None) -> list[Stage]:
        """Stage objects for ``names`` (a subset of explain, edit, generate, filter), in order."""
        from cda.edit.stage import EditStage
        from cda.explain.stage import ExplainStage
        from cda.filter.stage import FilterStage
        from cda.generate.stage import GenerateStage

        allowed = ["explain", "edit", "generate", "filter"]
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(f"Unknown stage(s) {unknown}; allowed: {allowed}")
        built: list[Stage] = []
        for name in allowed:
            if name not in names:
                continue
            if name == "explain":
                built.append(ExplainStage(self.config, self.cache, self.classifier(train_records)))
            elif name == "edit":
                built.append(EditStage(self.config))
            elif name == "generate":
                built.append(GenerateStage(self.config, self.cache, self.generator(train_records), self.demonstrations()))
            else:
                built.append(FilterStage(self.config, self.classifier(train_records), self.language_model(), train_records=train_records, cache=self.cache))
        return built

    def validate(self, records: list[Record], stages: Sequence[str] = ("explain", "edit", "generate", "filter")) -> None:
        """Cheap checks before any model is trained or loaded: the prompt renders, the models
        the stages need can be found, a Hub push has its token."""
        from cda.generate.prompts import check_template
        from cda.preflight import check_hub, check_models

        check_template(self.config, records[:1])
        if self.components.classifier is None or self.components.generator is None:
            check_models(self.config, tuple(stages))
        check_hub(self.config)

    def training_records(self, records: list[Record], from_config: bool) -> list[Record]:
        """The classifier's default training data: all input rows, even when ``data.limit`` cuts the
        rows to augment (a limited run still gets a classifier trained on the whole file)."""
        if not from_config or (self.config.data.limit is None and self.config.data.sample is None):
            return records
        full = load_table(self.config.data.model_copy(update={"limit": None, "sample": None}))
        return to_records(full, self.config.task, on_invalid="error")

    def run(
        self,
        table: datasets.Dataset,
        stages: Sequence[str] = ("explain", "edit", "generate", "filter"),
        table_from_config: bool = False,
    ) -> list[Record]:
        records = self.records(table)
        if not records:
            raise DataError("No usable rows in the input: nothing to augment")
        self.validate(records, stages)
        if "generate" in stages and (self.config.generator is None or self.config.generator.path is not None):
            self.generator()  # a server backend is checked here, before any training
        train = self.training_records(records, table_from_config)
        from cda.registry import executors

        settings = self.config.executor
        executor = executors.get(settings.name)(settings)
        records = executor.run(self, records, stages, train)
        if self.config.search.rounds > 1 and {"generate", "filter"} <= set(stages):
            from cda.search import search

            search(records, self.config, lambda views: executor.run(self, views, ("generate", "filter"), train),
                   self.demonstrations())  # fmt: skip
            self.summary.update_from(records)
        return records


@dataclass
class BuildResult:
    """What :func:`build` returns: the augmented dataset, the audit split, records and summary."""

    dataset: datasets.Dataset
    audit: datasets.Dataset
    records: list[Record]
    summary: Summary


def build(
    config: Config,
    table: datasets.Dataset | None = None,
    use_cache: bool = True,
    components: Components | None = None,
) -> BuildResult:
    """Run the whole pipeline and return the datasets (nothing is written to disk).

    Examples:
        >>> from cda import load_config
        >>> result = build(load_config("configs/imdb.yaml", ["data.limit=8"]))  # doctest: +SKIP
        >>> result.summary.counterfactuals  # doctest: +SKIP
        3
    """
    from cda.export.dataset import to_audit_dataset, to_dataset

    from_config = table is None
    table = load_table(config.data) if table is None else table
    runner = Runner(config, use_cache=use_cache, components=components)
    records = runner.run(table, table_from_config=from_config)
    start = time.perf_counter()
    dataset = to_dataset(table, records, config)
    audit = to_audit_dataset(records, config)
    runner.summary.seconds["export"] = time.perf_counter() - start
    return BuildResult(dataset=dataset, audit=audit, records=records, summary=runner.summary)


def train_generator(config: Config, use_cache: bool = True) -> Path:
    """Train (or load from the cache) the generator adapter ``config.generator`` describes.

    Human pairs come from ``generator.train.pairs``; self-supervised examples from the
    classifier's training data (``classifier.train.path``, else ``data.path``), explained by the
    task classifier (trained or loaded as ``cda build`` would).

    Returns:
        The adapter folder (in the cache; a temporary folder with ``use_cache=False``).

    Raises:
        ConfigError: the config has no ``generator`` section.

    Examples:
        >>> from cda import load_config
        >>> adapter = train_generator(load_config("configs/imdb_trained.yaml"))  # doctest: +SKIP
        >>> (adapter / "adapter_config.json").is_file()  # doctest: +SKIP
        True
    """
    from cda.config import ConfigError

    if config.generator is None:
        raise ConfigError(
            "The config has no generator section: add generator.train (pairs and/or self_supervised) to train one; "
            "see configs/imdb_trained.yaml"
        )
    runner = Runner(config, use_cache=use_cache)
    train_records = None
    if config.generator.train is not None and config.generator.train.self_supervised:
        train_records = runner.training_records(runner.records(load_table(config.data)), from_config=True)
    return Path(str(runner.generation_config(train_records).generate.lora_path))


def augment(
    dataset: datasets.Dataset, config: Config, use_cache: bool = True, components: Components | None = None
) -> datasets.Dataset:
    """Original rows plus accepted counterfactuals (with ``cda_`` provenance columns).

    Examples:
        >>> from cda import augment, load_config
        >>> cfg = load_config("configs/imdb.yaml")
        >>> augmented = augment(my_dataset, cfg)  # doctest: +SKIP
        >>> augmented.filter(lambda r: r["cda_is_counterfactual"])  # doctest: +SKIP
    """
    return build(config, dataset, use_cache=use_cache, components=components).dataset
