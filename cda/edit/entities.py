"""Entities for RACE-style edits: find them, bank them by type, swap one everywhere it occurs.

RACE (Explain, Edit, Generate; Zeng et al. 2023) edits the evidence of a claim where the
claim's reasoning passes through it: an entity the claim and the rationale sentences share,
or one shared by two evidence sentences (a bridge between hops), is replaced by another
entity of the same type, in every sentence and in every surface form, so the evidence stays
consistent with itself.

* :func:`find_entities` -- spaCy NER over every segment, offsets in the segment's text;
* :class:`EntityBank` -- the entities of a corpus by type, to draw replacements from;
* :func:`surface_forms` -- the ways a text may name an entity (``Bill Persky``, ``Persky``);
* :func:`substitution` -- every occurrence of an entity's forms in a segment, with the new
  entity's matching form for each; :func:`apply_substitutions` carries it out.

Examples:
    >>> surface_forms("Bill Persky", "PERSON")
    ['Bill Persky', 'Persky']
    >>> sub = substitution("evidence", "Bill Persky", "Ann Lee", "PERSON",
    ...                    "Bill Persky (born 1931) is a director.\\nPersky was born in Ohio.")
    >>> [(s.start, s.end, s.text) for s in sub.spans], sub.forms
    ([(0, 11, 'Bill Persky'), (39, 45, 'Persky')], {'Bill Persky': 'Ann Lee', 'Persky': 'Lee'})
    >>> apply_substitutions({"evidence": "Bill Persky (born 1931) is a director.\\nPersky was born in Ohio."}, [sub])
    {'evidence': 'Ann Lee (born 1931) is a director.\\nLee was born in Ohio.'}
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

from cda.records import Record, Span, Substitution

#: Entity types a swap may use (spaCy's OntoNotes labels).
SWAP_TYPES = ("PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "WORK_OF_ART", "PRODUCT", "LANGUAGE", "LAW",
              "DATE", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "TIME")  # fmt: skip
# Types whose last word names the entity on its own ("Persky" for "Bill Persky").
_SHORT_FORM_TYPES = {"PERSON"}
# Types that hold a number; the others are names.
NUMERIC_TYPES = {"DATE", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "TIME"}


def plausible(text: str, type_: str) -> bool:
    """Whether NER's entity looks like its type: a name starts and ends with a capitalized word and
    names one thing, a number-like entity has a digit or a number word (spaCy's small model tags
    "width" GPE, "minutes" TIME, "California Code of" LAW and "Essendon and Footscray" PERSON).

    Examples:
        >>> plausible("width", "GPE"), plausible("Auckland", "GPE"), plausible("minutes", "TIME"), plausible("first", "ORDINAL")
        (False, True, False, True)
        >>> plausible("California Code of", "LAW"), plausible("Essendon and Footscray", "PERSON"), plausible("Gemma di Vergy", "PERSON")
        (False, False, True)
    """
    if type_ in NUMERIC_TYPES:
        return bool(re.search(r"\d", text)) or type_ in ("ORDINAL", "CARDINAL") and text.isalpha()
    words = text.split()
    return bool(words) and words[0][:1].isupper() and words[-1][:1].isupper() and " and " not in text


def shape(text: str, type_: str) -> str:
    """What a good replacement shares with the entity it replaces: digits as 0 for a number
    (a year for a year), the number of words for a name.

    Examples:
        >>> shape("1931", "DATE"), shape("Bill Persky", "PERSON")
        ('0000', '2 words')
    """
    return re.sub(r"\d", "0", text) if type_ in NUMERIC_TYPES else f"{len(text.split())} words"


@dataclass(frozen=True)
class Entity:
    """A named entity in a segment: characters ``[start, end)`` of ``segment``'s text."""

    segment: str
    start: int
    end: int
    text: str
    type: str


def find_entities(nlp, segments: dict[str, str], types: Iterable[str] = SWAP_TYPES) -> list[Entity]:
    """The named entities of every segment, in text order; each line of a segment (a sentence of a
    list segment) is read on its own, so no entity spans two sentences."""
    wanted = set(types)
    pieces = []  # (segment, offset of the line, line)
    for name, text in segments.items():
        offset = 0
        for line in text.split("\n"):
            pieces.append((name, offset, line))
            offset += len(line) + 1
    found = []
    for (name, offset, _), doc in zip(pieces, nlp.pipe(line for _, _, line in pieces)):
        for e in doc.ents:
            # spaCy's small model keeps a possessive in the entity ("Yvonne Elliman's"): the name is without it.
            text = re.sub(r"['’]s$", "", e.text)
            if e.label_ in wanted and plausible(text, e.label_):
                found.append(Entity(name, offset + e.start_char, offset + e.start_char + len(text), text, e.label_))
    return found


def normalize(text: str) -> str:
    """Entity text compared loosely: lower case, no leading article, single spaces.

    Examples:
        >>> normalize("The  Beatles")
        'beatles'
    """
    return re.sub(r"^(the|a|an) ", "", " ".join(text.lower().split()))


