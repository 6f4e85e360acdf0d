"""The search funnel of a build, per search round: plans, candidates and their fate, and how
many (original, target label) pairs have a counterfactual after each round.

A plan here is an (original, target label) pair planned in a round (the audit's
``original_index``, ``target_label``, ``round``); every pair is planned in round 1 and a later
round re-plans the pairs still without an accepted candidate. An audit written before search
rounds (no ``round`` column) counts as round 1. Plans without any candidate leave no audit row
and are not counted.

Examples:
    >>> audit = {"original_index": [0, 0, 0, 1, 1], "target_label": ["P", "P", "P", "N", "N"],
    ...          "round": [1, 1, 2, 1, 2], "accepted": [False, False, True, False, False],
    ...          "selected": [False, False, True, False, False],
    ...          "drop_reason": ["label", "parse", None, "label", "minimality"]}
    >>> [(r["round"], r["plans"], r["dropped"], r["plans_with_counterfactual"], r["cumulative_share"])
    ...  for r in search_funnel(audit)]
    [(1, 2, {'label': 2, 'parse': 1}, 0, 0.0), (2, 2, {'minimality': 1}, 1, 0.5)]
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Mapping, Sequence

from cda.evaluate.report import Table

log = logging.getLogger(__name__)

#: The audit columns the funnel reads (besides ``round``, which may be missing).
AUDIT_COLUMNS = ("original_index", "target_label", "accepted", "selected", "drop_reason")


def search_funnel(audit: Any, rows: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One dict per search round, in round order, from the build's audit split.

    Each holds ``round``; ``plans`` ((original, target) pairs planned in it); ``candidates``,
    ``accepted`` and ``dropped`` (by drop reason); ``counterfactuals`` (selected candidates) and
    ``plans_with_counterfactual`` (pairs that got one in this round); ``pairs`` (every (original,
    target) pair, i.e. round 1's plans), ``cumulative_with_counterfactual`` and ``cumulative_share``
    (those with a counterfactual after this round). With ``rows`` (the evaluation's per-counterfactual
    rows, ``kind`` ``"cda"`` with ``round`` and ``flip_<judge>``): ``confirmed_<judge>``, how many of
    the round's counterfactuals each judge gives the target label.

    Args:
        audit: the audit ``datasets.Dataset``, or a mapping of its columns to lists.
        rows: per-counterfactual rows with the judges' verdicts, if measured.

    Examples:
        >>> audit = {"original_index": [0, 1], "target_label": ["P", "N"], "accepted": [True, False],
        ...          "selected": [True, False], "drop_reason": [None, "label"]}  # no round column: all round 1
        >>> rows = [{"kind": "cda", "round": 1, "flip_task": True, "flip_independent": False}]
        >>> funnel = search_funnel(audit, rows)
        >>> funnel[0]["cumulative_share"], funnel[0]["confirmed_task"], funnel[0]["confirmed_independent"]
        (0.5, 1, 0)
    """
    columns = list(audit.column_names if hasattr(audit, "column_names") else audit)
    missing = [c for c in AUDIT_COLUMNS if c not in columns]
    if missing:
        log.warning("The audit split lacks column(s) %s: no search funnel", missing)
        return []
    data = {c: list(audit[c]) for c in AUDIT_COLUMNS}  # each column read once (a Dataset reads it from disk)
    pairs = [(int(i), t) for i, t in zip(data["original_index"], data["target_label"])]
    rounds = [int(r) for r in audit["round"]] if "round" in columns else [1] * len(pairs)
    everyone = set(pairs)
    # The judges in the rows' order (task, then independent).
    roles = list(dict.fromkeys(k.removeprefix("flip_") for r in rows or [] if r.get("kind") == "cda"
                               for k in r if k.startswith("flip_")))  # fmt: skip
    done: set[tuple[int, str]] = set()
    out = []
    for number in sorted(set(rounds)):
        at = [k for k, r in enumerate(rounds) if r == number]
        out.append(_round(number, at, pairs, data, done, len(everyone)))
        cda = [r for r in rows or [] if r.get("kind") == "cda" and int(r.get("round") or 1) == number]
        for role in roles:
            out[-1][f"confirmed_{role}"] = sum(bool(r.get(f"flip_{role}")) for r in cda)
    return out


def _round(number: int, at: list[int], pairs: list[tuple[int, str]], data: dict[str, list], done: set,
           total: int) -> dict[str, Any]:
    """One round's counts; adds the pairs that got a counterfactual in it to ``done``."""
    accepted, selected, reasons = data["accepted"], data["selected"], data["drop_reason"]
    made = {pairs[k] for k in at if selected[k]}
    done |= made
    return {
        "round": number,
        "plans": len({pairs[k] for k in at}),
        "candidates": len(at),
        "accepted": sum(bool(accepted[k]) for k in at),
        "dropped": dict(Counter(reasons[k] or "unknown" for k in at if not accepted[k]).most_common()),
        "counterfactuals": sum(bool(selected[k]) for k in at),
        "plans_with_counterfactual": len(made),
        "pairs": total,
        "cumulative_with_counterfactual": len(done),
        "cumulative_share": round(len(done) / total, 4) if total else None,
    }


def funnel_table(funnel: Sequence[Mapping[str, Any]]) -> Table:
    """The funnel as a report table: one row per round, a column per drop reason and per judge.

    Examples:
        >>> table = funnel_table([{"round": 1, "plans": 2, "candidates": 3, "accepted": 1, "dropped": {"label": 2},
        ...     "counterfactuals": 1, "plans_with_counterfactual": 1, "pairs": 2, "cumulative_with_counterfactual": 1,
        ...     "cumulative_share": 0.5, "confirmed_independent": 1}])
        >>> table.header[4], table.rows[0]
        ('dropped: label', [1, 2, 3, 1, 2, 1, 1, 1, 0.5, 1])
    """
    reasons = [r for r, _ in sum((Counter(step["dropped"]) for step in funnel), Counter()).most_common()]
    roles = [k.removeprefix("confirmed_") for k in (funnel[0] if funnel else {}) if k.startswith("confirmed_")]
    header = ["round", "plans", "candidates", "accepted", *(f"dropped: {r}" for r in reasons), "counterfactuals",
              "plans with a counterfactual", "cumulative with a counterfactual", "cumulative share",
              *(f"confirmed by the {role} judge" for role in roles)]  # fmt: skip
    rows = [
        [step["round"], step["plans"], step["candidates"], step["accepted"], *(step["dropped"].get(r, 0) for r in reasons),
         step["counterfactuals"], step["plans_with_counterfactual"], step["cumulative_with_counterfactual"],
         step["cumulative_share"], *(step[f"confirmed_{role}"] for role in roles)]
        for step in funnel
    ]  # fmt: skip
    pairs = funnel[0]["pairs"] if funnel else 0
    caption = (f"plans: (original, target label) pairs planned in the round; cumulative: of the {pairs} pairs "
               "(round 1's plans), those with a counterfactual after the round; confirmed: the round's "
               "counterfactuals the judge gives the target label")  # fmt: skip
    return Table(header, rows, caption=caption)
