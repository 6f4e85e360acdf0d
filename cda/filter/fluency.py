"""Fluency: the edited segment should read about as naturally as the original.

Perplexity under a language model, relative to the original's own perplexity (texts differ a
lot in absolute perplexity): a candidate passes when its perplexity is at most ``factor``
(``filter.checks.fluency.factor``) times the original's. With ``window`` (the default: 10
tokens), both are scored on the edits only: each changed region with ``window`` tokens on
either side, the same stretches of the original and of the candidate. A garbled phrase in a
long review barely moves the whole review's perplexity, and scoring the windows costs a
fraction of scoring 500-token reviews. Each distinct text is scored once, in one batched call.

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


def edit_windows(original: str, edited: str, window: int) -> tuple[str, str]:
    """The stretches of ``original`` and ``edited`` around the changes: every changed region with
    ``window`` tokens on either side (overlapping stretches merged), joined by `` … ``.

    Examples:
        >>> edit_windows("It was a dull and slow film, sadly.", "It was a lively and slow film, sadly.", 1)
        ('a dull and', 'a lively and')
        >>> edit_windows("a b c d e f g", "a X c d e f Y", 1)
        ('a b c … f g', 'a X c … f Y')
        >>> edit_windows("Same.", "Same.", 3)
        ('Same.', 'Same.')
    """
    from cda.generate.trained.alignment import changed_regions
    from cda.filter.tokens import tokens_with_offsets

    regions = changed_regions(original, edited)
    tokens = tokens_with_offsets(original)
    if not regions or not tokens:
        return original, edited
    spans: list[list[int]] = []  # token index ranges [first, last] of the stretches
    for region in regions:
        inside = [i for i, t in enumerate(tokens) if t.start < region.end and region.start < t.end]
        first, last = max(0, inside[0] - window), min(len(tokens) - 1, inside[-1] + window)
        if spans and first <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], last)
        else:
            spans.append([first, last])
    old_parts, new_parts = [], []
    for first, last in spans:
        start, end = tokens[first].start, tokens[last].end
        old_parts.append(original[start:end])
        pieces, pos = [], start
        for region in regions:
            if start <= region.start and region.end <= end:
                pieces += [original[pos : region.start], region.new]
                pos = region.end
        new_parts.append("".join(pieces) + original[pos:end])
    return " … ".join(old_parts), " … ".join(new_parts)


def fluency_checks(
    language_model: LanguageModel, items: Sequence[tuple[str, str]], factor: float, window: int | None = None
) -> list[Check]:
    """``fluency`` checks for ``(original_segment, edited_segment)`` pairs, with one model call
    (on the stretches around the edits with ``window``, see :func:`edit_windows`)."""
    if not items:
        return []
    if window is not None:
        items = [edit_windows(original, edited, window) for original, edited in items]
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
        # Score the changed regions with this many tokens on either side (None: the whole segment).
        window: int | None = Field(default=10, ge=0)

    cost = 20
    needs = frozenset({"language_model"})
    column = "perplexity"
    column_description = "language-model perplexity of the edited segment (of the stretches around its edits with filter.checks.fluency.window)"
    fails_when = "perplexity too high relative to the original (filter.checks.fluency.factor)"

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        assert self.context.language_model is not None, "the stage skips a check whose model is missing"
        pairs = [(item.original, item.edited) for item in items]
        settings = self.settings
        return fluency_checks(self.context.language_model, pairs, settings.factor, settings.window)  # type: ignore[attr-defined]
