"""Edit plans: which rationale spans of which segment to change, toward which label.

Pure functions over records: spans are merged and put in text order, then the edited
segment is masked with numbered blanks (``[BLANK1]``, ``[BLANK2]`` ...) that the infill
prompt asks the generator to fill.

Examples:
    >>> from cda.config import EditConfig, TaskConfig
    >>> from cda.records import Record, Span
    >>> task = TaskConfig(segments={"text": "Text"}, label_column="y", labels=["Negative", "Positive"])
    >>> r = Record(index=0, segments={"text": "A dull, boring film."}, label="Negative",
    ...            spans=[Span(segment="text", start=8, end=14), Span(segment="text", start=2, end=6)])
    >>> [p.masked for p in make_plans(r, task, EditConfig())]
    ['A [BLANK1], [BLANK2] film.']
    >>> [p.masked for p in make_plans(r, task, EditConfig(merge_gap=2))]
    ['A [BLANK1] film.']
"""

from __future__ import annotations

import re

from cda.config import EditConfig, TaskConfig
from cda.records import EditPlan, Record, Span
from cda.tasks import editable_segments, target_labels


def _is_gap(text: str) -> bool:
    """True when the text between two spans is only whitespace and punctuation."""
    return all(ch.isspace() or not ch.isalnum() for ch in text)


def merge_spans(text: str, spans: list[Span], gap: int) -> list[Span]:
    """Spans of one segment in text order, overlapping or near ones merged.

    Two spans merge when they overlap or are separated by at most ``gap`` characters
    that are all whitespace or punctuation (``"dull, boring"`` becomes one span with
    ``gap >= 2``). A merged span keeps the highest score; ``text`` is refilled from the
    segment. Empty or out-of-range spans are clipped or dropped.

    Examples:
        >>> spans = [Span(segment="t", start=8, end=14, score=0.5), Span(segment="t", start=2, end=6, score=0.9)]
        >>> [(s.start, s.end, s.text, s.score) for s in merge_spans("A dull, boring film.", spans, gap=2)]
        [(2, 14, 'dull, boring', 0.9)]
        >>> [s.text for s in merge_spans("A dull, boring film.", spans, gap=1)]
        ['dull', 'boring']
    """
    clipped = []
    for span in spans:
        start, end = max(0, span.start), min(len(text), span.end)
        if start < end:
            clipped.append(span.model_copy(update={"start": start, "end": end}))
    clipped.sort(key=lambda s: (s.start, s.end))
    merged: list[Span] = []
    for span in clipped:
        last = merged[-1] if merged else None
        if last is not None and (
            span.start <= last.end or (span.start - last.end <= gap and _is_gap(text[last.end : span.start]))
        ):
            merged[-1] = last.model_copy(update={"end": max(last.end, span.end), "score": max(last.score, span.score)})
        else:
            merged.append(span)
    return [s.model_copy(update={"text": text[s.start : s.end]}) for s in merged]


