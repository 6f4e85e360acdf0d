"""What reviewers decided, read from a Label Studio snapshot export.

Per candidate (the task's ``candidate_id``), from its latest submitted annotation:

* ``accepted`` — accept, the text box left as the candidate;
* ``corrected`` — accept with edited text: ``text`` holds the reviewer's version;
* ``rejected`` — reject, with the ticked ``reasons``;
* ``pending`` — no submitted annotation yet (a skipped task is pending too).

Examples:
    >>> task = {"id": 7, "data": {"candidate_id": "c1", "counterfactual": "A fine film."}, "annotations": [
    ...     {"id": 1, "completed_by": {"id": 1, "email": "ana@example.org"}, "updated_at": "2026-01-02T10:00:00Z",
    ...      "was_cancelled": False, "lead_time": 9.5, "result": [
    ...         {"from_name": "decision", "type": "choices", "value": {"choices": ["accept"]}},
    ...         {"from_name": "correction", "type": "textarea", "value": {"text": ["A great film."]}}]}]}
    >>> d = decisions_from_export([task])["c1"]
    >>> d.status, d.text, d.reviewer
    ('corrected', 'A great film.', 'ana@example.org')
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from cda.review.labeling import ACCEPT, CORRECTION, DECISION, REASONS, REJECT

log = logging.getLogger(__name__)

STATUSES = ("accepted", "corrected", "rejected", "pending")
#: What a reviewed dataset row says of a counterfactual whose candidate was never pushed.
UNREVIEWED = "unreviewed"


@dataclass
class Decision:
    """A reviewer's decision on one candidate (``text``: the correction, when ``corrected``)."""

    candidate_id: str
    status: str
    text: str | None = None
    reasons: list[str] = field(default_factory=list)
    reviewer: str | None = None
    time: str | None = None
    lead_time_s: float | None = None
    task_id: int | None = None
    annotations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def keeps(self) -> bool:
        """The reviewer wants the candidate in the data (accepted or corrected)."""
        return self.status in ("accepted", "corrected")


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _reviewer(annotation: dict) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or (f"user {who['id']}" if "id" in who else None)
    return None if who is None else f"user {who}"


def _values(annotation: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in annotation.get("result") or []:
        value = item.get("value") or {}
        if "choices" in value:
            out[item.get("from_name")] = list(value["choices"])
        elif "text" in value:
            text = value["text"]
            out[item.get("from_name")] = "\n".join(text) if isinstance(text, list) else str(text)
    return out


def decision_of(task: dict) -> Decision:
    """The decision on one exported task: its latest submitted, not cancelled annotation."""
    data = task.get("data") or {}
    cid = str(data.get("candidate_id"))
    submitted = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    base = {"candidate_id": cid, "task_id": task.get("id"), "annotations": len(submitted)}
    if not submitted:
        return Decision(status="pending", **base)
    latest = max(submitted, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id") or 0))
    values = _values(latest)
    who = {"reviewer": _reviewer(latest), "time": latest.get("updated_at") or latest.get("created_at"),
           "lead_time_s": latest.get("lead_time")}  # fmt: skip
    choice = (values.get(DECISION) or [None])[0]
    if choice == REJECT:
        return Decision(status="rejected", reasons=list(values.get(REASONS) or []), **who, **base)
    if choice == ACCEPT:
        corrected = (values.get(CORRECTION) or "").strip()
        if corrected and not _same(corrected, str(data.get("counterfactual") or "")):
            return Decision(status="corrected", text=corrected, **who, **base)
        return Decision(status="accepted", **who, **base)
    log.warning("task %s (candidate %s): an annotation without accept/reject counts as pending", task.get("id"), cid)
    return Decision(status="pending", **who, **base)


def decisions_from_export(tasks: Iterable[dict]) -> dict[str, Decision]:
    """``candidate_id`` -> :class:`Decision` for every task of a snapshot export.

    Tasks without a ``candidate_id`` (not pushed by cda) are left out. Should a candidate
    sit in two tasks, the one with a decision (else the later task) wins.
    """
    out: dict[str, Decision] = {}
    for task in tasks:
        if not (task.get("data") or {}).get("candidate_id"):
            continue
        decision = decision_of(task)
        earlier = out.get(decision.candidate_id)
        if earlier is None or earlier.status == "pending":
            out[decision.candidate_id] = decision
    return out
