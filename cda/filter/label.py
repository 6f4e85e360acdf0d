"""Label consistency: the task classifier must read the counterfactual as its target label.

A candidate passes when ``P(target) >= threshold`` (``filter.checks.label.threshold``) and the target is the
classifier's single most probable label (a tie is not a flip). All candidates go to the
classifier in one call; it batches them itself.

Two settings make acceptance stricter (both off by default):

* ``quantile: q`` calibrates the threshold per target label ``L``: ``max(threshold, the
  q-quantile of P(L) over the run's originals labelled L that the classifier gets right)``,
  so a counterfactual must read at least as confidently ``L`` as a typical real ``L``
  example. The originals are those of the candidates the check sees (the survivors of the
  cheaper checks); their probabilities are ``record.probs`` (filled by Explain).
* ``second_opinion: {seed: 17}`` trains (or loads from the cache) a second classifier
  exactly like the task classifier but with ``seed`` in place of ``config.seed`` (another
  initialisation, batch order and, with ``classifier.train.limit``, training sample); a
  candidate passes only if both classifiers pass. Its probability is written into the
  check's ``reason`` (the ``checks`` column of the dataset and the audit).

Examples:
    >>> check = label_check({"Negative": 0.1, "Positive": 0.9}, "Positive", threshold=0.5)
    >>> check.passed, check.value
    (True, 0.9)
    >>> calibrated_thresholds([("Positive", {"Negative": 0.2, "Positive": 0.8})], ["Positive"], 0.5, 0.5)
    {'Positive': LabelThreshold(value=0.8, source="the 0.50-quantile of P(Positive) over 1 original(s) labelled 'Positive' that the classifier reads correctly")}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from cda.errors import CdaError
from cda.filter.checks import CheckItem, FilterCheck
from cda.protocols import Classifier
from cda.records import Check, Record
from cda.registry import ComponentSettings, Strict, checks

if TYPE_CHECKING:
    from cda.cache import Cache
    from cda.config import Config

NAME = "label"

log = logging.getLogger(__name__)


class LabelMismatchError(CdaError, ValueError):
    """The classifier's labels do not include a label the task needs."""


class SecondOpinionError(CdaError, ValueError):
    """``filter.checks.label.second_opinion`` cannot train its classifier in this run."""


@dataclass(frozen=True)
class LabelThreshold:
    """The threshold a target label's probability must reach, and where it came from.

    ``source`` is ``""`` for the configured ``threshold``, else a phrase naming the
    calibration (it goes into a failing check's reason).
    """

    value: float
    source: str = ""


