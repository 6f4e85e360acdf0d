"""How often the filter and the reviewers agree, overall and per check, for ``cda evaluate``.

Read from ``decisions.jsonl`` (written by ``cda review pull``), where each line holds a
reviewer's decision and the filter's verdict on the same candidate. Agreement counts
**accepted** against **rejected** candidates (a corrected one was neither right nor wrong
as generated; it is counted on its own). Per check, only the candidates the check ran on
count: a check that needs a model sees only the candidates that passed the cheaper ones.

Examples:
    >>> lines = [
    ...     {"status": "accepted", "filter": {"accepted": True, "checks": [{"name": "label", "passed": True}]}},
    ...     {"status": "rejected", "reasons": ["label not flipped"],
    ...      "filter": {"accepted": False, "drop_reason": "label", "checks": [{"name": "label", "passed": False}]}},
    ...     {"status": "accepted", "filter": {"accepted": False, "drop_reason": "label",
    ...      "checks": [{"name": "label", "passed": False}]}},
    ... ]
    >>> m = review_metrics(lines)
    >>> m["agreement"][0]["check"], m["agreement"][0]["agreement"], m["agreement"][0]["fail_accept"]
    ('filter (all checks)', 0.6667, 1)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from cda.evaluate.report import Section, Table, Text

DECISIONS_FILE = "decisions.jsonl"
OVERALL = "filter (all checks)"


def find_decisions(root: Path) -> Path | None:
    """``decisions.jsonl`` of a reviewed folder, or of ``<build>/review``; ``None`` when there is none."""
    for path in (root / DECISIONS_FILE, root / "review" / DECISIONS_FILE):
        if path.is_file():
            return path
    return None


def read_decisions(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _kappa(a: int, b: int, c: int, d: int) -> float | None:
    """Cohen's kappa of a 2x2 table [[a, b], [c, d]] (rows: filter pass/fail; columns: accept/reject)."""
    n = a + b + c + d
    if n == 0:
        return None
    observed = (a + d) / n
    expected = ((a + b) * (a + c) + (c + d) * (b + d)) / (n * n)
    return None if expected >= 1 else round((observed - expected) / (1 - expected), 4)


def _row(name: str, pairs: list[tuple[bool, str]]) -> dict[str, Any]:
    """Counts of (filter passed, reviewer status) pairs, and agreement on the accepted/rejected ones."""
    count = Counter(pairs)
    a, b = count[(True, "accepted")], count[(True, "rejected")]
    c, d = count[(False, "accepted")], count[(False, "rejected")]
    n = a + b + c + d
    return {
        "check": name, "reviewed": n, "pass_accept": a, "pass_reject": b, "fail_accept": c, "fail_reject": d,
        "agreement": round((a + d) / n, 4) if n else None, "kappa": _kappa(a, b, c, d),
        "corrected_pass": count[(True, "corrected")], "corrected_fail": count[(False, "corrected")],
    }  # fmt: skip


def review_metrics(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Decision counts, filter-vs-reviewer agreement (overall and per check) and reject reasons."""
    records = list(records)
    statuses = Counter(r["status"] for r in records)
    decided = [r for r in records if r["status"] in ("accepted", "rejected", "corrected")]
    rows = [_row(OVERALL, [(bool(r["filter"]["accepted"]), r["status"]) for r in decided])]
    names = list(dict.fromkeys(c["name"] for r in decided for c in r["filter"].get("checks") or []))
    for name in names:
        pairs = [(bool(c["passed"]), r["status"]) for r in decided for c in r["filter"].get("checks") or [] if c["name"] == name]
        rows.append(_row(name, pairs))
    reasons: dict[str, Counter] = {}
    for r in records:
        if r["status"] != "rejected":
            continue
        for reason in r.get("reasons") or ["(none given)"]:
            fate = "kept by the filter" if r["filter"]["accepted"] else f"dropped: {r['filter'].get('drop_reason')}"
            reasons.setdefault(reason, Counter())[fate] += 1
    rechecked = [r for r in records if r.get("recheck") is not None]
    reviewers = Counter(r.get("reviewer") or "unknown" for r in decided)
    return {
        "candidates": len(records),
        "decisions": {s: statuses.get(s, 0) for s in ("accepted", "corrected", "rejected", "pending")},
        "reviewers": dict(reviewers.most_common()),
        "agreement": rows,
        "reject_reasons": {k: dict(v.most_common()) for k, v in sorted(reasons.items())},
        "corrections_rechecked": len(rechecked),
        "corrections_passing_recheck": sum(bool(r["recheck"]["passed"]) for r in rechecked),
        "rescued": sum(1 for r in records if r.get("in_dataset") and not r["filter"].get("selected")),
    }


def review_summary(root: Path) -> dict[str, Any] | None:
    """:func:`review_metrics` of the decisions beside a build (``None`` when it was never pulled)."""
    path = find_decisions(root)
    if path is None:
        return None
    return {"path": str(path), **review_metrics(read_decisions(path))}


def agreement_table(review: dict[str, Any], compact: bool = False) -> Table:
    """The filter-vs-reviewer table (``compact``: short headers, as ``cda review pull`` prints it)."""
    header = ["check", "reviewed", "pass & accepted", "pass & rejected", "fail & accepted", "fail & rejected",
              "agreement", "Cohen's κ", "corrected (pass / fail)"]  # fmt: skip
    if compact:
        header = ["check", "n", "P&A", "P&R", "F&A", "F&R", "agree", "κ", "corr P/F"]
    rows = [[OVERALL.split()[0] if compact and r["check"] == OVERALL else r["check"], r["reviewed"], r["pass_accept"],
             r["pass_reject"], r["fail_accept"], r["fail_reject"], r["agreement"], r["kappa"],
             f"{r['corrected_pass']} / {r['corrected_fail']}"] for r in review["agreement"]]  # fmt: skip
    return Table(header, rows, caption="pass/fail (P/F): the filter's verdict; accepted/rejected (A/R): the reviewer's. "
                 "Agreement over accepted + rejected; per check, only candidates the check ran on")  # fmt: skip


def review_sections(review: dict[str, Any] | None) -> list[Section]:
    """The report's "Human review" section (nothing when the build was never reviewed)."""
    if not review:
        return []
    d = review["decisions"]
    reviewers = ", ".join(f"{who} ({n})" for who, n in review["reviewers"].items()) or "none yet"
    lines = [
        f"{review['candidates']} candidates in the review project ({review['path']}): {d['accepted']} accepted, "
        f"{d['corrected']} corrected, {d['rejected']} rejected, {d['pending']} pending; reviewers: {reviewers}.",
        f"{review['corrections_passing_recheck']} of {review['corrections_rechecked']} corrected texts pass the build's "
        f"filter again; {review['rescued']} candidates the filter had not selected are in the reviewed dataset.",
    ]  # fmt: skip
    blocks: list[Any] = [Text(line) for line in lines] + [agreement_table(review)]
    if review["reject_reasons"]:
        fates = sorted({f for per in review["reject_reasons"].values() for f in per})
        blocks.append(Table(["reject reason", *fates],
                            [[reason, *(per.get(f, 0) for f in fates)] for reason, per in review["reject_reasons"].items()],
                            caption="rejected candidates by the reviewer's reason and what the filter did with them"))  # fmt: skip
    return [Section("Human review: the filter against reviewers", blocks)]
