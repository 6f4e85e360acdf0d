"""Word-level alignment of an original text and its human counterfactual.

The changed regions become the blanks of a training example for the trained generator:
each region is a character span of the *original* (what was masked) and the text the
human wrote there (the answer). The alignment is the minimal token edit script
(Levenshtein opcodes from rapidfuzz over spaCy tokens, the same tokens the minimality
check counts). Pure insertions and deletions are widened by one neighbouring word so
that every blank covers at least one original word and has a non-empty answer (an
infill prompt cannot show a blank of zero words): "good" → "not good" becomes the
region "good" → "not good".

Examples:
    >>> [(r.old, r.new) for r in changed_regions("It was a dull, slow film.", "It was a lively, fast film.")]
    [('dull', 'lively'), ('slow', 'fast')]
    >>> [(r.old, r.new) for r in changed_regions("I liked it.", "I never liked it.")]
    [('liked', 'never liked')]
    >>> changed_regions("Same text.", "Same  text.")
    []
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from rapidfuzz.distance import Levenshtein

from cda.filter.tokens import Token, tokens_with_offsets


@dataclass(frozen=True)
class Region:
    """Characters ``[start, end)`` of the original that the human replaced by ``new``."""

    start: int
    end: int
    old: str
    new: str


def _text(text: str, tokens: tuple[Token, ...], i: int, j: int) -> str:
    """The original characters from token ``i`` to token ``j - 1`` (spacing kept)."""
    return text[tokens[i].start : tokens[j - 1].end] if j > i else ""


def changed_regions(original: str, revised: str) -> list[Region]:
    """The regions of ``original`` that differ in ``revised``, in text order, none empty.

    Adjacent edits (no unchanged token between them) form one region.

    Examples:
        >>> [(r.start, r.end, r.new) for r in changed_regions("A dull film.", "A great film!")]
        [(2, 6, 'great'), (11, 12, '!')]
        >>> [(r.old, r.new) for r in changed_regions("Not good at all.", "Good at all.")]
        [('Not good', 'Good')]
    """
    a, b = tokens_with_offsets(original), tokens_with_offsets(revised)
    ta, tb = [t.text for t in a], [t.text for t in b]
    # Token-index boxes [a0, a1) -> [b0, b1) of every non-equal opcode, merged when adjacent.
    boxes: list[list[int]] = []
    for op in Levenshtein.opcodes(ta, tb):
        if op.tag == "equal":
            continue
        if boxes and boxes[-1][1] >= op.src_start and boxes[-1][3] >= op.dest_start:
            boxes[-1][1], boxes[-1][3] = max(boxes[-1][1], op.src_end), max(boxes[-1][3], op.dest_end)
        else:
            boxes.append([op.src_start, op.src_end, op.dest_start, op.dest_end])
    widened: list[list[int]] = []
    for a0, a1, b0, b1 in boxes:
        if a0 == a1 or b0 == b1:  # insertion or deletion: take in the next word (else the previous)
            if a1 < len(a):
                a1, b1 = a1 + 1, b1 + 1
            elif a0 > 0:
                a0, b0 = a0 - 1, b0 - 1
            else:
                continue  # the original is empty, or everything was deleted: nothing to blank
        if widened and widened[-1][1] >= a0:  # widening made it touch the previous region
            widened[-1][1], widened[-1][3] = max(widened[-1][1], a1), max(widened[-1][3], b1)
        else:
            widened.append([a0, a1, b0, b1])
    return [
        Region(a[a0].start, a[a1 - 1].end, _text(original, a, a0, a1), _text(revised, b, b0, b1))
        for a0, a1, b0, b1 in widened
        if a1 > a0 and b1 > b0
    ]


def sentence_pairs(original: str, revised: str) -> list[tuple[str, str]]:
    """The sentences of ``original`` paired with the human's version of each, in text order.

    The two texts' sentences are aligned as :class:`difflib.SequenceMatcher` aligns whole
    sentences (longest matching runs first): an unchanged sentence pairs with itself, and a run of
    ``k`` replaced sentences with the ``k`` that replace it, one by one. Runs the human merged,
    split, added or deleted (a different count on each side) are left out: no one sentence
    was rewritten into one.

    Examples:
        >>> sentence_pairs("A dull film. I saw it twice. Avoid it.", "A fun film. I saw it twice. See it.")
        [('A dull film.', 'A fun film.'), ('I saw it twice.', 'I saw it twice.'), ('Avoid it.', 'See it.')]
        >>> sentence_pairs("Dull. Slow.", "Fun and fast.")
        []
    """
    from cda.fact_data import sentences_of

    a, b = sentences_of(original), sentences_of(revised)
    out: list[tuple[str, str]] = []
    for tag, a0, a1, b0, b1 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("equal", "replace") and a1 - a0 == b1 - b0:
            out += zip(a[a0:a1], b[b0:b1])
    return out