def _top_label(probs: Mapping[str, float]) -> str | None:
    """The single most probable label, or ``None`` on a tie at the top (or no labels)."""
    ranked = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def calibrated_thresholds(
    originals: Iterable[tuple[str, Mapping[str, float]]],
    labels: Iterable[str],
    threshold: float,
    quantile: float | None,
    judge: str = "the classifier",
) -> dict[str, LabelThreshold]:
    """The threshold of each of ``labels`` as a target, calibrated on originals.

    For a label ``L``: ``max(threshold, q-quantile of P(L))`` over the originals whose gold
    label is ``L`` and whose single most probable label (by ``judge``) is ``L`` too. With
    ``quantile=None``, or when no original qualifies (a log line says so), it is ``threshold``.

    Args:
        originals: ``(gold label, label probabilities)`` of each distinct original; an
            original with empty probabilities (Explain did not run) does not count.
        labels: the target labels to give a threshold.
        threshold: the configured floor (``filter.checks.label.threshold``).
        quantile: ``q`` in 0..1, or ``None`` for no calibration.
        judge: the classifier, in log lines and sources.

    Examples:
        >>> originals = [("Positive", {"Negative": 0.3, "Positive": 0.7}),
        ...              ("Positive", {"Negative": 0.1, "Positive": 0.9}),
        ...              ("Positive", {"Negative": 0.8, "Positive": 0.2}),  # misread: left out
        ...              ("Negative", {"Negative": 0.4, "Positive": 0.6})]  # misread: left out
        >>> t = calibrated_thresholds(originals, ["Positive", "Negative"], 0.5, 0.5)
        >>> round(t["Positive"].value, 3), t["Negative"]
        (0.8, LabelThreshold(value=0.5, source=''))
        >>> calibrated_thresholds(originals, ["Positive"], 0.95, 0.5)["Positive"].value  # never below threshold
        0.95
    """
    import numpy as np

    wanted = list(dict.fromkeys(labels))
    if quantile is None:
        return {label: LabelThreshold(threshold) for label in wanted}
    seen = list(originals)
    out: dict[str, LabelThreshold] = {}
    for label in wanted:
        values = [float(probs[label]) for gold, probs in seen if gold == label and probs and _top_label(probs) == label]
        if not values:
            without = sum(not probs for _, probs in seen)
            note = f" ({without} of {len(seen)} have no probabilities: Explain did not run on them)" if without else ""
            log.warning(
                "label check: none of the %d original(s) is labelled %r and read correctly by %s%s; "
                "its threshold stays %.3f (no quantile calibration)", len(seen), label, judge, note, threshold,
            )  # fmt: skip
            out[label] = LabelThreshold(threshold)
            continue
        q = float(np.quantile(values, quantile))
        source = (f"the {quantile:.2f}-quantile of P({label}) over {len(values)} original(s) labelled {label!r} "
                  f"that {judge} reads correctly")  # fmt: skip
        out[label] = LabelThreshold(q, source) if q > threshold else LabelThreshold(threshold)
        log.info("label check: threshold for %r by %s: %.3f (%s is %.3f)", label, judge, out[label].value, source, q)
    return out


def label_check(
    probs: dict[str, float], target: str, threshold: float, source: str = "", judge: str | None = None
) -> Check:
    """The ``label`` check for one candidate's label probabilities.

    Args:
        probs: the classifier's probability of every label.
        target: the label the counterfactual was written toward.
        threshold: the least ``P(target)`` that passes.
        source: where a calibrated threshold came from (named in the reason), ``""`` for the setting.
        judge: a second classifier's description (``"second classifier lora-minilm@..."``) for
            its reasons; ``None`` for the task classifier.

    Examples:
        >>> label_check({"Negative": 0.2, "Positive": 0.8}, "Positive", 0.5).passed
        True
        >>> label_check({"Negative": 0.6, "Positive": 0.4}, "Positive", 0.3).reason
        "the classifier prefers 'Negative' (0.600) over the target 'Positive' (0.400)"
        >>> label_check({"Negative": 0.4, "Positive": 0.6}, "Positive", 0.8, source="the 0.50-quantile ...").reason
        'P(Positive)=0.600 is below the calibrated threshold 0.800 (the 0.50-quantile ...)'
        >>> label_check({"Negative": 0.6, "Positive": 0.4}, "Positive", 0.3, judge="second classifier b").reason
        "second classifier b prefers 'Negative' (0.600) over the target 'Positive' (0.400)"
    """
    if target not in probs:
        raise LabelMismatchError(f"The classifier returned labels {sorted(probs)}, which lack the target {target!r}")
    p = float(probs[target])
    rivals = {label: float(q) for label, q in probs.items() if label != target}
    top, p_top = max(rivals.items(), key=lambda kv: kv[1]) if rivals else (None, float("-inf"))
    prefix = f"{judge}: " if judge else ""
    if p < threshold:
        below = f"the calibrated threshold {threshold:.3f} ({source})" if source else f"the threshold {threshold:.3f}"
        return Check(name=NAME, passed=False, reason=f"{prefix}P({target})={p:.3f} is below {below}", value=p)
    if p <= p_top:
        reason = f"{judge or 'the classifier'} prefers {top!r} ({p_top:.3f}) over the target {target!r} ({p:.3f})"
        if p == p_top:
            reason = f"{prefix}the target {target!r} ties with {top!r} at {p:.3f}"
        return Check(name=NAME, passed=False, reason=reason, value=p)
    return Check(name=NAME, passed=True, value=p)


