"""Which records get edit plans (``edit.select``): every record, or a sample of a large set.

The records are ranked by ``order`` (``all``: input order; ``least_confident`` /
``most_confident``: by the classifier's probability of the gold label, ``record.probs[record.label]``
from Explain, records without one last; ``random``: shuffled, seeded), then ``per_label`` keeps
the first records of each gold label and ``limit`` the first of those. The others get no plans
and stay in the dataset as originals.

Examples:
    >>> from cda.config import SelectConfig
    >>> records = [Record(index=i, segments={"text": "x"}, label=label, probs={label: p})
    ...            for i, (label, p) in enumerate([("a", 0.9), ("b", 0.2), ("a", 0.4), ("a", 0.1)])]
    >>> [r.index for r in select_records(records, SelectConfig(order="least_confident", per_label=1), seed=0)]
    [3, 1]
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Sequence

from cda.config import SelectConfig
from cda.records import Record

log = logging.getLogger(__name__)


def gold_prob(record: Record) -> float | None:
    """The classifier's probability of the record's gold label, ``None`` before Explain filled ``probs``.

    Examples:
        >>> gold_prob(Record(index=0, segments={"t": "x"}, label="a", probs={"a": 0.3, "b": 0.7}))
        0.3
        >>> gold_prob(Record(index=0, segments={"t": "x"}, label="a")) is None
        True
    """
    return record.probs.get(record.label)


def rank(records: Sequence[Record], order: str, seed: int = 0) -> list[Record]:
    """``records`` in the order ``edit.select.order`` names (ties keep the input order).

    Examples:
        >>> rs = [Record(index=i, segments={"t": "x"}, label="a", probs=p)
        ...       for i, p in enumerate([{"a": 0.5}, {}, {"a": 0.2}])]
        >>> [r.index for r in rank(rs, "least_confident")], [r.index for r in rank(rs, "most_confident")]
        ([2, 0, 1], [0, 2, 1])
        >>> sorted(r.index for r in rank(rs, "random", seed=1)), [r.index for r in rank(rs, "all")]
        ([0, 1, 2], [0, 1, 2])
    """
    if order == "all":
        return list(records)
    if order == "random":
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    if order not in ("least_confident", "most_confident"):
        raise ValueError(f"edit.select.order must be all, least_confident, most_confident or random; got {order!r}")
    sign = 1.0 if order == "least_confident" else -1.0

    def key(record: Record) -> tuple[bool, float]:
        p = gold_prob(record)
        return (p is None, 0.0 if p is None else sign * p)

    return sorted(records, key=key)


def select_records(records: Sequence[Record], select: SelectConfig, seed: int = 0) -> list[Record]:
    """The records that get edit plans, in the order chosen: :func:`rank`, then ``per_label``, then ``limit``.

    Logs how many were chosen and by which setting (nothing when every record is chosen by default).

    Examples:
        >>> from cda.config import SelectConfig
        >>> rs = [Record(index=i, segments={"t": "x"}, label=label) for i, label in enumerate("aabab")]
        >>> [r.index for r in select_records(rs, SelectConfig(per_label=2, limit=3))]
        [0, 1, 2]
        >>> len(select_records(rs, SelectConfig()))
        5
    """
    ranked = rank(records, select.order, seed)
    if select.order in ("least_confident", "most_confident"):
        missing = sum(gold_prob(r) is None for r in records)
        if missing:
            log.warning("edit.select: %d of %d records have no classifier probability of their label "
                        "(Explain not run on them?) and rank last", missing, len(records))  # fmt: skip
    if select.per_label is not None:
        seen: Counter[str] = Counter()
        kept = []
        for record in ranked:
            seen[record.label] += 1
            if seen[record.label] <= select.per_label:
                kept.append(record)
        ranked = kept
    chosen = ranked[: select.limit]
    if select != SelectConfig():
        labels = ", ".join(f"{label} {n}" for label, n in sorted(Counter(r.label for r in chosen).items()))
        log.info("edit.select (order %s, per_label %s, limit %s): %d of %d records get edit plans (%s); "
                 "the other %d stay as originals only", select.order, select.per_label, select.limit, len(chosen),
                 len(records), labels or "none", len(records) - len(chosen))  # fmt: skip
    return chosen
