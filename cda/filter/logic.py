"""Logic: the candidate is a well-formed edit of the original.

One ``logic`` check per candidate, failing with every problem found (joined by ``"; "``):

* the unedited segments are exactly the original ones (and no segment is missing or added);
* the edited segment is not empty, and changes a word of the original (whitespace, punctuation
  and case alone do not flip a label: "A man builds a castle" -> "... castle." fails); a list
  segment (sentences) keeps its number of sentences;
* the text outside the plan's spans is kept, in order: the original's tokens outside the
  spans must appear unchanged in the candidate, and new text may only sit where a span
  was. ``filter.checks.logic.span_context`` tokens next to each span may change too (rewrite mode
  rephrases around a span). In infill mode this holds by construction; in rewrite mode
  it is what keeps an edit local. A plan without spans has nothing to anchor and skips it;
* nothing leaks from the prompt: no blank markers (``[BLANK1]``), no line of the
  prompt's instructions, none of ``leak_terms`` (``"sentiment:"`` ...) and, with
  ``leak_target_label``, not the target label's name, unless the original
  already contained that text.

Examples:
    >>> from cda.config import TaskConfig, DataConfig, Config
    >>> from cda.records import Candidate, EditPlan, Record, Span
    >>> cfg = Config(data=DataConfig(path="x.tsv"), task=TaskConfig(segments={"text": "Text"},
    ...              label_column="y", labels=["Negative", "Positive"]))
    >>> rec = Record(index=0, segments={"text": "A dull film."}, label="Negative")
    >>> plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6)])
    >>> LogicCheck.create(cfg)(rec, plan, Candidate(segments={"text": "A great film."})).passed
    True
    >>> LogicCheck.create(cfg)(rec, plan, Candidate(segments={"text": "A [BLANK1] film."})).reason
    "leaks the blank marker '[BLANK1]'"
"""

from __future__ import annotations

import re
from typing import Sequence

from pydantic import Field

from cda.edit.entities import apply_substitutions
from cda.filter.checks import CheckContext, CheckItem, FilterCheck
from cda.filter.tokens import Token, normalize_space, tokenize, tokens_with_offsets
from cda.records import SENTENCE_SEPARATOR, Candidate, Check, EditPlan, Record, Span
from cda.registry import ComponentSettings, checks

NAME = "logic"
# Prompt lines shorter than this are too generic ("Text:", "Answer") to call an echo a leak.
MIN_PROMPT_LINE_CHARS = 20
_ANY_BLANK = re.compile(r"\[\s*blank\s*\d*\s*\]", re.IGNORECASE)


def _words(text: str) -> list[str]:
    """The lower-cased tokens of ``text`` that hold a letter or digit (punctuation dropped).

    Examples:
        >>> _words("A man building a sand castle.") == _words("a man building a sand castle")
        True
    """
    return [t.lower() for t in tokenize(text) if any(ch.isalnum() for ch in t)]


def _snippet(words: Sequence[str], limit: int = 60) -> str:
    text = " ".join(words)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pieces(tokens: Sequence[Token], spans: Sequence[Span], context: int) -> tuple[list[list[str]], bool, bool]:
    """Runs of tokens outside the spans (widened by ``context`` tokens), and whether the
    first/last run touches the start/end of the text (then it must stay at that edge)."""
    editable = [False] * len(tokens)
    for span in spans:
        # A zero-width span (an insertion point) makes the token that starts there editable.
        end = max(span.end, span.start + 1)
        hits = [i for i, t in enumerate(tokens) if t.start < end and span.start < t.end]
        if not hits and tokens:
            # A span on whitespace only: the next token (or the last one) takes its place.
            after = [i for i, t in enumerate(tokens) if t.start >= span.start]
            hits = [after[0] if after else len(tokens) - 1]
        for i in hits:
            for j in range(max(0, i - context), min(len(tokens), i + context + 1)):
                editable[j] = True
    runs: list[list[str]] = []
    current: list[str] | None = None
    for token, free in zip(tokens, editable):
        if free:
            current = None
        else:
            if current is None:
                current = []
                runs.append(current)
            current.append(token.text)
    at_start = bool(tokens) and not editable[0]
    at_end = bool(tokens) and not editable[-1]
    return runs, at_start, at_end


def _find(haystack: Sequence[str], needle: Sequence[str], start: int) -> int:
    """First index ``>= start`` where ``needle`` occurs in ``haystack``, or -1."""
    n = len(needle)
    for i in range(start, len(haystack) - n + 1):
        if haystack[i : i + n] == needle:
            return i
    return -1


