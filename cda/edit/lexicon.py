"""The ``lexicon`` edit strategy: replace, by rule, the words people change to flip a label.

Human counterfactual pairs (``edit.strategy.pairs``, e.g. Kaushik et al.'s IMDb train pairs) hold
thousands of word-level edits per direction: "boring → exciting", "waste → worth", "not worth →
worth", "2/10 → 8/10". A word people change often (its change rate in the pairs, as
:mod:`cda.explain.prior` counts it, is at least ``min_rate``) and always to the same few words
(at least ``min_texts`` different texts chose the same replacement, and both the old and the new
words hold a content word: "not" -> "so" depends on its sentence) is a *site*: the strategy
finds every site of a text (longest phrase first, up to ``phrase_words`` words) and makes one
candidate with each site replaced by people's most common replacement, in the old word's case,
without calling the generator (Wang & Culotta 2021 substitute antonyms of causal words; here the
substitutions are learned from the user's own pairs, per direction).

A replacement holds only where the words are used as in the texts that made it (their parts of
speech, spaCy's tagger: "I love it", not "a love story" or the title "Love Actually"); a number
only as a rating ("7/10", not "7 movies"); a negation ("do not recommend", "not worth") is one
vote whatever its spelling, written as the sentence needs ("would not recommend", "I do not
recommend"; none where that takes rewriting: "he recommends").

With ``fill: generator`` the sites are the blanks and the generator writes their new words (a
generator trained on the same pairs, ``cda train-generator``, learnt to fill exactly such blanks):
the lexicon says where, the generator says what.

A text with no site is
planned as ``infill`` (the generator fills the rationale spans), and a lexicon plan that the
filter rejects becomes, in search round 2, the ``infill`` plan of its rationale spans; later
rounds widen that mask as ``infill`` does. Candidates made by rule have the generator name
``rule:lexicon``; the filter judges them like any other (label, words, fluency, ...).

Examples:
    >>> lexicon = Lexicon.from_pairs([("A dull film, dull.", "A gripping film, gripping.", "Negative", "Positive"),
    ...                               ("Dull and long.", "Gripping and long.", "Negative", "Positive")])
    >>> [(s.old, s.new) for s in lexicon.sites("So DULL. Dull, slow.", "Negative", "Positive", min_texts=2)]
    [('DULL', 'GRIPPING'), ('Dull', 'Gripping')]
    >>> lexicon.sites("So dull.", "Positive", "Negative", min_texts=2)
    []
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Literal

from pydantic import Field

from cda.cache import Cache
from cda.config import PairsConfig
from cda.edit.plans import fill_blanks, mask_segment
from cda.edit.strategies import InfillStrategy
from cda.explain.prior import ChangePrior, change_counts, prior_from_pairs
from cda.filter.tokens import Token, tokens_with_offsets
from cda.records import Candidate, EditPlan, Record, Span
from cda.registry import edit_strategies

if TYPE_CHECKING:
    from cda.config import Config

log = logging.getLogger(__name__)

#: The generator name of candidates the lexicon makes.
LEXICON_GENERATOR = "rule:lexicon"

# (source label, target label, lower-cased old tokens, their parts of speech: () when untagged)
Key = tuple[str, str, tuple[str, ...], tuple[str, ...]]
#: Per token of :func:`~cda.filter.tokens.tokens_with_offsets`: (coarse part of speech, fine tag).
Tags = list[tuple[str, str]]

# A replacement that only puts a negation before the old words ("recommend" -> "don't recommend"):
# its spellings are one vote, written as the sentence needs (see :func:`_negated`).
_NEGATIONS = {("not",), ("n't",), ("do", "not"), ("do", "n't"), ("does", "not"), ("does", "n't"), ("did", "not"), ("did", "n't")}
_NEGATION = "<not>"
# Auxiliaries a negation follows, for untagged text ("would recommend" -> "would not recommend").
_AUXILIARIES = frozenset("am is are was were be been do does did have has had will would shall should can could may might must".split())
# A number is a rating only before these ("7/10", "7 out of 10", "3 stars"): "7 movies" stays.
_RATING = re.compile(r"\s*(/|out of\b|stars?\b|points?\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Site:
    """Where a text holds words people change: ``text[start:end]`` is ``old``, to become ``new``."""

    start: int
    end: int
    old: str
    new: str


def _in_case_of(old: str, new: str) -> str:
    """``new`` in the case of ``old``: all capitals, a capital first letter, or as it is.

    Examples:
        >>> _in_case_of("DULL", "gripping"), _in_case_of("Dull", "gripping"), _in_case_of("dull", "gripping")
        ('GRIPPING', 'Gripping', 'gripping')
    """
    letters = [ch for ch in old if ch.isalpha()]
    if len(letters) > 1 and all(ch.isupper() for ch in letters):
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _content(words: tuple[str, ...]) -> list[str]:
    """The words that are not stop words (spaCy's English list) or punctuation.

    A replacement of function words alone ("not" -> "so", "don't" -> "highly", "a great" -> "no")
    depends on the sentence it was made in; one with a content word on both sides carries its
    meaning with it ("not worth" -> "worth", "2/10" -> "8/10").

    Examples:
        >>> _content(("not", "worth")), _content(("do", "n't"))
        (['worth'], [])
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    return [w for w in words if any(ch.isalnum() for ch in w) and w not in STOP_WORDS]


@functools.lru_cache(maxsize=65536)
def _has_content(text: str) -> bool:
    """Whether a replacement holds a content word (tokenized once per distinct replacement).

    Examples:
        >>> _has_content("highly"), _has_content("so")
        (True, False)
    """
    return bool(_content(tuple(t.text.lower() for t in tokens_with_offsets(text))))


def _article(word: str) -> str:
    """``an`` before a vowel letter, else ``a`` (by spelling: "a unique", "an hour" come out wrong).

    Examples:
        >>> _article("exciting"), _article("dull")
        ('an', 'a')
    """
    return "an" if word.strip()[:1].lower() in ("a", "e", "i", "o", "u") else "a"


def _canonical(old: str, new: str) -> str:
    """``new`` as it would read after a lower-case ``old`` (a capital only because it began a sentence goes)."""
    if old[:1].isupper() and new[:1].isupper() and not new.isupper():
        return new[:1].lower() + new[1:]
    return new


def _as_negation(old: tuple[str, ...], new: str) -> str:
    """``new`` as one vote: :data:`_NEGATION` when it only negates ``old`` ("do not recommend").

    Examples:
        >>> _as_negation(("recommend",), "don't recommend"), _as_negation(("recommend",), "avoid")
        ('<not>', 'avoid')
    """
    words = tuple(t.text.lower() for t in tokens_with_offsets(new))
    if len(words) > len(old) and words[len(words) - len(old) :] == old and words[: len(words) - len(old)] in _NEGATIONS:
        return _NEGATION
    return new


def _negated(old: str, tags: Tags, before: tuple[str, str] | None) -> str | None:
    """``old`` negated as its sentence needs: "not" after an auxiliary ("would not recommend", "is
    not worth"), "do not" before a plain verb ("I do not recommend"), "not" before other words ("not
    worth it"); ``None`` where that takes rewriting ("he recommends", "I recommended", "well worth it").

    Examples:
        >>> _negated("recommend", [("VERB", "VB")], ("AUX", "MD")), _negated("recommend", [("VERB", "VBP")], ("PRON", "PRP"))
        ('not recommend', 'do not recommend')
        >>> _negated("enjoy", [("VERB", "VB")], ("PART", "TO")), _negated("recommended", [("VERB", "VBD")], ("PRON", "PRP")) is None
        ('not enjoy', True)
    """
    if before is not None and (before[0] == "AUX" or before[1] == "TO"):
        return "not " + old  # "would not recommend", "a way to not enjoy it"
    if not tags:
        return None  # untagged: only after an auxiliary
    pos, tag = tags[0]
    if pos == "VERB" or pos == "AUX":
        return "do not " + old if tag in ("VB", "VBP") else None
    if before is not None and before[0] in ("ADV", "ADJ", "PART"):
        return None  # "well worth it" -> "well not worth it"
    return "not " + old


def _written(new: str, text: str, tokens: tuple[Token, ...], i: int, n: int, tags: Tags | None) -> str | None:
    """``new`` as it replaces tokens ``i`` to ``i + n - 1`` of ``text``: in the old words' case, and
    :data:`_NEGATION` as the sentence needs (:func:`_negated`); ``None`` where it cannot go.

    Examples:
        >>> text = "I would recommend it, not recommend it."
        >>> tokens = tokens_with_offsets(text)
        >>> _written(_NEGATION, text, tokens, 2, 1, None), _written(_NEGATION, text, tokens, 6, 1, None)
        ('not recommend', None)
    """
    old = text[tokens[i].start : tokens[i + n - 1].end]
    if new != _NEGATION:
        return _in_case_of(old, new)
    previous = tokens[i - 1].text.lower() if i > 0 else None
    if previous in ("not", "n't", "never", "no"):
        return None  # already negated
    before = None
    if previous is not None:
        before = tags[i - 1] if tags is not None else ("AUX" if previous in _AUXILIARIES else "", "")
    negated = _negated(old, tags[i : i + n] if tags is not None else [], before)
    return None if negated is None else _in_case_of(old, negated.lower())  # "Worth it." -> "Not worth it."


@functools.lru_cache(maxsize=1024)
def _tags_of(spacy_model: str, text: str) -> Tags:
    """The parts of speech of one text (cached: a record's target labels share them)."""
    return pos_tagger(spacy_model)([text])[0]


def pos_tagger(spacy_model: str) -> Callable[[list[str]], list[Tags]]:
    """A function giving the parts of speech of texts, per :func:`~cda.filter.tokens.tokens_with_offsets`
    token (spaCy's tagger; a token spaCy splits otherwise gets ``("X", "")``)."""
    from cda.explain.spans import load_spacy

    nlp = load_spacy(spacy_model, parser=False, tagger=True)

    def tag(texts: list[str]) -> list[Tags]:
        out = []
        for text, doc in zip(texts, nlp.pipe(texts, batch_size=64)):
            at = {t.idx: (t.pos_, t.tag_) for t in doc}
            out.append([at.get(token.start, ("X", "")) for token in tokens_with_offsets(text)])
        return out

    return tag


class Lexicon:
    """People's replacements per direction and old words, counted by the texts that made them,
    and the rate at which people changed each word (a :class:`~cda.explain.prior.ChangePrior`).

    Args:
        replacements: ``(source, target, old tokens, their parts of speech) -> {new: ids of the texts
            that made it}``; the parts of speech keep a word's senses apart ("a love story" is not
            "I love it"; the title "Amazing Grace" is not "amazing").
        prior: the words' change rates in the same pairs.
        phrase_words: the longest old phrase looked for, in tokens.
    """

    def __init__(self, replacements: dict[Key, dict[str, set[str]]], prior: ChangePrior, phrase_words: int = 3) -> None:
        self.replacements = replacements
        self.prior = prior
        self.phrase_words = phrase_words
        # (source, target, old tokens) -> {new: ids} over all parts of speech, and the parts of speech of each new
        self._made: dict[tuple[str, str, tuple[str, ...]], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._used_as: dict[tuple[str, str, tuple[str, ...], str], set[tuple[str, ...]]] = defaultdict(set)
        for (source, target, old, pos), made in replacements.items():
            for new, ids in made.items():
                self._made[(source, target, old)][new] |= ids
                self._used_as[(source, target, old, new)].add(pos)

    def __len__(self) -> int:
        return len(self.replacements)

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[tuple[str, str, str, str]],
        phrase_words: int = 3,
        smoothing: float = 2.0,
        tagger: Callable[[list[str]], list[Tags]] | None = None,
        prior: ChangePrior | None = None,
    ) -> "Lexicon":
        """The lexicon of ``(original, revised, source label, target label)`` pairs: their word-level
        edits of at most ``phrase_words`` words on either side (:func:`~cda.generate.demonstrations.word_edits`),
        keyed by the old words' parts of speech when a ``tagger`` (:func:`pos_tagger`) is given.
        Negations of the old words ("not worth", "don't recommend") are one replacement, :data:`_NEGATION`.
        ``prior``: the pairs' change prior, when already known (else counted here)."""
        from cda.generate.demonstrations import text_id, word_edits

        pairs = list(pairs)
        tags = tagger([original for original, *_ in pairs]) if tagger else [None] * len(pairs)
        replacements: dict[Key, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for (original, revised, source, target), tagged in zip(pairs, tags):
            first = {t.start: k for k, t in enumerate(tokens_with_offsets(original))}
            for region in word_edits(original, revised, phrase_words):
                old = tuple(t.text.lower() for t in tokens_with_offsets(region.old))
                pos: tuple[str, ...] = ()
                if tagged is not None:
                    k = first[region.start]
                    pos = tuple(p for p, _ in tagged[k : k + len(old)])
                new = _as_negation(old, _canonical(region.old.strip(), region.new.strip()))
                replacements[(source, target, old, pos)][new].add(text_id(original))
        if prior is None:
            prior = ChangePrior.from_counts(change_counts([(o, r, s) for o, r, s, _ in pairs]), smoothing)
        return cls({k: dict(v) for k, v in replacements.items()}, prior, phrase_words)

    def as_json(self) -> dict:
        """The lexicon as JSON (:meth:`from_json` reads it back)."""
        rows = [[s, t, list(old), list(pos), {new: sorted(ids) for new, ids in made.items()}]
                for (s, t, old, pos), made in self.replacements.items()]  # fmt: skip
        return {"replacements": rows, "prior": self.prior.as_json(), "phrase_words": self.phrase_words}

    @classmethod
    def from_json(cls, data: dict) -> "Lexicon":
        """The lexicon :meth:`as_json` wrote.

        Examples:
            >>> lexicon = Lexicon.from_pairs([("A dull film.", "A fine film.", "Negative", "Positive")])
            >>> Lexicon.from_json(lexicon.as_json()).replacements == lexicon.replacements
            True
        """
        replacements = {(s, t, tuple(old), tuple(pos)): {new: set(ids) for new, ids in made.items()}
                        for s, t, old, pos, made in data["replacements"]}  # fmt: skip
        prior = data["prior"]
        return cls(replacements, ChangePrior(prior["rates"], prior["overall"], prior["base"]), data["phrase_words"])

    def replacement(
        self, source: str, target: str, old: tuple[str, ...], min_texts: int = 2, exclude: str | None = None, pos: tuple[str, ...] = ()
    ) -> str | None:
        """The replacement most texts (other than ``exclude``, a :func:`~cda.generate.demonstrations.text_id`)
        made for these lower-cased ``old`` tokens, if at least ``min_texts`` made it (ties: alphabetical)
        and at least one of them used the words as ``pos`` (their parts of speech).

        Examples:
            >>> lexicon = Lexicon({("Negative", "Positive", ("bad",), ()): {"good": {"a", "b"}, "great": {"c"}}},
            ...                   ChangePrior({}, {}, 1.0))
            >>> lexicon.replacement("Negative", "Positive", ("bad",)), lexicon.replacement("Negative", "Positive", ("bad",), 3)
            ('good', None)
        """
        made = self._made.get((source, target, old))
        if not made:
            return None
        counts = Counter({new: len(ids - {exclude}) for new, ids in made.items() if pos in self._used_as[(source, target, old, new)]})
        if not counts:
            return None
        best = min(counts, key=lambda new: (-counts[new], new))
        return best if counts[best] >= min_texts else None

    def sites(
        self,
        text: str,
        source: str,
        target: str,
        min_texts: int = 3,
        min_rate: float = 0.4,
        exclude: str | None = None,
        tags: Tags | None = None,
    ) -> list[Site]:
        """Every site of ``text`` for an edit from ``source`` to ``target``, in text order, none
        overlapping: the longest phrase with a replacement wins; both the old words and the new
        hold a content word (:func:`_content`), and one of the old content words was changed by
        people at a rate of at least ``min_rate`` in ``source`` texts. With ``tags`` (the text's
        parts of speech, :func:`pos_tagger`; the lexicon must be tagged too), a replacement counts
        only where the words are used as in the texts that made it. A number is replaced only as
        a rating ("7/10", "7 out of 10"); a negation is written as the sentence needs (:func:`_negated`)."""
        tokens = tokens_with_offsets(text)
        lowered = [t.text.lower() for t in tokens]
        out: list[Site] = []
        i = 0
        while i < len(tokens):
            for n in range(min(self.phrase_words, len(tokens) - i), 0, -1):
                old = tuple(lowered[i : i + n])
                pos = tuple(p for p, _ in tags[i : i + n]) if tags is not None else ()
                new = self.replacement(source, target, old, min_texts, exclude, pos)
                content = _content(old)
                if new is None or not content or not (new == _NEGATION or _has_content(new)):
                    continue
                if max(self.prior.rate(w, source) for w in content) < min_rate:
                    continue
                start, end = tokens[i].start, tokens[i + n - 1].end
                if all(w.replace(".", "").isdigit() for w in content) and not _RATING.match(text, end):
                    continue
                new = _written(new, text, tokens, i, n, tags)
                if new is None:
                    continue
                if start > 0 and text[start - 1].isalnum() and new[:1].isalnum():
                    new = " " + new  # "n't" of "didn't" -> "did so", not "didso"
                free = i > 0 and (not out or out[-1].end <= tokens[i - 1].start)
                if free and lowered[i - 1] in ("a", "an") and _article(new) != lowered[i - 1]:
                    # "a boring film" -> "an exciting film": the article joins the site
                    new = _in_case_of(tokens[i - 1].text, _article(new)) + text[tokens[i - 1].end : start] + new
                    start = tokens[i - 1].start
                out.append(Site(start, end, text[start:end], new))
                i += n
                break
            else:
                i += 1
        return out


_LOADED: dict[str, Lexicon] = {}


def lexicon_for(pairs: PairsConfig, config: "Config", phrase_words: int, where: str = "edit.strategy.pairs") -> Lexicon:
    """The lexicon of a pairs file (built once per process and file version)."""
    from cda.generate.pairs import read_pairs

    quads = [(o.segments[s], revised[s], o.label, target) for o, revised, target, s in read_pairs(pairs, config, where)]
    cache = Cache(config.resolved_cache_dir())
    spacy_model = config.explain.spacy_model
    key = cache.key("lexicon", {"pairs": quads, "phrase_words": phrase_words, "tagger": spacy_model, "version": 2})
    if key not in _LOADED:
        stored = cache.get_json(key)
        if stored is None:
            prior = prior_from_pairs([(o, r, s) for o, r, s, _ in quads], cache)
            lexicon = Lexicon.from_pairs(quads, phrase_words, tagger=pos_tagger(spacy_model), prior=prior)
            cache.put_json(key, lexicon.as_json())
        else:
            lexicon = Lexicon.from_json(stored)
        _LOADED[key] = lexicon
        log.info("lexicon: %d (direction, words) with replacements from %s", len(lexicon), pairs.path)
    return _LOADED[key]


@edit_strategies.register("lexicon")
class LexiconStrategy(InfillStrategy):
    """Replace the words people change (by rule, or blanked for the generator); ``infill`` where there are none.
    See the module docstring.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        ...     "edit": {"strategy": {"name": "lexicon", "pairs": {"path": "demo/imdb_pairs.tsv", "key": "batch_id"}}}})
        >>> from cda.edit.strategies import make_strategy
        >>> strategy = make_strategy(cfg)
        >>> r = Record(index=0, segments={"text": "A boring, bad film. I hated it."}, label="Negative",
        ...            spans=[Span(segment="text", start=2, end=8)])
        >>> plan = strategy.plans(r)[0]
        >>> plan.masked
        '[BLANK1], [BLANK2] film. I [BLANK3] it.'
        >>> [(c.segments["text"], c.generator) for c in strategy.rule_candidates(r, plan)]
        [('An interesting, good film. I loved it.', 'rule:lexicon')]
        >>> cfg.edit.strategy.fill = "generator"  # the same blanks, for the generator to fill
        >>> plan = make_strategy(cfg).plans(r)[0]
        >>> plan.masked, plan.replacements, make_strategy(cfg).rule_candidates(r, plan)
        ('[BLANK1], [BLANK2] film. I [BLANK3] it.', [], None)
    """

    class Settings(InfillStrategy.Settings):
        # Human counterfactual pairs to learn the replacements from (the task's columns).
        pairs: PairsConfig
        # The longest old phrase looked for, in words.
        phrase_words: int = Field(default=3, ge=1, le=8)
        # A replacement counts when at least this many different texts made it.
        min_texts: int = Field(default=3, ge=1)
        # A site needs a word people changed at least this often when it occurred in a source-label text.
        min_rate: float = Field(default=0.4, ge=0.0, le=1.0)
        # Who writes the sites' new words: ``rule`` (people's most common replacement) or
        # ``generator`` (the sites are the blanks an LLM fills: the lexicon says where, a trained
        # generator says what; AutoCAD's infilling on the words people change).
        fill: Literal["rule", "generator"] = "rule"

    _lexicon: Lexicon | None = None

    def lexicon(self) -> Lexicon:
        """The lexicon of ``pairs`` (read on first use)."""
        if self._lexicon is None:
            s = self.settings
            self._lexicon = lexicon_for(s.pairs, self.config, s.phrase_words)  # type: ignore[attr-defined]
        return self._lexicon

    def lexicon_plan(self, record: Record, plan: EditPlan) -> EditPlan | None:
        """The plan that replaces every site of ``plan``'s segment, or ``None`` when it has none."""
        from cda.generate.demonstrations import text_id

        s = self.settings
        text = record.segments[plan.segment]
        tags = _tags_of(self.config.explain.spacy_model, text)
        sites = self.lexicon().sites(text, record.label, plan.target_label, s.min_texts, s.min_rate, exclude=text_id(text), tags=tags)  # type: ignore[attr-defined]
        if not sites:
            return None
        spans = [Span(segment=plan.segment, start=site.start, end=site.end, text=site.old) for site in sites]
        by_rule = s.fill == "rule"  # type: ignore[attr-defined]
        return EditPlan(target_label=plan.target_label, segment=plan.segment, spans=spans,
                        masked=mask_segment(text, spans, self.config.edit.blank),
                        replacements=[site.new for site in sites] if by_rule else [], round=plan.round)  # fmt: skip

    def plans(self, record: Record) -> list[EditPlan]:
        """Per target label: the lexicon plan where the segment has sites, else the ``infill`` plan."""
        return [self.lexicon_plan(record, plan) or plan for plan in super().plans(record)]

    def widen(self, record: Record, plan: EditPlan, round: int, add_spans: int) -> EditPlan | None:
        """After a lexicon plan: the ``infill`` plan of the rationale spans; after that, a wider mask
        (with ``fill: generator``, the sites' mask widened by the rationale spans)."""
        if not plan.replacements:
            return super().widen(record, plan, round, add_spans)
        for infill in super().plans(record):
            if infill.target_label == plan.target_label and infill.segment == plan.segment and infill.spans:
                return infill.model_copy(update={"round": round})
        return None

    def revise(self, record: Record, plan: EditPlan, values: list[str]) -> tuple[list[str] | None, str | None]:
        """A blank the generator filled with the negation of its own words ("don't enjoy" for
        "enjoy") is written as the sentence needs, like the rule's negations ("kids will not
        enjoy it", "Do not miss it"); one that takes rewriting ("a very not enjoyable film",
        "not" twice) makes the answer unusable. Other replacements go in as written."""
        text = record.segments[plan.segment]
        tokens = tokens_with_offsets(text)
        first = {t.start: k for k, t in enumerate(tokens)}
        last = {t.end: k for k, t in enumerate(tokens)}
        out = []
        for span, value in zip(plan.spans, values):
            i, j = first.get(span.start), last.get(span.end)
            if i is None or j is None or _as_negation(tuple(t.text.lower() for t in tokens[i : j + 1]), value) != _NEGATION:
                out.append(value)
                continue
            written = _written(_NEGATION, text, tokens, i, j + 1 - i, _tags_of(self.config.explain.spacy_model, text))
            if written is None:
                return None, f"{value!r} for {span.text!r} is a negation its sentence cannot take without rewriting"
            out.append(written)
        return out, None

    def rule_candidates(self, record: Record, plan: EditPlan) -> list[Candidate] | None:
        """The lexicon plan's one candidate; ``None`` (ask the generator) for an ``infill`` plan."""
        if not plan.replacements:
            return None
        blank = self.config.edit.blank
        raw = "\n".join(f"{blank.format(i=k)}: {new.strip()}" for k, new in enumerate(plan.replacements, start=1))
        segments = {**record.segments, plan.segment: fill_blanks(record.segments[plan.segment], plan.spans, plan.replacements)}
        return [Candidate(segments=segments, raw=raw, generator=LEXICON_GENERATOR)]
