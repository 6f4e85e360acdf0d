"""Words: every word a counterfactual adds is an English word.

A small generator invents words ("ithorrible") or switches language ("bellissimo"), and
perplexity over a whole review barely notices one odd word. This check looks only at the
words the edit added (tokens of the edited segment that the original lacks) and asks
wordfreq (Speer, 2022) how common each is: a word rarer in English than ``min_zipf`` (Zipf
scale: 1.0 is once per hundred million words; an invented word is 0) fails, and so does a
word that is more than ``foreign_margin`` more common in Italian, Spanish, French, German,
Portuguese or Dutch than in English while rare in English ("bellissimo": 1.7 in English,
4.7 in Italian). Rare real words people write ("monotonously" 1.8, "crappiest" 1.8) pass.
A token with digits or punctuation is judged by its runs of letters ("JFREY-2017" by "JFREY",
"Very**Many**thing" by its three words); the words of an entity swapped in by the
``entity_swap`` strategy are not judged.

Examples:
    >>> WordsCheck().check("A dull film.", "A bellissimo film.").reason
    "added word(s) from another language: 'bellissimo' (it)"
    >>> WordsCheck().check("A dull film.", "An ithorrible film.").reason
    "added word(s) not known as English: 'ithorrible'"
    >>> WordsCheck().check("A dull film.", "A monotonously paced film.").passed
    True
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from pydantic import Field

from cda.filter.checks import CheckContext, CheckItem, FilterCheck
from cda.filter.tokens import tokenize
from cda.records import Check
from cda.registry import ComponentSettings, checks

NAME = "words"


def added_words(original: str, edited: str) -> list[str]:
    """The words of tokens of ``edited`` beyond those of ``original`` (a multiset difference), in
    order: an alphabetic token, or the runs of letters of one with digits or punctuation.

    Examples:
        >>> added_words("It was bad, so bad.", "It was good, so bad!")
        ['good']
        >>> added_words("It was bad.", "It was JFREY-2017_1 so-so.")
        ['JFREY', 'so', 'so']
    """
    left = Counter(tokenize(original))
    out = []
    for token in tokenize(edited):
        if left[token] > 0:
            left[token] -= 1
        elif token.isalpha():
            out.append(token)
        else:
            out += [run for run in _LETTERS.findall(token) if len(run) > 1]
    return out


_LETTERS = re.compile(r"[^\W\d_]+")


# Languages a small multilingual model drifts into; a word much more common in one is foreign.
OTHER_LANGUAGES = ("it", "es", "fr", "de", "pt", "nl")
# Above this English Zipf frequency a word is English whatever else it is ("film", "formidable").
COMMON_ENGLISH = 3.5


@checks.register(NAME)
class WordsCheck(FilterCheck):
    """Passes when every added word is English: Zipf frequency at least ``min_zipf``, and not a
    word of another language that is rare in English.

    Settings (``filter.checks.words``): ``min_zipf`` (1.0 is once per hundred million words:
    invented words fail) and ``foreign_margin`` (how much more common, in Zipf, a word must be in
    another language to count as foreign).
    """

    class Settings(ComponentSettings):
        min_zipf: float = Field(default=1.0, ge=0, le=8)
        foreign_margin: float = Field(default=1.5, ge=0)

    cost = 2
    fails_when = "added a word that is not English: invented, or from another language (filter.checks.words.min_zipf)"

    def __init__(self, settings: ComponentSettings | None = None, context: CheckContext | None = None) -> None:
        super().__init__(settings or self.Settings(name=NAME), context)  # type: ignore[arg-type]
        self.min_zipf = self.settings.min_zipf  # type: ignore[attr-defined]
        self.foreign_margin = self.settings.foreign_margin  # type: ignore[attr-defined]

    def problem(self, word: str) -> tuple[str, str] | None:
        """``("unknown", "")`` or ``("foreign", language)`` when the word fails, else ``None``."""
        from wordfreq import zipf_frequency

        english = zipf_frequency(word, "en")
        if english < self.min_zipf:
            return "unknown", ""
        if english < COMMON_ENGLISH:
            other, lang = max((zipf_frequency(word, lang), lang) for lang in OTHER_LANGUAGES)
            if other > english + self.foreign_margin:
                return "foreign", lang
        return None

    def check(self, original: str, edited: str) -> Check:
        """The check for one edited segment against its original."""
        problems = [(w, p) for w in added_words(original, edited) if (p := self.problem(w)) is not None]
        if not problems:
            return Check(name=self.name, passed=True, value=0)
        kind = problems[0][1][0]
        listed = ", ".join(repr(w) + (f" ({lang})" if lang else "") for w, (k, lang) in problems[:3] if k == kind)
        what = "not known as English" if kind == "unknown" else "from another language"
        return Check(name=self.name, passed=False, reason=f"added word(s) {what}: {listed}", value=len(problems))

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        # Against what the generator was given: an entity swapped in by rule (a rare name from
        # the entity bank) is not a word the generator added.
        return [self.check(item.given, item.edited) for item in items]
