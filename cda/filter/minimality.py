"""Minimality: how much of the edited segment changed, in tokens.

The distance is the Levenshtein distance between the two token sequences (insert,
delete and substitute each cost 1), divided by the length of the longer one, so it lies
in ``[0, 1]``: 0 for the same tokens, 1 when nothing is shared. Evaluation code uses
:func:`token_edit_distance` too, so generated and human counterfactuals are measured alike.

Examples:
    >>> token_edit_distance("a dull film", "a great film")
    0.3333333333333333
    >>> MinimalityCheck(MinimalityCheck.Settings(name="minimality"), None).check("a dull film", "a great film").passed
    True
"""

from __future__ import annotations

from typing import Sequence

from pydantic import Field
from rapidfuzz.distance import Levenshtein

from cda.filter.checks import CheckItem, FilterCheck
from cda.filter.tokens import tokenize
from cda.records import Check
from cda.registry import ComponentSettings, checks

NAME = "minimality"


def token_edit_distance(a: str, b: str) -> float:
    """Token-level Levenshtein distance of ``a`` and ``b``, normalised by the longer length.

    Tokens come from spaCy's blank English tokenizer; whitespace is ignored. Two texts
    without tokens are at distance 0.

    Examples:
        >>> token_edit_distance("It was bad.", "It was good.")
        0.25
        >>> token_edit_distance("It was bad.", "It was not bad at all.")
        0.42857142857142855
        >>> token_edit_distance("", "")
        0.0
    """
    ta, tb = tokenize(a), tokenize(b)
    longest = max(len(ta), len(tb))
    if longest == 0:
        return 0.0
    # rapidfuzz compares any sequences of hashables, so token tuples work as strings do.
    return Levenshtein.distance(ta, tb) / longest


@checks.register(NAME)
class MinimalityCheck(FilterCheck):
    """Passes when the edited segment is at most ``max_edit_distance`` from the original.

    Settings (``filter.checks.minimality``): ``max_edit_distance``, the largest allowed
    :func:`token_edit_distance`. Its value is the ``edit_distance`` column.

    Examples:
        >>> MinimalityCheck.Settings(name="minimality").max_edit_distance
        0.5
        >>> check = MinimalityCheck(MinimalityCheck.Settings(name="minimality", max_edit_distance=0.2), None)
        >>> check.check("a dull film", "a great film").reason
        'token edit distance 0.333 > max 0.200'
    """

    class Settings(ComponentSettings):
        max_edit_distance: float = Field(default=0.5, gt=0, le=1)

    cost = 1
    column = "edit_distance"
    column_description = "token-level Levenshtein distance to the original segment, 0..1"
    fails_when = "too many tokens changed (filter.checks.minimality.max_edit_distance)"

    def check(self, original: str, edited: str) -> Check:
        """The check for one edited segment against its original."""
        limit = self.settings.max_edit_distance  # type: ignore[attr-defined]
        distance = token_edit_distance(original, edited)
        if distance > limit:
            reason = f"token edit distance {distance:.3f} > max {limit:.3f}"
            return Check(name=self.name, passed=False, reason=reason, value=distance)
        return Check(name=self.name, passed=True, value=distance)

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        return [self.check(item.original, item.edited) for item in items]
