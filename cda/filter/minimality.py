"""Minimality: how much of the edited segment changed, in tokens.

The distance is the Levenshtein distance between the two token sequences (insert,
delete and substitute each cost 1), divided by the length of the longer one, so it lies
in ``[0, 1]``: 0 for the same tokens, 1 when nothing is shared. Evaluation code uses
:func:`token_edit_distance` too, so generated and human counterfactuals are measured alike.

Examples:
    >>> token_edit_distance("a dull film", "a great film")
    0.3333333333333333
    >>> MinimalityCheck(0.5).check("a dull film", "a great film").passed
    True
"""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein

from cda.filter.tokens import tokenize
from cda.records import Candidate, Check

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


class MinimalityCheck:
    """Passes when the edited segment is at most ``max_edit_distance`` from the original.

    Args:
        max_edit_distance: the largest allowed :func:`token_edit_distance` (``filter.max_edit_distance``).

    Examples:
        >>> MinimalityCheck(0.2).check("a dull film", "a great film").reason
        'token edit distance 0.333 > max 0.200'
    """

    name = NAME

    def __init__(self, max_edit_distance: float) -> None:
        self.max_edit_distance = max_edit_distance

    def check(self, original: str, edited: str) -> Check:
        """The check for one edited segment against its original."""
        distance = token_edit_distance(original, edited)
        if distance > self.max_edit_distance:
            reason = f"token edit distance {distance:.3f} > max {self.max_edit_distance:.3f}"
            return Check(name=self.name, passed=False, reason=reason, value=distance)
        return Check(name=self.name, passed=True, value=distance)

    def __call__(self, original: str, candidate: Candidate, segment: str) -> Check:
        """Check ``candidate``'s ``segment`` against ``original`` and set ``candidate.edit_distance``."""
        result = self.check(original, (candidate.segments or {}).get(segment, ""))
        candidate.edit_distance = result.value
        return result