def mask_segment(text: str, spans: list[Span], blank: str = "[BLANK{i}]") -> str:
    """The text with span ``k`` (1-based, text order) replaced by ``blank.format(i=k)``.

    ``spans`` must be sorted and non-overlapping (as :func:`merge_spans` returns them).

    Examples:
        >>> mask_segment("A dull film.", [Span(segment="t", start=2, end=6)])
        'A [BLANK1] film.'
    """
    parts, pos = [], 0
    for k, span in enumerate(spans, start=1):
        parts.append(text[pos : span.start])
        parts.append(blank.format(i=k))
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def fill_blanks(text: str, spans: list[Span], replacements: list[str]) -> str:
    """The text with span ``k`` replaced by ``replacements[k]`` (the inverse of masking).

    Examples:
        >>> fill_blanks("A dull film.", [Span(segment="t", start=2, end=6)], ["lively"])
        'A lively film.'
    """
    if len(replacements) != len(spans):
        raise ValueError(f"{len(spans)} spans but {len(replacements)} replacements")
    parts, pos = [], 0
    for span, new in zip(spans, replacements):
        parts.append(text[pos : span.start])
        parts.append(new)
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def make_plans(record: Record, task: TaskConfig, edit: EditConfig) -> list[EditPlan]:
    """One plan per target label and per editable segment that has rationale spans.

    A record whose editable segments have no spans still gets one plan per target
    label, on the first editable segment, with no spans and the segment unmasked: the
    rewrite mode can still use it and the infill mode turns it into an error candidate,
    so no record is dropped silently.

    Examples:
        >>> from cda.config import EditConfig, TaskConfig
        >>> task = TaskConfig(segments={"premise": "p", "hypothesis": "h"}, label_column="y",
        ...                   labels=["entailment", "neutral", "contradiction"])
        >>> r = Record(index=0, segments={"premise": "A dog runs.", "hypothesis": "An animal moves."},
        ...            label="entailment", spans=[Span(segment="hypothesis", start=3, end=9)])
        >>> [(p.target_label, p.masked) for p in make_plans(r, task, EditConfig())]
        [('neutral', 'An [BLANK1] moves.'), ('contradiction', 'An [BLANK1] moves.')]
    """
    editable = editable_segments(task)
    by_segment = {
        name: merge_spans(record.segments[name], [s for s in record.spans if s.segment == name], edit.merge_gap)
        for name in editable
        if name in record.segments
    }
    with_spans = [name for name, spans in by_segment.items() if spans]
    segments = with_spans or editable[:1]
    plans = []
    for target in target_labels(task, record.label):
        for name in segments:
            spans = by_segment.get(name, [])
            plans.append(
                EditPlan(
                    target_label=target,
                    segment=name,
                    spans=spans,
                    masked=mask_segment(record.segments[name], spans, edit.blank),
                )
            )
    return plans


def masked_window(text: str, spans: list[Span], blank: str = "[BLANK{i}]", context_words: int | None = None) -> str:
    """The masked text cut to ``context_words`` words on each side of every blank.

    Parts around blanks that lie further apart are joined with `` … ``, so the prompt for a
    long review stays short (the trained generator sees the same windows in training and at
    generation). ``None`` keeps the whole masked text. ``spans`` must be sorted and
    non-overlapping (as :func:`merge_spans` returns them); blanks keep their global numbers.

    Examples:
        >>> text = "one two three four five six seven eight nine ten"
        >>> masked_window(text, [Span(segment="t", start=8, end=13)], context_words=1)
        'two [BLANK1] four'
        >>> spans = [Span(segment="t", start=0, end=3), Span(segment="t", start=45, end=48)]
        >>> masked_window(text, spans, context_words=1)
        '[BLANK1] two … nine [BLANK2]'
    """
    if context_words is None or not spans:
        return mask_segment(text, spans, blank)
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    windows: list[list[int]] = []  # character ranges, merged when their words touch
    for span in spans:
        inside = [k for k, (s, e) in enumerate(words) if e > span.start and s < span.end] or [0]
        first, last = max(0, inside[0] - context_words), min(len(words) - 1, inside[-1] + context_words)
        start, end = min(words[first][0], span.start), max(words[last][1], span.end)
        if windows and start <= windows[-1][1] + 1:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([start, end])
    parts = []
    for start, end in windows:
        inner, numbers = [], []
        for k, span in enumerate(spans, start=1):
            if start <= span.start and span.end <= end:
                inner.append(span.model_copy(update={"start": span.start - start, "end": span.end - start}))
                numbers.append(k)
        piece, pos = [], 0
        for k, span in zip(numbers, inner):
            piece += [text[start + pos : start + span.start], blank.format(i=k)]
            pos = span.end
        piece.append(text[start + pos : end])
        parts.append("".join(piece))
    return " … ".join(parts)
