"""The record that flows through every stage.

One :class:`Record` per input row. Stages fill it in place, in order:

* data     -> ``segments``, ``label``, ``index``
* explain  -> ``predicted_label``, ``probs``, ``spans``, ``spare_spans``, ``seen_chars``
* edit     -> ``plans`` (one :class:`EditPlan` per target label)
* generate -> ``plan.candidates`` (each with its raw LLM output)
* filter   -> ``candidate.checks``, ``candidate.accepted``, ``plan.selected``

Everything is plain data (pydantic), so a record round-trips through JSON for the
cache and for the intermediate files of the stage subcommands. Text positions are
character offsets into a named segment: they survive any re-tokenisation.

Examples:
    >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative")
    >>> r.spans.append(Span(segment="text", start=2, end=6, score=1.0))
    >>> r.span_text(r.spans[0])
    'dull'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, Field, model_validator

#: Joins the sentences of a list segment (a column of string lists, e.g. evidence) into one text.
SENTENCE_SEPARATOR = "\n"

#: Measures of the built-in checks, also accepted as keywords: ``Candidate(label_prob=0.9)``.
BUILTIN_MEASURES = ("label_prob", "edit_distance", "perplexity")


class Span(BaseModel):
    """A rationale span: characters ``[start, end)`` of one segment, with its saliency."""

    segment: str
    start: int
    end: int
    score: float = 0.0
    text: str = ""


class Check(BaseModel):
    """The result of one filter check on one candidate."""

    name: str
    passed: bool
    reason: str = ""
    value: float | None = None


class Candidate(BaseModel):
    """One generated counterfactual for an edit plan.

    ``segments`` holds *all* segments after the edit (unedited ones copied), or
    ``None`` when the LLM output could not be parsed; ``raw`` always keeps the output.
    """

    segments: dict[str, str] | None = None
    raw: str = ""
    prompt: str = ""
    generator: str = ""
    prompt_template: str = ""
    sample_index: int = 0
    error: str | None = None
    checks: list[Check] = Field(default_factory=list)
    # Values the filter measured, by export column name (``label_prob``, ``edit_distance``,
    # ``perplexity`` and any registered check's ``column``).
    measures: dict[str, float | None] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _measures_by_name(cls, data: Any) -> Any:
        # label_prob=0.9 as a keyword (and records written before `measures` existed).
        if isinstance(data, dict) and any(k in data for k in BUILTIN_MEASURES):
            data = dict(data)
            measures = dict(data.get("measures") or {})
            for key in BUILTIN_MEASURES:
                if key in data:
                    measures.setdefault(key, data.pop(key))
            data["measures"] = measures
        return data

    @property
    def label_prob(self) -> float | None:
        """The classifier's probability of the target label (the ``label`` check), if measured."""
        return self.measures.get("label_prob")

    @property
    def edit_distance(self) -> float | None:
        """Token edit distance to the original segment, if measured (the filter measures every parsed candidate)."""
        return self.measures.get("edit_distance")

    @property
    def perplexity(self) -> float | None:
        """Perplexity of the edited segment (the ``fluency`` check), if measured."""
        return self.measures.get("perplexity")

    @property
    def accepted(self) -> bool:
        """True when the candidate parsed and every check passed."""
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def drop_reason(self) -> str | None:
        """The first failed check's name (or ``parse`` / ``generation`` / ``no_edit``), ``None`` if accepted.

        ``no_edit``: the plan had nothing to edit (no rationale span, no entity to swap), so no
        prompt was sent; ``generation``: the generator failed on the prompt.
        """
        if self.error is not None:
            if self.segments is None and self.raw:
                return "parse"
            return "generation" if self.prompt else "no_edit"
        for check in self.checks:
            if not check.passed:
                return check.name
        return None if self.checks else "unchecked"


class Substitution(BaseModel):
    """An entity swapped for another of the same ``type`` wherever it occurs (RACE's evidence edit).

    ``spans`` are the occurrences in the original segment(s), each ``text`` one of the old
    entity's surface forms; ``forms`` maps each old form to the new entity's matching form.
    """

    old: str
    new: str
    type: str
    forms: dict[str, str] = Field(default_factory=dict)
    spans: list[Span] = Field(default_factory=list)


class Demonstration(BaseModel, frozen=True):
    """A verified edit shown to the generator: ``old`` words of a ``source_label`` text became
    ``new`` ones, making it ``target_label``; ``context`` is the text around it with the old words
    blanked (``[BLANK1]``); ``origin`` is ``pairs`` (human pairs) or ``run`` (accepted in this run)."""

    source_label: str
    target_label: str
    old: str
    new: str
    context: str = ""
    origin: str = "pairs"
    # Which text the edit was made in (a hash): a plan never gets the edits of its own text's pair.
    source_id: str = ""