def outside_span_change(original: str, edited: str, spans: Sequence[Span], context: int = 0) -> str | None:
    """``None`` when ``edited`` keeps every token of ``original`` outside ``spans``, in order,
    and adds text only where a span was; else a sentence saying what changed.

    Tokens are compared, so whitespace changes are allowed. ``context`` tokens on each
    side of a span may change as well.

    Examples:
        >>> spans = [Span(segment="text", start=6, end=10)]
        >>> outside_span_change("It is dull, sadly.", "It is great, sadly.", spans) is None
        True
        >>> outside_span_change("It is dull, sadly.", "It is great, happily.", spans)
        "the text after the last span changed: expected it to end with ', sadly .'"
        >>> two = [Span(segment="text", start=0, end=2), Span(segment="text", start=6, end=10)]
        >>> outside_span_change("It is dull, sadly.", "This movie is great, sadly.", two) is None
        True
        >>> outside_span_change("It is dull, sadly.", "This was great, sadly.", two)
        "text outside the spans changed: 'is' is missing or out of order"
        >>> outside_span_change("It is dull, sadly.", "Wow, it is great, sadly.", spans)
        "the text before the first span changed: expected it to start with 'It is'"
    """
    tokens = tokens_with_offsets(original)
    runs, at_start, at_end = _pieces(tokens, spans, context)
    if not runs:
        return None
    words = [t.text for t in tokens_with_offsets(edited)]
    pos = 0
    for k, run in enumerate(runs):
        last = k == len(runs) - 1
        if k == 0 and at_start:
            if words[: len(run)] != run:
                return f"the text before the first span changed: expected it to start with {_snippet(run)!r}"
            pos = len(run)
            if last and at_end and pos != len(words):
                return f"text was added after {_snippet(run[-5:])!r}, outside the spans"
            continue
        if last and at_end:
            begin = len(words) - len(run)
            if begin < pos or words[begin:] != run:
                return f"the text after the last span changed: expected it to end with {_snippet(run)!r}"
            continue
        # Earliest match leaves the most room for the runs after it.
        found = _find(words, run, pos)
        if found < 0:
            return f"text outside the spans changed: {_snippet(run)!r} is missing or out of order"
        pos = found + len(run)
    return None


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    # Word boundaries only where the phrase starts/ends with a word character ("label:" ends with ':').
    left = r"\b" if re.match(r"\w", phrase) else ""
    right = r"\b" if re.search(r"\w$", phrase) else ""
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    return re.compile(left + body + right, re.IGNORECASE)


def blank_pattern(blank: str) -> re.Pattern[str]:
    """A regex for the blank markers of ``edit.blank`` (``"[BLANK{i}]"`` -> ``\\[BLANK\\d+\\]``).

    Examples:
        >>> bool(blank_pattern("[BLANK{i}]").search("a [BLANK12] b"))
        True
    """
    return re.compile(re.escape(blank).replace(re.escape("{i}"), r"\d+"), re.IGNORECASE)


DEFAULT_LEAK_TERMS = [
    "label:", "sentiment:", "target label", "counterfactual", "original text", "rewritten text",
    "fill in the blank", "answer:", "output:", "input:",
]


