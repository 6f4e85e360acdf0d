"""Part of speech: every blank is filled with words of the kind it held.

A generator trained on a few hundred CPU steps learns which words flip a label long before it
learns which words fit a slot: it fills "Weber was especially [good]" with "bad" but also
"one of [my favorite] films" with "hate", "[enjoyed] Michael Nyqvist" with "and", "a real
[beauty]" with "bad". Both classifiers (the filter's and a judge) read those as flipped; a
reader reads them as broken. This check tags the original and the candidate with spaCy and
compares, per blank, the part of speech of the last content word of the old words with that of
the new ones (adjective, adverb, noun, verb, number, interjection): a blank whose content word
became another kind, or became function words only ("an [amazing]" -> "no"), fails, and so does
one that held a determiner and lost it ("This is [an excellent] film" -> "terrible"). Blanks that
held no content word ("not", "the") are not judged, nor are candidates that are not fills of
the plan's blanks (rewrites). Opt-in: ``filter.checks.part_of_speech: {}``.

Examples:
    >>> from cda.records import Span
    >>> check = PartOfSpeechCheck()
    >>> span = [Span(segment="text", start=16, end=20)]
    >>> check.check("Weber was quite good.", span, ["bad"]).passed
    True
    >>> check.check("Weber was quite good.", span, ["and"]).reason
    "'good' (ADJ) became 'and' (no content word)"
    >>> check.check("It is an excellent film.", [Span(segment="text", start=6, end=18)], ["terrible"]).reason
    "'an excellent' lost its determiner: 'terrible'"
"""

from __future__ import annotations

import functools
from typing import Sequence

from cda.config import ExplainConfig
from cda.filter.checks import CheckContext, CheckItem, FilterCheck
from cda.records import Check, Span
from cda.registry import ComponentSettings, checks

NAME = "part_of_speech"

# ``(start, end, coarse part of speech)`` per spaCy token.
Tags = tuple[tuple[int, int, str], ...]
# Content words, by part of speech: a replacement keeps its blank's (a proper noun counts as a noun).
_CONTENT = frozenset({"ADJ", "ADV", "NOUN", "PROPN", "VERB", "NUM", "INTJ"})


def _tags(spacy_model: str, text: str) -> Tags:
    """The tokens of ``text`` with their parts of speech (a possessive pronoun counts as a determiner)."""
    from cda.explain.spans import load_spacy

    nlp = load_spacy(spacy_model, parser=False, tagger=True)
    return tuple((t.idx, t.idx + len(t.text), "DET" if t.tag_ == "PRP$" else t.pos_) for t in nlp(text))


# An original is checked once per candidate: its tags are kept (a candidate's are not, it is seen once).
_original_tags = functools.lru_cache(maxsize=4096)(_tags)


@checks.register(NAME)
class PartOfSpeechCheck(FilterCheck):
    """Passes when each blank's new words end in a content word of the same kind as its old words'
    (spaCy's tagger, ``explain.spacy_model``)."""

    class Settings(ComponentSettings):
        pass

    cost = 3
    fails_when = "a blank's new words are another part of speech than its old words (filter.checks.part_of_speech)"

    def __init__(self, settings: ComponentSettings | None = None, context: CheckContext | None = None) -> None:
        super().__init__(settings or self.Settings(name=NAME), context)  # type: ignore[arg-type]
        self.spacy_model = (context.config.explain if context is not None else ExplainConfig()).spacy_model

    @staticmethod
    def _head(tags: Tags, start: int, end: int) -> tuple[str, str] | None:
        """The kind of the last content word within ``[start, end)``, with its part of speech."""
        inside = [pos for s, e, pos in tags if s < end and start < e and pos in _CONTENT]
        return ("NOUN" if inside[-1] == "PROPN" else inside[-1], inside[-1]) if inside else None

    @staticmethod
    def _has_determiner(tags: Tags, start: int, end: int) -> bool:
        return any(pos == "DET" for s, e, pos in tags if s < end and start < e)

    def check(self, original: str, spans: list[Span], values: list[str], filled: str | None = None) -> Check:
        """The check for ``original`` with ``spans`` (in text order) filled with ``values`` (giving
        ``filled``, computed when not given)."""
        from cda.edit.plans import fill_blanks

        filled = fill_blanks(original, spans, values) if filled is None else filled
        old_tags, new_tags = _original_tags(self.spacy_model, original), _tags(self.spacy_model, filled)
        shift = 0
        for span, value in zip(spans, values):
            start = span.start + shift
            shift += len(value) - (span.end - span.start)
            old = self._head(old_tags, span.start, span.end)
            if old is None:
                continue
            if self._has_determiner(old_tags, span.start, span.end) and not self._has_determiner(new_tags, start, start + len(value)):
                reason = f"{original[span.start : span.end]!r} lost its determiner: {value.strip()!r}"
                return Check(name=self.name, passed=False, reason=reason)
            new = self._head(new_tags, start, start + len(value))
            if new is None or new[0] != old[0]:
                became = f"{value.strip()!r} ({new[1]})" if new else f"{value.strip()!r} (no content word)"
                reason = f"{original[span.start : span.end]!r} ({old[1]}) became {became}"
                return Check(name=self.name, passed=False, reason=reason)
        return Check(name=self.name, passed=True)

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        from cda.edit.plans import fill_blanks
        from cda.generate.parsing import parse_infill

        blank, out = self.context.config.edit.blank, []
        for item in items:
            plan = item.plan
            original = item.record.segments[plan.segment]
            values = parse_infill(item.candidate.raw, len(plan.spans), blank)[0] if plan.spans and item.candidate.raw else None
            filled = fill_blanks(original, plan.spans, values) if values is not None else None
            if filled is None or filled != item.candidate.segments.get(plan.segment):
                out.append(Check(name=self.name, passed=True))  # not a fill of the plan's blanks
                continue
            out.append(self.check(original, plan.spans, values, filled))
        return out
