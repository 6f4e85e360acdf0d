"""Label consistency: the task classifier must read the counterfactual as its target label.

A candidate passes when ``P(target) >= threshold`` (``filter.checks.label.threshold``) and the target is the
classifier's single most probable label (a tie is not a flip). All candidates go to the
classifier in one call; it batches them itself.

Examples:
    >>> check = label_check({"Negative": 0.1, "Positive": 0.9}, "Positive", threshold=0.5)
    >>> check.passed, check.value
    (True, 0.9)
"""

from __future__ import annotations

from typing import Sequence

from pydantic import Field

from cda.errors import CdaError
from cda.filter.checks import CheckItem, FilterCheck
from cda.protocols import Classifier
from cda.records import Check
from cda.registry import ComponentSettings, checks

NAME = "label"


class LabelMismatchError(CdaError, ValueError):
    """The classifier's labels do not include a label the task needs."""


def label_check(probs: dict[str, float], target: str, threshold: float) -> Check:
    """The ``label`` check for one candidate's label probabilities.

    Examples:
        >>> label_check({"Negative": 0.2, "Positive": 0.8}, "Positive", 0.5).passed
        True
        >>> label_check({"Negative": 0.6, "Positive": 0.4}, "Positive", 0.3).reason
        "the classifier prefers 'Negative' (0.600) over the target 'Positive' (0.400)"
    """
    if target not in probs:
        raise LabelMismatchError(f"The classifier returned labels {sorted(probs)}, which lack the target {target!r}")
    p = float(probs[target])
    rivals = {label: float(q) for label, q in probs.items() if label != target}
    top, p_top = max(rivals.items(), key=lambda kv: kv[1]) if rivals else (None, float("-inf"))
    if p < threshold:
        return Check(name=NAME, passed=False, reason=f"P({target})={p:.3f} is below the threshold {threshold:.3f}", value=p)
    if p <= p_top:
        reason = f"the classifier prefers {top!r} ({p_top:.3f}) over the target {target!r} ({p:.3f})"
        if p == p_top:
            reason = f"the target {target!r} ties with {top!r} at {p:.3f}"
        return Check(name=NAME, passed=False, reason=reason, value=p)
    return Check(name=NAME, passed=True, value=p)


def label_checks(classifier: Classifier, items: Sequence[tuple[dict[str, str], str]], threshold: float) -> list[Check]:
    """``label`` checks for ``(segments, target_label)`` pairs, with one classifier call.

    Examples:
        >>> class Always:
        ...     labels, name = ["Negative", "Positive"], "always-positive"
        ...     def predict_proba(self, inputs):
        ...         return [{"Negative": 0.1, "Positive": 0.9} for _ in inputs]
        >>> [c.passed for c in label_checks(Always(), [({"text": "x"}, "Positive"), ({"text": "y"}, "Negative")], 0.5)]
        [True, False]
    """
    if not items:
        return []
    probs = classifier.predict_proba([dict(segments) for segments, _ in items])
    if len(probs) != len(items):
        raise RuntimeError(f"Classifier {classifier.name!r} returned {len(probs)} predictions for {len(items)} inputs")
    return [label_check(p, target, threshold) for p, (_, target) in zip(probs, items)]


@checks.register(NAME)
class LabelCheck(FilterCheck):
    """The ``label`` check: the task classifier reads the target label (see the module docstring)."""

    class Settings(ComponentSettings):
        threshold: float = Field(default=0.5, ge=0, le=1)

    cost = 10
    needs = frozenset({"classifier"})
    column = "label_prob"
    column_description = "classifier probability of the target label"
    fails_when = "the classifier did not read the target label (filter.checks.label.threshold)"

    def load(self) -> None:
        """Refuse a classifier that lacks a task label, before any candidate is scored."""
        classifier, labels = self.context.classifier, self.context.config.task.labels
        missing = [label for label in labels if classifier is not None and label not in classifier.labels]
        if classifier is not None and missing:
            raise LabelMismatchError(
                f"The classifier {classifier.name!r} predicts {classifier.labels}, which lacks "
                f"task label(s) {missing}; use a classifier trained on task.labels {labels}"
            )

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        assert self.context.classifier is not None, "the stage skips a check whose model is missing"
        pairs = [(dict(item.candidate.segments or {}), item.plan.target_label) for item in items]
        return label_checks(self.context.classifier, pairs, self.settings.threshold)  # type: ignore[attr-defined]
