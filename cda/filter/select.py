"""Choose one counterfactual per edit plan among its accepted candidates.

Order: highest ``label_prob`` (the clearest flip), then lowest ``edit_distance`` (the
most minimal edit), then lowest ``sample_index``. A value a check did not set counts as
worst.

Examples:
    >>> from cda.records import Candidate, Check, EditPlan
    >>> ok = [Check(name="label", passed=True)]
    >>> plan = EditPlan(target_label="Positive", segment="text", candidates=[
    ...     Candidate(segments={"text": "a"}, sample_index=0, checks=ok, label_prob=0.8, edit_distance=0.4),
    ...     Candidate(segments={"text": "b"}, sample_index=1, checks=ok, label_prob=0.8, edit_distance=0.2)])
    >>> select_best(plan)
    1
"""

from __future__ import annotations

import math
from typing import Iterable

from cda.records import Candidate, EditPlan, Record


def _rank(candidate: Candidate) -> tuple[float, float, int]:
    prob = candidate.label_prob if candidate.label_prob is not None else -math.inf
    distance = candidate.edit_distance if candidate.edit_distance is not None else math.inf
    return (-prob, distance, candidate.sample_index)


def select_best(plan: EditPlan) -> int | None:
    """Set and return ``plan.selected``: the position of the best accepted candidate, or ``None``.

    Examples:
        >>> select_best(EditPlan(target_label="Positive", segment="text")) is None
        True
    """
    accepted = [i for i, c in enumerate(plan.candidates) if c.accepted]
    plan.selected = min(accepted, key=lambda i: (_rank(plan.candidates[i]), i)) if accepted else None
    return plan.selected


def select_all(records: Iterable[Record]) -> int:
    """Run :func:`select_best` on every plan; return how many plans got a counterfactual.

    Examples:
        >>> select_all([])
        0
    """
    return sum(select_best(plan) is not None for record in records for plan in record.plans)