def surface_forms(text: str, type_: str) -> list[str]:
    """The forms of an entity to look for, longest first: the text, without a leading "The",
    and for a person the last name alone."""
    forms = [text]
    if re.match(r"(?i)the ", text):
        forms.append(text[4:])
    words = text.split()
    if type_ in _SHORT_FORM_TYPES and len(words) > 1 and len(words[-1]) > 2 and words[-1][0].isupper():
        forms.append(words[-1])
    return list(dict.fromkeys(f for f in forms if f))


def _form_map(old: str, new: str, type_: str) -> dict[str, str]:
    """Each surface form of ``old`` -> the matching form of ``new`` (last name to last name)."""
    old_forms, new_forms = surface_forms(old, type_), surface_forms(new, type_)
    mapping = {old: new}
    if len(old_forms) > 1 and re.match(r"(?i)the ", old):
        mapping[old[4:]] = new[4:] if re.match(r"(?i)the ", new) else new
    if type_ in _SHORT_FORM_TYPES and len(old.split()) > 1:
        mapping[old_forms[-1]] = new_forms[-1] if len(new_forms) > 1 else new
    return {k: v for k, v in mapping.items() if k in old_forms}


def occurrences(text: str, forms: Iterable[str], parts: Iterable[str] = ()) -> list[tuple[int, int, str]]:
    """Non-overlapping whole-word matches of any form (longer forms first), in text order.

    A form in ``parts`` (a short form, "Glenn" of "John Glenn") is skipped where it is part of
    a longer name: followed by a capitalized word ("Glenn House"), or preceded by one mid-sentence.

    Examples:
        >>> occurrences("Glenn built the Glenn House; later Glenn left.", ["Glenn"], parts=["Glenn"])
        [(0, 5, 'Glenn'), (35, 40, 'Glenn')]
    """
    ordered = sorted(set(forms), key=len, reverse=True)
    if not ordered:
        return []
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(f) for f in ordered) + r")(?!\w)")
    short = set(parts)
    return [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(text)
            if m.group(0) not in short or not (re.match(r" [A-Z]", text[m.end() : m.end() + 2])
                                               or re.search(r"[a-z,] [A-Z][\w.]* $", text[: m.start()]))]  # fmt: skip


def substitution(segment: str, old: str, new: str, type_: str, text: str) -> Substitution:
    """The swap of ``old`` for ``new`` in ``text`` (one segment): every occurrence of every form."""
    forms = _form_map(old, new, type_)
    found = occurrences(text, forms, parts=[f for f in forms if f != old])
    spans = [Span(segment=segment, start=s, end=e, text=t) for s, e, t in found]
    return Substitution(old=old, new=new, type=type_, forms=forms, spans=spans)


def apply_substitutions(segments: dict[str, str], substitutions: list[Substitution]) -> dict[str, str]:
    """The segments with every substitution's spans replaced by their new forms."""
    out = dict(segments)
    by_segment: dict[str, list[tuple[Span, str]]] = defaultdict(list)
    for sub in substitutions:
        for span in sub.spans:
            by_segment[span.segment].append((span, sub.forms[span.text]))
    for name, edits in by_segment.items():
        text, pos, parts = segments[name], 0, []
        for span, new in sorted(edits, key=lambda e: e[0].start):
            if span.start < pos:
                continue  # overlaps an earlier edit
            parts += [text[pos : span.start], new]
            pos = span.end
        out[name] = "".join(parts) + text[pos:]
    return out


class EntityBank:
    """Entities of a corpus by type, to draw same-type replacements from.

    Examples:
        >>> bank = EntityBank({"PERSON": ["Ann Lee", "Bill Persky", "Cy Young"]})
        >>> bank.draw("PERSON", avoid={"bill persky"}, rng=random.Random(0))
        'Cy Young'
        >>> bank.draw("LAW", avoid=set(), rng=random.Random(0)) is None
        True
    """

    def __init__(self, by_type: dict[str, list[str]]) -> None:
        self.by_type = {t: sorted(set(v)) for t, v in by_type.items()}

    @classmethod
    def from_records(cls, nlp, records: Iterable[Record], types: Iterable[str] = SWAP_TYPES) -> "EntityBank":
        """Every entity of every segment of ``records``."""
        by_type: dict[str, list[str]] = defaultdict(list)
        for record in records:
            for entity in find_entities(nlp, record.segments, types):
                by_type[entity.type].append(entity.text)
        return cls(by_type)

    def sizes(self) -> dict[str, int]:
        """How many distinct entities each type holds."""
        return dict(Counter({t: len(v) for t, v in self.by_type.items()}).most_common())

    def draw(self, type_: str, avoid: set[str], rng: random.Random, like: str | None = None) -> str | None:
        """A random entity of ``type_`` whose normalized text is not in ``avoid`` and shares no word
        with any of them, of the same :func:`shape` as ``like`` when the bank has one (``None`` when
        the bank has no entity of the type)."""
        avoid_words = {w for a in avoid for w in a.split()}
        options = [e for e in self.by_type.get(type_, [])
                   if normalize(e) not in avoid and not set(normalize(e).split()) & avoid_words]  # fmt: skip
        if like is not None:
            options = [e for e in options if shape(e, type_) == shape(like, type_)] or options
        return rng.choice(options) if options else None
