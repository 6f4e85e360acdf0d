"""The word tokenizer the checks share (spaCy's rule-based English tokenizer) and
whitespace normalisation.

spaCy's blank English pipeline has no model weights: it loads in well under a second
and is built once per process. Whitespace-only tokens are dropped, so a changed run of
spaces is never counted as an edit.

Examples:
    >>> tokenize("It wasn't  dull.")
    ('It', 'was', "n't", 'dull', '.')
    >>> normalize_space("  a \\n b ")
    'a b'
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

_SPACE = re.compile(r"\s+")


class Token(NamedTuple):
    """A token's text and its character offsets ``[start, end)`` in the text it came from."""

    text: str
    start: int
    end: int


@lru_cache(maxsize=1)
def _tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


@lru_cache(maxsize=8192)
def tokens_with_offsets(text: str) -> tuple[Token, ...]:
    """Non-space tokens of ``text`` with their character offsets.

    Examples:
        >>> tokens_with_offsets("a dull film")[1]
        Token(text='dull', start=2, end=6)
    """
    return tuple(Token(t.text, t.idx, t.idx + len(t.text)) for t in _tokenizer()(text) if not t.is_space)


def tokenize(text: str) -> tuple[str, ...]:
    """Non-space token texts of ``text`` (cached: originals are tokenised once per run).

    Examples:
        >>> tokenize("Great fun!")
        ('Great', 'fun', '!')
    """
    return tuple(t.text for t in tokens_with_offsets(text))


def normalize_space(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends.

    Examples:
        >>> normalize_space("a  b\\tc ")
        'a b c'
    """
    return _SPACE.sub(" ", text).strip()