def label_checks(
    classifier: Classifier,
    items: Sequence[tuple[dict[str, str], str]],
    threshold: float,
    thresholds: Mapping[str, LabelThreshold] | None = None,
    judge: str | None = None,
) -> list[Check]:
    """``label`` checks for ``(segments, target_label)`` pairs, with one classifier call.

    ``thresholds`` (from :func:`calibrated_thresholds`) overrides ``threshold`` for the labels
    it has; ``judge`` is passed to :func:`label_check`.

    Examples:
        >>> class Always:
        ...     labels, name = ["Negative", "Positive"], "always-positive"
        ...     def predict_proba(self, inputs):
        ...         return [{"Negative": 0.1, "Positive": 0.9} for _ in inputs]
        >>> [c.passed for c in label_checks(Always(), [({"text": "x"}, "Positive"), ({"text": "y"}, "Negative")], 0.5)]
        [True, False]
        >>> label_checks(Always(), [({"text": "x"}, "Positive")], 0.5, {"Positive": LabelThreshold(0.95, "q")})[0].reason
        'P(Positive)=0.900 is below the calibrated threshold 0.950 (q)'
    """
    if not items:
        return []
    probs = classifier.predict_proba([dict(segments) for segments, _ in items])
    if len(probs) != len(items):
        raise RuntimeError(f"Classifier {classifier.name!r} returned {len(probs)} predictions for {len(items)} inputs")
    return [_judged(p, target, threshold, thresholds, judge) for p, (_, target) in zip(probs, items)]


def _judged(probs: dict[str, float], target: str, threshold: float,
            thresholds: Mapping[str, LabelThreshold] | None, judge: str | None) -> Check:
    chosen = (thresholds or {}).get(target, LabelThreshold(threshold))
    return label_check(probs, target, chosen.value, chosen.source, judge)


def _load_or_train(config: Config, cache: Cache, train_records: list[Record] | None) -> Classifier:
    from cda.explain.classifier import load_or_train_classifier

    return load_or_train_classifier(config, cache, train_records)


class SecondOpinion(Strict):
    """``filter.checks.label.second_opinion``: the seed the second classifier trains with."""

    seed: int = 17


