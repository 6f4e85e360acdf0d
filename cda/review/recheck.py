"""Run a build's own filter again on the texts reviewers corrected.

A correction goes through the same checks, thresholds and models as the build's candidates
(``filter.checks`` of its ``config.yaml``; the task classifier from ``classifier.path`` or the
cache; perplexity with the generator's base model), so the reviewed dataset says whether the
filter would have kept the corrected text. The reviewer has the last word: a correction
that fails is kept unless ``drop_failed_recheck`` asks otherwise.

Examples:
    >>> from cda.config import config_from_dict
    >>> from cda.pipeline import Components
    >>> from tests.fakes import FakeClassifier
    >>> from cda.review.candidates import ReviewCandidate
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
    ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "filter": {"checks": {"fluency": None}}})
    >>> c = ReviewCandidate("c", 0, 0, "Negative", "Positive", "text", 0, {"text": "A bad film ."}, "A fine film .")
    >>> recheck = FilterRecheck(cfg, Components(classifier=FakeClassifier()))
    >>> result = recheck([RecheckItem(c, {"text": "A great film ."})])[0]
    >>> result.passed, [check["name"] for check in result.checks]
    (True, ['logic', 'minimality', 'words', 'duplicate', 'label'])
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from cda.config import Config
from cda.pipeline import Components
from cda.records import SENTENCE_SEPARATOR, Candidate, EditPlan, Record, Span
from cda.review.candidates import ReviewCandidate

log = logging.getLogger(__name__)


@dataclass
class RecheckItem:
    """A candidate and its corrected segment(s); ``spans``/``masked``/``prompt`` as in the audit."""

    candidate: ReviewCandidate
    corrected: dict[str, str]
    spans: str = "[]"
    masked: str = ""
    prompt: str = ""
    list_segments: list[str] = field(default_factory=list)


@dataclass
class RecheckResult:
    """The checks (as the audit's ``checks`` JSON holds them) and measures of a corrected text."""

    checks: list[dict[str, Any]]
    measures: dict[str, float | None]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["passed"] for c in self.checks)

    @property
    def failed(self) -> str | None:
        return next((c["name"] for c in self.checks if not c["passed"]), None)


def _spans(spans_json: str, segments: dict[str, str], list_segments: list[str]) -> list[Span]:
    """The audit's spans back as offsets into whole segments (a list segment's are per sentence)."""
    out = []
    for s in json.loads(spans_json or "[]"):
        start, end = int(s["start"]), int(s["end"])
        if s.get("sentence") is not None and s["segment"] in list_segments:
            sentences = (segments.get(s["segment"]) or "").split(SENTENCE_SEPARATOR)
            offset = sum(len(x) + len(SENTENCE_SEPARATOR) for x in sentences[: int(s["sentence"])])
            start, end = start + offset, end + offset
        out.append(Span(segment=s["segment"], start=start, end=end, text=s.get("text") or "", score=s.get("score") or 0.0))
    return out


class FilterRecheck:
    """Callable that checks corrected texts with the build's filter.

    Args:
        config: the build's config (``filter``, ``classifier``, ``generate``).
        components: models to use instead of loading them (tests pass fakes). Without a
            language model here, ``fluency`` loads the generator's base model with transformers;
            pass ``Components(language_model=...)`` or drop ``filter.checks.fluency`` to avoid that.
        use_cache: load the cached task classifier (a build's classifier is cached by content).
    """

    def __init__(self, config: Config, components: Components | None = None, use_cache: bool = True) -> None:
        self.config = config
        self.components = components or Components()
        self.use_cache = use_cache

    def _stage(self):
        from cda.filter.stage import FilterStage
        from cda.pipeline import Runner

        runner = Runner(self.config, use_cache=self.use_cache, components=self.components)
        classifier, train = self.components.classifier, None
        if classifier is None and "label" in self.config.filter.checks:
            if self.config.classifier.path is None and self.config.classifier.train.path is None:
                # The build trained its classifier on its input rows: the same rows find it in the cache.
                from cda.data import load_table

                train = runner.training_records(runner.records(load_table(self.config.data)), from_config=True)
            classifier = runner.classifier(train)
        language_model = self.components.language_model
        if language_model is None and "fluency" in self.config.filter.checks:
            from cda.generate.backends import make_language_model

            language_model = make_language_model(self.config)
        # train and the cache: label.second_opinion trains (or finds cached) its classifier as the build did.
        return FilterStage(self.config, classifier, language_model, train_records=train, cache=runner.cache)

    def __call__(self, items: list[RecheckItem]) -> list[RecheckResult]:
        if not items:
            return []
        records = []
        for item in items:
            c = item.candidate
            names = c.edited_names
            record = Record(index=c.original_index, segments=dict(c.segments), label=c.source_label,
                            list_segments=list(item.list_segments))  # fmt: skip
            candidate = Candidate(segments={**c.segments, **item.corrected}, prompt=item.prompt, sample_index=c.sample_index)
            record.plans = [EditPlan(
                target_label=c.target_label, segment=names[0], also_edits=names[1:],
                spans=_spans(item.spans, c.segments, item.list_segments), masked=item.masked, candidates=[candidate],
            )]  # fmt: skip
            records.append(record)
        stage = self._stage()
        stage.load()
        try:
            records = stage.process(records)
        finally:
            stage.unload()
        out = []
        for record in records:
            candidate = record.plans[0].candidates[0]
            out.append(RecheckResult([c.model_dump() for c in candidate.checks], dict(candidate.measures)))
        return out
