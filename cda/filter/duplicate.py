"""Duplicate: a candidate that repeats an earlier sample of the same plan adds nothing.

Texts are compared after whitespace normalisation. The first occurrence passes; each
repeat fails with ``"duplicate of sample k"`` (``k`` is the first one's ``sample_index``).
Candidates without parsed text are not compared.

Examples:
    >>> from cda.records import Candidate, EditPlan
    >>> plan = EditPlan(target_label="Positive", segment="text", candidates=[
    ...     Candidate(segments={"text": "A good film."}, sample_index=0),
    ...     Candidate(segments={"text": "A  good film. "}, sample_index=1)])
    >>> [c.reason for c in check_duplicates(plan).values()]
    ['', 'duplicate of sample 0']
"""

from __future__ import annotations

from typing import Sequence

from cda.filter.checks import CheckItem, FilterCheck
from cda.filter.tokens import normalize_space
from cda.records import Check, EditPlan
from cda.registry import checks

NAME = "duplicate"


def check_duplicates(plan: EditPlan) -> dict[int, Check]:
    """A ``duplicate`` check for every parsed candidate, keyed by its position in ``plan.candidates``.

    Examples:
        >>> check_duplicates(EditPlan(target_label="Positive", segment="text"))
        {}
    """
    first: dict[tuple[tuple[str, str], ...], int] = {}
    out: dict[int, Check] = {}
    for position, candidate in enumerate(plan.candidates):
        if candidate.error is not None or candidate.segments is None:
            continue
        key = tuple(sorted((name, normalize_space(text)) for name, text in candidate.segments.items()))
        if key in first:
            out[position] = Check(name=NAME, passed=False, reason=f"duplicate of sample {first[key]}")
        else:
            first[key] = candidate.sample_index
            out[position] = Check(name=NAME, passed=True)
    return out


@checks.register(NAME)
class DuplicateCheck(FilterCheck):
    """The ``duplicate`` check: every parsed candidate, grouped by plan (no settings)."""

    cost = 3
    fails_when = "the same text as an earlier sample for the same plan"

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        by_plan: dict[int, dict[int, Check]] = {}
        out = []
        for item in items:
            plan_checks = by_plan.setdefault(id(item.plan), check_duplicates(item.plan))
            out.append(plan_checks[item.plan.candidates.index(item.candidate)])
        return out