@checks.register(NAME)
class LogicCheck(FilterCheck):
    """The ``logic`` check (see the module docstring for what it requires).

    Settings (``filter.checks.logic``): ``span_context``, ``leak_terms``,
    ``leak_target_label``; the blank marker comes from ``edit.blank``.

    Examples:
        >>> from cda.config import TaskConfig, DataConfig, Config
        >>> from cda.records import Candidate, EditPlan, Record, Span
        >>> cfg = Config(data=DataConfig(path="x.tsv"), task=TaskConfig(segments={"text": "Text"},
        ...              label_column="y", labels=["Negative", "Positive"]))
        >>> rec = Record(index=0, segments={"text": "A dull film."}, label="Negative")
        >>> plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6)])
        >>> LogicCheck.create(cfg)(rec, plan, Candidate(segments={"text": "An exciting film!"})).reason
        "the text after the last span changed: expected it to end with '.'"
    """

    class Settings(ComponentSettings):
        # Tokens next to each span that may also change (rewrite mode rephrases around a span);
        # all other text outside the spans must stay as it was, in order.
        span_context: int = Field(default=1, ge=0)
        # Phrases a counterfactual must not add (prompt/label leakage), matched case-insensitively
        # as whole words; a phrase already in the original text is allowed.
        leak_terms: list[str] = Field(default_factory=lambda: list(DEFAULT_LEAK_TERMS))
        # Also count the target label's name as leakage when the original did not contain it.
        leak_target_label: bool = True

    cost = 0
    fails_when = "malformed edit: changed text outside the spans or another segment, empty, unchanged, or leaked prompt text"

    def __init__(self, settings: ComponentSettings, context: CheckContext) -> None:
        super().__init__(settings, context)
        self.context_tokens = settings.span_context  # type: ignore[attr-defined]
        self.blank = blank_pattern(context.config.edit.blank)
        self.terms = [(term, _phrase_pattern(term)) for term in settings.leak_terms if term.strip()]  # type: ignore[attr-defined]
        self.leak_target_label = settings.leak_target_label  # type: ignore[attr-defined]

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        return [self(item.record, item.plan, item.candidate) for item in items]

    def __call__(self, record: Record, plan: EditPlan, candidate: Candidate) -> Check:
        """Check one parsed candidate of ``plan`` (an edit of ``record``)."""
        problems = self.problems(record, plan, candidate)
        return Check(name=self.name, passed=not problems, reason="; ".join(problems), value=float(len(problems)))

    def problems(self, record: Record, plan: EditPlan, candidate: Candidate) -> list[str]:
        """Every logic problem of the candidate, as sentences (empty when it passes)."""
        if candidate.segments is None:
            return ["the candidate has no parsed text"]
        problems: list[str] = []
        missing = [s for s in record.segments if s not in candidate.segments]
        extra = [s for s in candidate.segments if s not in record.segments]
        if missing:
            problems.append(f"segment(s) {missing} missing from the candidate")
        if extra:
            problems.append(f"unknown segment(s) {extra} in the candidate (the record has {list(record.segments)})")
        allowed = plan.edited_segments
        changed = [
            s for s, text in record.segments.items()
            if s not in allowed and s in candidate.segments and candidate.segments[s] != text
        ]
        if changed:
            may = " and ".join(repr(s) for s in allowed)
            problems.append(f"segment(s) {changed} changed, but only {may} may be edited")
        present = [s for s in allowed if s in candidate.segments]
        if not present:
            return problems
        empty = [name for name in present if not candidate.segments[name].strip()]
        if empty:
            problems.append(f"the edited segment {empty[0]!r} is empty")
            return problems
        if all(normalize_space(candidate.segments[n]) == normalize_space(record.segments[n]) for n in present):
            problems.append("identical to the original (ignoring whitespace)")
        elif all(_words(candidate.segments[n]) == _words(record.segments[n]) for n in present):
            problems.append("changes no word of the original (only punctuation or case)")
        for name in present:
            original, edited = record.segments[name], candidate.segments[name]
            if name in record.list_segments:
                before, after = original.count(SENTENCE_SEPARATOR) + 1, edited.count(SENTENCE_SEPARATOR) + 1
                if before != after:
                    problems.append(f"the list segment {name!r} has {after} sentences instead of its {before}")
            spans = [s for s in plan.spans if s.segment == name]
            if spans:
                change = outside_span_change(original, edited, spans, self.context_tokens)
                if change:
                    problems.append(change if len(allowed) == 1 else f"{name}: {change}")
        edited = plan.text_of(candidate.segments)
        problems.extend(self.leaks(record, plan, candidate.prompt, edited))
        return problems

    def leaks(self, record: Record, plan: EditPlan, prompt: str, edited: str) -> list[str]:
        """Prompt or label text in ``edited`` that the original did not contain (text an edit strategy
        put there by rule, such as swapped evidence, counts as the original's)."""
        original = "\n".join(record.segments.values())
        if plan.substitutions:
            original += "\n" + "\n".join(apply_substitutions(record.segments, plan.substitutions).values())
        found: list[str] = []
        for pattern in (self.blank, _ANY_BLANK):
            match = pattern.search(edited)
            if match and not pattern.search(original):
                found.append(f"leaks the blank marker {match.group()!r}")
                break
        for term, pattern in self.terms:
            if pattern.search(edited) and not pattern.search(original):
                found.append(f"leaks the prompt term {term!r}")
        if self.leak_target_label:
            names = {plan.target_label, plan.target_label.replace("_", " ")}
            for name in sorted(names):
                pattern = _phrase_pattern(name)
                if pattern.search(edited) and not pattern.search(original):
                    found.append(f"names the target label {plan.target_label!r}, which the original does not")
                    break
        norm_edited, norm_original = normalize_space(edited), normalize_space(original)
        for line in prompt.splitlines():
            line = normalize_space(line)
            if (
                len(line) >= MIN_PROMPT_LINE_CHARS
                and line in norm_edited
                and line not in norm_original
                and not self.blank.search(line)
            ):
                found.append(f"copies the prompt line {_snippet(line.split(), 50)!r}")
        return found
