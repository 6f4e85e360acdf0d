"""The candidates of a build's audit split, as a reviewer sees them.

Each candidate gets a stable id made of where it comes from (original row, target label,
edited segment, sample) and a hash of its text, so pushing the same build twice finds the
tasks already there, and a rebuilt candidate with other text is a new task.

Examples:
    >>> before, after = "It was a dull , slow film .", "It was a fun , fast film ."
    >>> [(op, text) for op, text in word_diff(before, after) if op != "equal"]
    [('delete', 'dull'), ('insert', 'fun'), ('delete', 'slow'), ('insert', 'fast')]
    >>> diff_html("A <b>dull</b> film", "A <b>fine</b> film")
    'A &lt;b&gt;<del>dull</del><ins>fine</ins>&lt;/b&gt; film'
"""

from __future__ import annotations

import difflib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import datasets

from cda.cache import fingerprint
from cda.records import SENTENCE_SEPARATOR
from cda.review.errors import ReviewError

#: What ``cda review push --which`` accepts.
WHICH = ("accepted", "dropped", "all")
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


@dataclass
class ReviewCandidate:
    """One generated candidate of the audit split, with what the filter said about it."""

    candidate_id: str
    row: int  # position in the audit split
    original_index: int
    source_label: str
    target_label: str
    edited_segment: str  # segment name(s), joined by commas
    sample_index: int
    segments: dict[str, str]  # the original's segments (after task.replace)
    text: str | None  # the edited segment(s) of the candidate, several joined by line breaks
    checks: list[dict] = field(default_factory=list)
    accepted: bool = False
    selected: bool = False
    drop_reason: str | None = None
    measures: dict[str, Any] = field(default_factory=dict)

    @property
    def edited_names(self) -> list[str]:
        return [name for name in self.edited_segment.split(",") if name]

    @property
    def original(self) -> str:
        """The edited segment(s) as in the original, joined like :attr:`text`."""
        return SENTENCE_SEPARATOR.join(self.segments.get(name) or "" for name in self.edited_names)

    @property
    def context(self) -> dict[str, str]:
        """The segments the candidate does not edit (the premise of a hypothesis, ...)."""
        return {name: text for name, text in self.segments.items() if name not in self.edited_names and text is not None}

    @property
    def plan_key(self) -> tuple[int, str, str]:
        """``(original_index, target_label, edited_segment)``: the edit plan the candidate belongs to."""
        return (self.original_index, self.target_label, self.edited_segment)

    @property
    def fate(self) -> str:
        """``selected``, ``accepted, not selected`` or ``dropped: <first failed check>``."""
        if self.selected:
            return "selected"
        return "accepted, not selected" if self.accepted else f"dropped: {self.drop_reason}"


def candidate_id(original_index: int, target: str, segment: str, sample_index: int, text: str | None, raw: str | None) -> str:
    """A stable id: where the candidate comes from, then a hash of what it says.

    Examples:
        >>> candidate_id(12, "Positive", "text", 3, "A fine film.", "[BLANK1]: fine")
        '12-Positive-text-s3-37cb5267'
    """
    digest = fingerprint(original_index, target, segment, sample_index, text, raw)[:8]
    return f"{original_index}-{_UNSAFE.sub('_', target)}-{_UNSAFE.sub('_', segment)}-s{sample_index}-{digest}"


def read_candidates(audit: datasets.Dataset) -> list[ReviewCandidate]:
    """Every candidate of an audit split, in its order (ids made unique by a ``-2``, ``-3`` suffix)."""
    measure_names = [c for c in ("label_prob", "edit_distance", "perplexity") if c in audit.column_names]
    known = {"original_index", "segments", "source_label", "target_label", "edited_segment", "masked", "spans",
             "sample_index", "raw", "prompt", "parsed", "error", "checks", "accepted", "selected", "drop_reason",
             "generator", "prompt_template"}  # fmt: skip
    measure_names += [c for c in audit.column_names if c not in known and c not in measure_names]
    out: list[ReviewCandidate] = []
    seen: dict[str, int] = {}
    for row, values in enumerate(audit):
        cid = candidate_id(int(values["original_index"]), values["target_label"], values["edited_segment"],
                           int(values["sample_index"]), values["parsed"], values["raw"])  # fmt: skip
        seen[cid] = seen.get(cid, 0) + 1
        if seen[cid] > 1:
            cid = f"{cid}-{seen[cid]}"
        out.append(ReviewCandidate(
            candidate_id=cid, row=row, original_index=int(values["original_index"]),
            source_label=values["source_label"], target_label=values["target_label"],
            edited_segment=values["edited_segment"], sample_index=int(values["sample_index"]),
            segments=dict(values["segments"]), text=values["parsed"], checks=json.loads(values["checks"] or "[]"),
            accepted=bool(values["accepted"]), selected=bool(values["selected"]), drop_reason=values["drop_reason"],
            measures={name: values[name] for name in measure_names},
        ))  # fmt: skip
    return out