class EditPlan(BaseModel):
    """Which spans of which segment(s) to change, toward which label.

    ``segment`` is the segment the prompt is about; ``also_edits`` names other segments the
    plan may change with it (an entity substituted in the claim and in the evidence alike).
    ``masked`` is ``segment`` with each span replaced by a numbered blank (``[BLANK1]``,
    ``[BLANK2]`` ...); ``spans`` are in text order.

    Examples:
        >>> plan = EditPlan(target_label="REFUTES", segment="evidence", also_edits=["claim"])
        >>> plan.edited_segments, plan.text_of({"claim": "Paris is big.", "evidence": "Paris has 2M people."})
        (['evidence', 'claim'], 'Paris has 2M people.\\nParis is big.')
    """

    target_label: str
    segment: str
    also_edits: list[str] = Field(default_factory=list)
    spans: list[Span] = Field(default_factory=list)
    masked: str = ""
    # Entity swaps the plan makes by rule (see cda.edit.entity_swap), and the sentences of the
    # list segment the verdict rests on (sentence-level rationales), most salient first.
    substitutions: list[Substitution] = Field(default_factory=list)
    rationale_sentences: list[int] = Field(default_factory=list)
    # Verified edits retrieved for this plan, shown in its prompt (generate.demonstrations).
    demonstrations: list[Demonstration] = Field(default_factory=list)
    # What a strategy fills the blanks with by rule, one per span (``lexicon``: people's replacements).
    replacements: list[str] = Field(default_factory=list)
    # The search round that made this plan (1: the first; a later round re-plans a (record, target)
    # whose earlier plans got no accepted candidate, with a wider mask; see cda.search).
    round: int = Field(default=1, ge=1)
    candidates: list[Candidate] = Field(default_factory=list)
    selected: int | None = None

    @property
    def edited_segments(self) -> list[str]:
        """Every segment this plan may change: ``segment`` first, then ``also_edits``."""
        return list(dict.fromkeys([self.segment, *self.also_edits]))

    def text_of(self, segments: dict[str, str] | None) -> str:
        """The edited segments' texts, joined by line breaks (``""`` for a missing one)."""
        return SENTENCE_SEPARATOR.join((segments or {}).get(name, "") for name in self.edited_segments)

    @property
    def best(self) -> Candidate | None:
        """The selected candidate, if any was accepted."""
        return None if self.selected is None else self.candidates[self.selected]


class Record(BaseModel):
    """One input example and everything the pipeline learned about it."""

    index: int
    segments: dict[str, str]
    label: str
    predicted_label: str | None = None
    probs: dict[str, float] = Field(default_factory=dict)
    spans: list[Span] = Field(default_factory=list)
    # Spans Explain picked beyond explain.max_spans, best first: what a later search round adds.
    spare_spans: list[Span] = Field(default_factory=list)
    seen_chars: dict[str, int] = Field(default_factory=dict)
    plans: list[EditPlan] = Field(default_factory=list)
    # Segments that were lists of sentences in the data (joined with SENTENCE_SEPARATOR).
    list_segments: list[str] = Field(default_factory=list)

    def span_text(self, span: Span) -> str:
        """The characters a span covers."""
        return self.segments[span.segment][span.start : span.end]

    def locate(self, span: Span) -> tuple[str, int | None, int, int]:
        """``(segment, sentence, start, end)``: in a list segment, the sentence's index and the
        offsets inside that sentence; elsewhere ``sentence`` is ``None`` and the offsets are the span's.

        Examples:
            >>> r = Record(index=0, segments={"evidence": "Paris is in France.\\nIt is big."}, label="SUPPORTS",
            ...            list_segments=["evidence"])
            >>> r.locate(Span(segment="evidence", start=23, end=26))
            ('evidence', 1, 3, 6)
        """
        if span.segment not in self.list_segments:
            return span.segment, None, span.start, span.end
        text = self.segments[span.segment]
        sentence = text.count(SENTENCE_SEPARATOR, 0, span.start)
        begin = text.rfind(SENTENCE_SEPARATOR, 0, span.start) + 1
        return span.segment, sentence, span.start - begin, span.end - begin


def save_records(records: Iterable[Record], path: str | Path) -> Path:
    """Write records as JSON lines (one record per line) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(record.model_dump_json() + "\n")
    return path


def load_records(path: str | Path) -> list[Record]:
    """Read records written by :func:`save_records`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No records file at {path}: expected a records.jsonl written by a cda stage command.")
    with path.open(encoding="utf-8") as f:
        return [Record.model_validate(json.loads(line)) for line in f if line.strip()]
