"""The Filter stage: run the configured checks on every candidate, then pick one per plan.

Cheap checks run first on every parsed candidate (``logic``, ``minimality``,
``words``, ``duplicate``); the classifier (``label``) sees only candidates that passed all of them,
and the language model (``fluency``) only those that passed ``label`` too. A check that
was not run is absent from ``candidate.checks``, so the first failed check is always the
reason a candidate was dropped. Candidates with an ``error`` get no checks: the error is
their drop reason. ``candidate.edit_distance`` is measured on every parsed candidate,
even when ``minimality`` is not a configured check: selection and export use it.
"""

from __future__ import annotations

import logging

from cda.config import Config
from cda.filter.duplicate import check_duplicates
from cda.filter.fluency import fluency_checks
from cda.filter.label import LabelMismatchError, label_checks
from cda.filter.logic import LogicCheck
from cda.filter.minimality import MinimalityCheck
from cda.filter.select import select_all
from cda.filter.words import WordsCheck
from cda.protocols import Classifier, LanguageModel
from cda.records import Candidate, Check, EditPlan, Record

log = logging.getLogger(__name__)


def _reset(candidate: Candidate) -> None:
    # Filtering again (new thresholds, a resumed run) must not stack old results.
    candidate.checks = []
    candidate.label_prob = None
    candidate.edit_distance = None
    candidate.perplexity = None


class FilterStage:
    """Checks candidates and selects the counterfactual of each edit plan.

    Input columns: ``record.segments``, ``plan.target_label``, ``plan.segment``,
    ``plan.spans``, ``plan.candidates`` (``segments``, ``prompt``, ``error``).

    Output columns: ``candidate.checks``, ``candidate.label_prob``,
    ``candidate.edit_distance``, ``candidate.perplexity``, ``plan.selected``.

    Args:
        config: the run config (``filter`` section; ``edit.blank`` for leak detection).
        classifier: the task classifier, for the ``label`` check.
        language_model: scores perplexity for the ``fluency`` check; with ``None`` (or
            ``filter.fluency_factor: null``) that check is skipped.

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

    def __init__(self, config: Config, classifier: Classifier, language_model: LanguageModel | None) -> None:
        self.config = config
        self.classifier = classifier
        self.language_model = language_model

    @property
    def checks(self) -> list[str]:
        """The checks this stage will run (``filter.checks`` minus a fluency check it cannot run)."""
        names = list(dict.fromkeys(self.config.filter.checks))
        if "fluency" in names and (self.language_model is None or self.config.filter.fluency_factor is None):
            names.remove("fluency")
        return names

    def load(self) -> None:
        """Check that the classifier knows every task label (before any candidate is scored)."""
        if "label" in self.config.filter.checks:
            missing = [label for label in self.config.task.labels if label not in self.classifier.labels]
            if missing:
                raise LabelMismatchError(
                    f"The classifier {self.classifier.name!r} predicts {self.classifier.labels}, which lacks "
                    f"task label(s) {missing}; use a classifier trained on task.labels {self.config.task.labels}"
                )
        if "fluency" in self.config.filter.checks and "fluency" not in self.checks:
            log.info("fluency check skipped: no language model or filter.fluency_factor is null")

    def unload(self) -> None:
        """Nothing to free: the models belong to the runner, which shares them with other stages."""

    def process(self, records: list[Record]) -> list[Record]:
        """Check every candidate and set ``plan.selected``; returns the same records."""
        run = set(self.checks)
        cfg = self.config.filter
        logic = LogicCheck(self.config)
        minimality = MinimalityCheck(cfg.max_edit_distance)
        words = WordsCheck(cfg.min_word_zipf)
        survivors: list[tuple[Record, EditPlan, Candidate]] = []
        for record in records:
            for plan in record.plans:
                duplicates = check_duplicates(plan) if "duplicate" in run else {}
                for position, candidate in enumerate(plan.candidates):
                    _reset(candidate)
                    if candidate.error is not None:
                        continue
                    if candidate.segments is None:
                        candidate.checks.append(Check(name="parse", passed=False, reason="no parsed text"))
                        continue
                    original = record.segments[plan.segment]
                    # Always measured (cheap): selection and export use it even when minimality is not a check.
                    distance = minimality(original, candidate, plan.segment)
                    if "logic" in run:
                        candidate.checks.append(logic(record, plan, candidate))
                    if "minimality" in run:
                        candidate.checks.append(distance)
                    if "words" in run:
                        candidate.checks.append(words(original, candidate, plan.segment))
                    if position in duplicates:
                        candidate.checks.append(duplicates[position])
                    if all(c.passed for c in candidate.checks):
                        survivors.append((record, plan, candidate))
        if "label" in run:
            checks = label_checks(
                self.classifier, [(c.segments, p.target_label) for _, p, c in survivors], cfg.label_threshold
            )
            for (_, _, candidate), check in zip(survivors, checks):
                candidate.label_prob = check.value
                candidate.checks.append(check)
            survivors = [item for item, check in zip(survivors, checks) if check.passed]
        if "fluency" in run and self.language_model is not None and cfg.fluency_factor is not None:
            items = [(r.segments[p.segment], (c.segments or {}).get(p.segment, "")) for r, p, c in survivors]
            for (_, _, candidate), check in zip(survivors, fluency_checks(self.language_model, items, cfg.fluency_factor)):
                candidate.perplexity = check.value
                candidate.checks.append(check)
        selected = select_all(records)
        log.info("filter: %d counterfactual(s) selected for %d plan(s)", selected, sum(len(r.plans) for r in records))
        return records