def choose(candidates: Iterable[ReviewCandidate], which: str, with_text: bool = True) -> list[ReviewCandidate]:
    """The candidates ``--which`` asks for that have text to review (a parse failure has none;
    ``with_text=False`` keeps them).

    ``accepted``: those that passed every check (the selected ones among them); ``dropped``:
    those a check dropped; ``all``: both.

    Raises:
        ReviewError: ``which`` is not one of :data:`WHICH`.
    """
    if which not in WHICH:
        raise ReviewError(f"--which {which!r} is not allowed; use one of {', '.join(WHICH)}")
    keep = {"accepted": lambda c: c.accepted, "dropped": lambda c: not c.accepted, "all": lambda c: True}[which]
    return [c for c in candidates if (c.text is not None or not with_text) and keep(c)]


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """``(op, text)`` pieces turning ``before`` into ``after`` word by word: ``equal``, ``delete``, ``insert``.

    Whitespace between two changed words belongs to the change, so a replaced phrase reads as
    one deletion and one insertion.
    """
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", "".join(b[j1:j2])))
    return _merge(out)


def _merge(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # An "equal" piece of whitespace alone between changes joins the changes around it.
    out: list[tuple[str, str]] = []
    for k, (op, text) in enumerate(pieces):
        between = (op == "equal" and not text.strip() and 0 < k < len(pieces) - 1
                   and pieces[k - 1][0] != "equal" and pieces[k + 1][0] != "equal")  # fmt: skip
        if between:
            for changed in ("delete", "insert"):
                _append(out, changed, text)
            continue
        _append(out, op, text)
    # Adjacent deletions and insertions read best as all deletions, then all insertions.
    ordered: list[tuple[str, str]] = []
    run: list[tuple[str, str]] = []
    for piece in out + [("equal", "")]:
        if piece[0] == "equal":
            deleted = "".join(t for op, t in run if op == "delete")
            inserted = "".join(t for op, t in run if op == "insert")
            ordered += [(op, t) for op, t in (("delete", deleted), ("insert", inserted)) if t]
            run = []
            if piece[1]:
                ordered.append(piece)
        else:
            run.append(piece)
    return ordered


def _append(out: list[tuple[str, str]], op: str, text: str) -> None:
    if out and out[-1][0] == op:
        out[-1] = (op, out[-1][1] + text)
    else:
        out.append((op, text))


def diff_html(before: str, after: str) -> str:
    """The word diff as HTML: deleted words in ``<del>``, inserted ones in ``<ins>``, all text escaped."""
    tags = {"delete": "del", "insert": "ins"}
    parts = []
    for op, text in word_diff(before, after):
        escaped = html.escape(text, quote=False).replace("\n", "<br/>")
        parts.append(f"<{tags[op]}>{escaped}</{tags[op]}>" if op in tags else escaped)
    return "".join(parts)


def describe_checks(checks: list[dict]) -> str:
    """The checks as one line a reviewer reads: ``✓ logic · ✗ label 0.04 (p=0.04 < 0.5)``.

    Examples:
        >>> describe_checks([{"name": "logic", "passed": True}, {"name": "label", "passed": False,
        ...                  "value": 0.0412, "reason": "p(target) 0.04 < 0.5"}])
        '✓ logic · ✗ label 0.0412 (p(target) 0.04 < 0.5)'
    """
    if not checks:
        return "no checks ran"
    parts = []
    for check in checks:
        text = f"{'✓' if check.get('passed') else '✗'} {check.get('name')}"
        value = check.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
            text += f" {value:.3g}"
        if check.get("reason"):
            text += f" ({check['reason']})"
        parts.append(text)
    return " · ".join(parts)