@checks.register(NAME)
class LabelCheck(FilterCheck):
    """The ``label`` check: the task classifier reads the target label (see the module docstring).

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]},
        ...     "filter": {"checks": {"label": {"quantile": 0.5, "second_opinion": {"seed": 3}}}}})
        >>> s = cfg.filter.checks["label"]
        >>> s.threshold, s.quantile, s.second_opinion.seed
        (0.5, 0.5, 3)
    """

    class Settings(ComponentSettings):
        threshold: float = Field(default=0.5, ge=0, le=1)
        # Calibrate each target label's threshold on the run's correctly classified originals.
        quantile: float | None = Field(default=None, ge=0, le=1)
        # A second classifier, trained like the task classifier with another seed, must agree.
        second_opinion: SecondOpinion | None = None

    cost = 10
    needs = frozenset({"classifier"})
    column = "label_prob"
    column_description = "classifier probability of the target label"
    fails_when = (
        "the classifier did not read the target label (filter.checks.label.threshold; with quantile, at least as "
        "confidently as that quantile of correctly read originals of the label; with second_opinion, a second "
        "classifier trained with another seed must read it too)"
    )

    #: Builds the second classifier from ``(config with the second seed, cache, train_records)``;
    #: tests put a fake here. Default: :func:`cda.explain.classifier.load_or_train_classifier`.
    second_classifier_factory: ClassVar[Callable[[Config, Cache, list[Record] | None], Classifier]] = (
        staticmethod(_load_or_train)  # type: ignore[assignment]
    )
    #: The second classifier, once :meth:`load` has built it (``None`` without ``second_opinion``).
    second: Classifier | None = None

    def load(self) -> None:
        """Refuse a classifier that lacks a task label, before any candidate is scored; build the
        second classifier when ``second_opinion`` is set."""
        classifier, labels = self.context.classifier, self.context.config.task.labels
        self._check_labels(classifier, labels)
        opinion: SecondOpinion | None = self.settings.second_opinion  # type: ignore[attr-defined]
        if opinion is None or classifier is None or self.second is not None:
            return
        config = self.context.config
        if config.classifier.path:
            raise SecondOpinionError(
                f"filter.checks.label.second_opinion trains a second classifier like the task classifier, but "
                f"classifier.path {config.classifier.path!r} gives a ready one; drop second_opinion or classifier.path"
            )
        if opinion.seed == config.seed:
            raise SecondOpinionError(
                f"filter.checks.label.second_opinion.seed {opinion.seed} is the run's seed: the second classifier "
                "would be the task classifier itself; choose another seed"
            )
        if not self.context.train_records and not config.classifier.train.path:
            raise SecondOpinionError(
                "filter.checks.label.second_opinion needs the task classifier's training data: "
                "set classifier.train.path, or run the Filter stage through cda's runner (it passes the input rows)"
            )
        from cda.cache import Cache

        cache = self.context.cache if self.context.cache is not None else Cache(config.resolved_cache_dir())
        factory = type(self).second_classifier_factory
        self.second = factory(config.model_copy(update={"seed": opinion.seed}), cache, self.context.train_records)
        self._check_labels(self.second, labels)
        log.info("label check: second classifier %s (seed %d)", self.second.name, opinion.seed)

    @staticmethod
    def _check_labels(classifier: Classifier | None, labels: Sequence[str]) -> None:
        missing = [label for label in labels if classifier is not None and label not in classifier.labels]
        if classifier is not None and missing:
            raise LabelMismatchError(
                f"The classifier {classifier.name!r} predicts {classifier.labels}, which lacks "
                f"task label(s) {missing}; use a classifier trained on task.labels {labels}"
            )

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        """Judge every item with the task classifier (and the second one, when configured)."""
        assert self.context.classifier is not None, "the stage skips a check whose model is missing"
        threshold: float = self.settings.threshold  # type: ignore[attr-defined]
        quantile: float | None = self.settings.quantile  # type: ignore[attr-defined]
        pairs = [(dict(item.candidate.segments or {}), item.plan.target_label) for item in items]
        targets = [target for _, target in pairs]
        originals = list({id(item.record): item.record for item in items}.values())  # distinct, in order
        first = label_checks(
            self.context.classifier, pairs, threshold,
            calibrated_thresholds([(r.label, r.probs) for r in originals], targets, threshold, quantile),
        )  # fmt: skip
        if self.second is None or not items:
            return first
        judge = f"second classifier {self.second.name}"
        # One call: the originals (only needed to calibrate) and then the candidates.
        shown = [dict(r.segments) for r in originals] if quantile is not None else []
        probs = self.second.predict_proba(shown + [segments for segments, _ in pairs])
        if len(probs) != len(shown) + len(pairs):
            raise RuntimeError(f"Classifier {self.second.name!r} returned {len(probs)} predictions for "
                               f"{len(shown) + len(pairs)} inputs")  # fmt: skip
        own = calibrated_thresholds(
            [(r.label, p) for r, p in zip(originals, probs[: len(shown)])], targets, threshold, quantile, judge
        )
        second = [_judged(p, target, threshold, own, judge) for p, target in zip(probs[len(shown):], targets)]
        return [_both(a, b, judge, target) for a, b, target in zip(first, second, targets)]


def _both(first: Check, second: Check, judge: str, target: str) -> Check:
    """One ``label`` check from the task classifier's and the second classifier's: it passes when
    both do; its value stays the task classifier's ``P(target)``; the reason names the second's."""
    said = f"{judge}: P({target})={second.value:.3f}"
    if not first.passed:
        return Check(name=NAME, passed=False, reason=f"{first.reason}; {said}", value=first.value)
    if not second.passed:
        return Check(name=NAME, passed=False, reason=second.reason, value=first.value)
    return Check(name=NAME, passed=True, reason=said, value=first.value)
