"""Fluency: the edited segment should read about as naturally as the original.

Perplexity under a language model, relative to the original segment's own perplexity
(texts differ a lot in absolute perplexity): a candidate passes when its perplexity is
at most ``factor`` (``filter.checks.fluency.factor``) times the original's. Each distinct original is
scored once, in the same batched call as the candidates.

Examples:
    >>> class Flat:
    ...     name = "flat"
    ...     def perplexity(self, texts):
    ...         return [10.0 * len(t.split()) for t in texts]
    >>> [c.passed for c in fluency_checks(Flat(), [("a b", "a c"), ("a b", "a b c d e f g")], 3.0)]
    [True, False]
"""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import Field

from cda.filter.checks import CheckItem, FilterCheck
from cda.protocols import LanguageModel
from cda.records import Check
from cda.registry import ComponentSettings, checks

NAME = "fluency"


def fluency_check(perplexity: float, original_perplexity: float, factor: float) -> Check:
    """The ``fluency`` check for one candidate, given both perplexities.

    Examples:
        >>> fluency_check(50.0, 10.0, 3.0).reason
        'perplexity 50.0 > 3 x the original 10.0 (= 30.0)'
    """
    if not math.isfinite(perplexity):
        return Check(name=NAME, passed=False, reason=f"perplexity is {perplexity}", value=None)
    if not math.isfinite(original_perplexity):
        # The original could not be scored: there is no yardstick, so the candidate is not held to one.
        return Check(name=NAME, passed=True, reason=f"original perplexity is {original_perplexity}", value=perplexity)
    limit = factor * original_perplexity
    if perplexity > limit:
        reason = f"perplexity {perplexity:.1f} > {factor:g} x the original {original_perplexity:.1f} (= {limit:.1f})"
        return Check(name=NAME, passed=False, reason=reason, value=perplexity)
    return Check(name=NAME, passed=True, value=perplexity)


def fluency_checks(language_model: LanguageModel, items: Sequence[tuple[str, str]], factor: float) -> list[Check]:
    """``fluency`` checks for ``(original_segment, edited_segment)`` pairs, with one model call."""
    if not items:
        return []
    originals = list(dict.fromkeys(original for original, _ in items))
    texts = originals + [edited for _, edited in items]
    scores = [float(s) for s in language_model.perplexity(texts)]
    if len(scores) != len(texts):
        raise RuntimeError(
            f"Language model {language_model.name!r} returned {len(scores)} perplexities for {len(texts)} texts"
        )
    reference = dict(zip(originals, scores[: len(originals)]))
    return [
        fluency_check(score, reference[original], factor)
        for score, (original, _) in zip(scores[len(originals) :], items)
    ]


@checks.register(NAME)
class FluencyCheck(FilterCheck):
    """The ``fluency`` check: perplexity at most ``factor`` times the original's (see the module docstring)."""

    class Settings(ComponentSettings):
        factor: float = Field(default=3.0, gt=0)

    cost = 20
    needs = frozenset({"language_model"})
    column = "perplexity"
    column_description = "language-model perplexity of the edited segment"
    fails_when = "perplexity too high relative to the original (filter.checks.fluency.factor)"

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        assert self.context.language_model is not None, "the stage skips a check whose model is missing"
        pairs = [(item.original, item.edited) for item in items]
        return fluency_checks(self.context.language_model, pairs, self.settings.factor)  # type: ignore[attr-defined]
