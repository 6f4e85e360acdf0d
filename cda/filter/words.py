"""Words: every word a counterfactual adds is an English word.

A small generator invents words ("ithorrible") or switches language ("bellissimo"), and
perplexity over a whole review barely notices one odd word. This check looks only at the
words the edit added (tokens of the edited segment that the original lacks) and asks
wordfreq (Speer, 2022) how common each is in English: a word rarer than ``min_zipf``
(Zipf scale: 2.0 is once per ten million words; "schlock" 2.2, "bellissimo" 1.7, an
invented word 0) fails the candidate. Tokens with digits or punctuation are not judged.

Examples:
    >>> WordsCheck(2.0).check("A dull film.", "A bellissimo film.").reason
    "added word(s) not known as English: 'bellissimo'"
    >>> WordsCheck(2.0).check("A dull film.", "A lively film.").passed
    True
"""

from __future__ import annotations

from collections import Counter

from cda.filter.tokens import tokenize
from cda.records import Candidate, Check

NAME = "words"


def added_words(original: str, edited: str) -> list[str]:
    """Alphabetic tokens of ``edited`` beyond those of ``original`` (a multiset difference), in order.

    Examples:
        >>> added_words("It was bad, so bad.", "It was good, so bad!")
        ['good']
    """
    left = Counter(tokenize(original))
    out = []
    for token in tokenize(edited):
        if left[token] > 0:
            left[token] -= 1
        elif token.isalpha():
            out.append(token)
    return out


class WordsCheck:
    """Passes when every added word has an English Zipf frequency of at least ``min_zipf``.

    Args:
        min_zipf: ``filter.min_word_zipf``.
    """

    name = NAME

    def __init__(self, min_zipf: float) -> None:
        self.min_zipf = min_zipf

    def check(self, original: str, edited: str) -> Check:
        """The check for one edited segment against its original."""
        from wordfreq import zipf_frequency

        rare = [w for w in added_words(original, edited) if zipf_frequency(w, "en") < self.min_zipf]
        if rare:
            listed = ", ".join(repr(w) for w in rare[:3])
            return Check(name=self.name, passed=False, reason=f"added word(s) not known as English: {listed}", value=len(rare))
        return Check(name=self.name, passed=True, value=0)

    def __call__(self, original: str, candidate: Candidate, segment: str) -> Check:
        return self.check(original, (candidate.segments or {}).get(segment, ""))
