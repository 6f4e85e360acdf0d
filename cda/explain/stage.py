"""The Explain stage: predict each record's label and find the words to change.

Examples:
    >>> from tests.fakes import FakeClassifier  # sentiment by word lists
    >>> stage = ExplainStage(cfg, Cache(cfg.resolved_cache_dir()), FakeClassifier())
    >>> records = [Record(index=0, segments={"text": "A dull film, and a boring plot."}, label="Negative")]
    >>> stage.load(); records = stage.process(records); stage.unload()
    >>> [s.text for s in records[0].spans], records[0].predicted_label
    (['dull', 'boring'], 'Negative')
"""

from __future__ import annotations

import logging

from tqdm.auto import tqdm

from cda.cache import Cache
from cda.config import Config
from cda.explain.spans import SpanSelector
from cda.protocols import Classifier
from cda.records import Record, Span
from cda.tasks import editable_segments

log = logging.getLogger(__name__)

# Bump when attribution or span selection changes what a cached entry holds.
EXPLAIN_VERSION = "cda.explain.v3"  # v2: content words by part of speech; v3: spare spans


class ExplainStage:
    """Classifier prediction, token attribution and rationale spans for every record.

    Attribution is toward the gold label (``explain.toward: label``, as AutoCAD: the
    words that make the classifier say the current label are the ones to change) or
    the prediction, over the whole input; spans are picked only in editable segments
    and inside what the classifier saw. Results are cached per record by content hash
    (classifier name, segments, label, explain settings), so a rerun skips the model.

    Input columns:
        ``segments``, ``label``.

    Output columns:
        ``predicted_label``, ``probs``, ``spans`` (character offsets in a segment, with
        normalised score and text, in text order), ``spare_spans`` (the other picked spans
        beyond ``explain.max_spans``, best first), ``seen_chars``.

    Args:
        config: the run config (``explain``, ``task``, ``classifier.batch_size``).
        cache: where per-record results are kept.
        classifier: any :class:`cda.protocols.Classifier`.

    Examples:
        >>> from tests.fakes import FakeClassifier
        >>> stage = ExplainStage(cfg, Cache(cfg.resolved_cache_dir()), FakeClassifier())
        >>> stage.name, stage.selector.editable
        ('explain', {'text'})
    """

    name = "explain"

    def __init__(self, config: Config, cache: Cache, classifier: Classifier) -> None:
        self.config = config
        self.cache = cache
        self.classifier = classifier
        self.selector = SpanSelector(config.explain, config.task)  # the change prior is loaded in load()

    def load(self) -> None:
        """Check the classifier knows the task's labels, and load spaCy."""
        missing = [x for x in self.config.task.labels if x not in self.classifier.labels]
        if missing:
            raise ValueError(
                f"Classifier {self.classifier.name!r} predicts labels {self.classifier.labels}, "
                f"not the task's {missing}: use a classifier trained for this task (or fix task.labels)"
            )
        self.selector.load()
        if self.config.explain.prior is not None and self.selector.prior is None:
            from cda.explain.prior import prior_from_config

            self.selector.prior = prior_from_config(self.config, self.cache)

    def unload(self) -> None:
        # spaCy stays cached in the process (cheap, and Explain may run again); the
        # classifier belongs to the runner, which shares it with Filter.
        pass

    def _key(self, record: Record) -> str:
        return self.cache.key(
            "explain",
            {
                "version": EXPLAIN_VERSION,
                "classifier": self.classifier.name,
                "max_length": self.config.classifier.max_length,
                "long_inputs": self.config.classifier.long_inputs,
                "segments": record.segments,
                "label": record.label,
                "explain": self.config.explain.model_dump(),
                "editable": editable_segments(self.config.task),
            },
        )

    def process(self, records: list[Record]) -> list[Record]:
        """Fill ``predicted_label``, ``probs``, ``spans`` and ``seen_chars`` of every record."""
        todo: list[tuple[Record, str]] = []
        for record in records:
            key = self._key(record)
            hit = self.cache.get_json(key)
            if hit is not None:
                self._apply(record, hit)
            else:
                todo.append((record, key))
        size = self.config.classifier.batch_size
        batches = [todo[k : k + size] for k in range(0, len(todo), size)]
        method, toward = self.config.explain.method, self.config.explain.toward
        for batch in tqdm(batches, desc="Explain", unit="batch", disable=None):
            inputs = [r.segments for r, _ in batch]
            probs = self.classifier.predict_proba(inputs)
            predicted = [max(p, key=p.get) for p in probs]
            targets = [r.label if toward == "label" else pred for (r, _), pred in zip(batch, predicted)]
            attributions = self.classifier.attribute(inputs, targets, method)
            for (record, key), p, pred, attribution in zip(batch, probs, predicted, attributions):
                spans, spare = self.selector.ranked(record.segments, attribution)
                result = {
                    "predicted_label": pred,
                    "probs": {k: float(v) for k, v in p.items()},
                    "spans": [s.model_dump() for s in spans],
                    "spare_spans": [s.model_dump() for s in spare],
                    "seen_chars": dict(attribution.seen_chars),
                }
                self.cache.put_json(key, result)
                self._apply(record, result)
        truncated = sum(any(n < len(r.segments[s]) for s, n in r.seen_chars.items()) for r in records)
        log.info(
            "Explained %d records (%d from cache, %d truncated, %d without spans, %d predicted wrong)",
            len(records),
            len(records) - len(todo),
            truncated,
            sum(not r.spans for r in records),
            sum(r.predicted_label != r.label for r in records),
        )
        return records

    @staticmethod
    def _apply(record: Record, result: dict) -> None:
        record.predicted_label = result["predicted_label"]
        record.probs = dict(result["probs"])
        record.spans = [Span.model_validate(s) for s in result["spans"]]
        record.spare_spans = [Span.model_validate(s) for s in result.get("spare_spans", [])]
        record.seen_chars = dict(result["seen_chars"])
