"""The Filter stage: run the configured checks on every candidate, then pick one per plan.

Cheap checks run first on every parsed candidate (``logic``, ``minimality``,
``words``, ``duplicate``); the classifier (``label``) sees only candidates that passed all of them,
and the language model (``fluency``) only those that passed ``label`` too. Each check is a
registered :class:`~cda.filter.checks.FilterCheck`; this stage is a loop over them.
"""

from __future__ import annotations

import logging

from cda.cache import Cache
from cda.config import Config
from cda.filter.checks import CheckContext, CheckItem, FilterCheck
from cda.filter.minimality import token_edit_distance
from cda.filter.select import select_all
from cda.protocols import Classifier, LanguageModel
from cda.records import Candidate, Check, Record
from cda.registry import checks as registered_checks

log = logging.getLogger(__name__)


def _reset(candidate: Candidate) -> None:
    # Filtering again (new thresholds, a resumed run) must not stack old results.
    candidate.checks = []
    candidate.measures = {}


class FilterStage:
    """Checks candidates and selects the counterfactual of each edit plan.

    The checks are the registered ones ``filter.checks`` names, run cheapest first
    (:attr:`~cda.filter.checks.FilterCheck.cost`). A check that needs no model runs on every
    parsed candidate; one that needs the classifier or the language model only on the
    candidates that passed every check before it, and is left out (with a log line) when
    that model is missing. A check that was not run is absent from ``candidate.checks``, so
    the first failed check is always the reason a candidate was dropped. Candidates with an
    ``error`` get no checks: the error is their drop reason. ``edit_distance`` is measured
    on every parsed candidate, even when ``minimality`` is not a configured check: selection
    and export use it.

    Input columns: ``record.segments``, ``plan.target_label``, ``plan.segment``,
    ``plan.spans``, ``plan.candidates`` (``segments``, ``prompt``, ``error``).

    Output columns: ``candidate.checks``, ``candidate.measures`` (``label_prob``,
    ``edit_distance``, ``perplexity``, ...), ``plan.selected``.

    Args:
        config: the run config (``filter.checks``; ``edit.blank`` for leak detection).
        classifier: the task classifier, for the ``label`` check.
        language_model: scores perplexity for the ``fluency`` check; with ``None`` that
            check is skipped.
        train_records: the task classifier's default training data (what the runner passes to
            it), for a check that trains a classifier of its own (``label.second_opinion``).
        cache: where such a classifier is cached (default: ``config``'s cache folder).

    Examples:
        >>> from cda.config import Config, DataConfig, TaskConfig
        >>> from cda.records import Candidate, EditPlan, Record, Span
        >>> class WordClassifier:
        ...     labels, name = ["Negative", "Positive"], "word-classifier"
        ...     def predict_proba(self, inputs):
        ...         return [{"Negative": 0.1, "Positive": 0.9} if "great" in x["text"] else
        ...                 {"Negative": 0.9, "Positive": 0.1} for x in inputs]
        >>> config = Config(data=DataConfig(path="x.tsv"), task=TaskConfig(segments={"text": "Text"},
        ...                 label_column="y", labels=["Negative", "Positive"]))
        >>> plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6)],
        ...                 candidates=[Candidate(segments={"text": t}, sample_index=i)
        ...                             for i, t in enumerate(["A poor film.", "A great film."])])
        >>> records = [Record(index=0, segments={"text": "A dull film."}, label="Negative", plans=[plan])]
        >>> stage = FilterStage(config, WordClassifier(), language_model=None)
        >>> stage.load(); records = stage.process(records); stage.unload()
        >>> records[0].plans[0].best.segments
        {'text': 'A great film.'}
        >>> records[0].plans[0].candidates[0].drop_reason
        'label'
    """

    name = "filter"

    def __init__(
        self, config: Config, classifier: Classifier | None, language_model: LanguageModel | None, *,
        train_records: list[Record] | None = None, cache: Cache | None = None,
    ) -> None:
        self.config = config
        self.classifier = classifier
        self.language_model = language_model
        context = CheckContext(config, classifier, language_model, train_records=train_records, cache=cache)
        built = [registered_checks.get(name)(settings, context) for name, settings in config.filter.checks.items()]
        self.skipped = {c.name: reason for c in built if (reason := c.skip_reason()) is not None}
        self.instances: list[FilterCheck] = sorted(
            (c for c in built if c.name not in self.skipped), key=lambda c: c.cost
        )

    @property
    def checks(self) -> list[str]:
        """The checks this stage will run, in order (``filter.checks`` minus those whose model is missing)."""
        return [c.name for c in self.instances]

    def load(self) -> None:
        """Let every check validate its context (e.g. the classifier's labels) before any candidate is scored."""
        for check in self.instances:
            check.load()
        for name, reason in self.skipped.items():
            log.info("%s check skipped: %s", name, reason)

    def unload(self) -> None:
        """Nothing to free: the models belong to the runner, which shares them with other stages."""

    def process(self, records: list[Record]) -> list[Record]:
        """Check every candidate and set ``plan.selected``; returns the same records."""
        items: list[CheckItem] = []
        for record in records:
            for plan in record.plans:
                for candidate in plan.candidates:
                    _reset(candidate)
                    if candidate.error is not None:
                        continue
                    if candidate.segments is None:
                        candidate.checks.append(Check(name="parse", passed=False, reason="no parsed text"))
                        continue
                    item = CheckItem(record, plan, candidate)
                    # Always measured (cheap): selection and export use it even when minimality is not a check.
                    candidate.measures["edit_distance"] = token_edit_distance(item.original, item.edited)
                    items.append(item)
        for check in self.instances:
            pool = items if not check.needs else [i for i in items if all(c.passed for c in i.candidate.checks)]
            results = check.run(pool) if pool else []
            if len(results) != len(pool):
                raise RuntimeError(f"check {check.name!r} returned {len(results)} results for {len(pool)} candidates")
            for item, result in zip(pool, results):
                item.candidate.checks.append(result)
                if check.column is not None:
                    item.candidate.measures[check.column] = result.value
        selected = select_all(records)
        log.info("filter: %d counterfactual(s) selected for %d plan(s)", selected, sum(len(r.plans) for r in records))
        return records
