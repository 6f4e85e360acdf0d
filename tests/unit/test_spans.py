"""Span selection: hand-computed cases for the pure logic, then spaCy words on a blank pipeline."""

from __future__ import annotations

import pytest
import spacy

from cda.config import ExplainConfig, TaskConfig
from cda.explain.spans import SpanSelector, Word, select_spans, word_scores
from cda.protocols import Attribution, TokenScore

SENTIMENT = TaskConfig(segments={"text": "Text"}, label_column="y", labels=["Negative", "Positive"])
NLI = TaskConfig(
    segments={"premise": "s1", "hypothesis": "s2"}, label_column="y", labels=["entailment", "neutral", "contradiction"]
)


def words_of(text: str, scores: list[float], segment: str = "t", eligible: list[bool] | None = None) -> list[Word]:
    """Whitespace words of ``text`` with the given scores."""
    out, pos = [], 0
    for k, token in enumerate(text.split()):
        start = text.index(token, pos)
        pos = start + len(token)
        ok = True if eligible is None else eligible[k]
        out.append(Word(segment, start, pos, token, score=scores[k], eligible=ok))
    return out


# ------------------------------------------------------------------ word_scores
def test_word_scores_sums_subwords_of_each_word():
    # "unwatchable film": un|watch|able over word 0, film over word 1.
    scores = word_scores([(0, 11), (12, 16)], [(0, 2, 0.5), (2, 7, 1.0), (7, 11, -0.25), (12, 16, 0.125)])
    assert scores == [1.25, 0.125]


def test_word_scores_splits_a_straddling_token_by_overlap():
    # BERT "don" (0-3) over spaCy "do" (0-2) and "n't" (2-5); "'" (3-4) and "t" (4-5) inside "n't".
    scores = word_scores([(0, 2), (2, 5)], [(0, 3, 3.0), (3, 4, 1.0), (4, 5, 1.0)])
    assert scores == [2.0, 3.0]


def test_word_scores_untouched_words_and_empty_tokens_score_zero():
    assert word_scores([(0, 1), (2, 3)], [(2, 3, 1.5), (5, 5, 9.0)]) == [0.0, 1.5]


# ----------------------------------------------------------------- select_spans
def test_top_fraction_and_min_score():
    # 10 words; top 30% = 3 candidates: w1 (1.0), w5 (0.5 -> 0.5), w8 (0.2 -> 0.2 < 0.3 dropped).
    text = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"
    scores = [0.0, 4.0, 0.1, 0.1, 0.1, 2.0, 0.1, 0.1, 0.8, 0.1]
    spans = select_spans(words_of(text, scores), top_fraction=0.3, min_score=0.3, segments={"t": text})
    assert [(s.text, s.score) for s in spans] == [("w1", 1.0), ("w5", 0.5)]


def test_top_fraction_rounds_up_so_short_texts_get_a_word():
    spans = select_spans(words_of("a b", [0.2, 1.0]), top_fraction=0.3, min_score=0.0)
    assert [(s.start, s.end) for s in spans] == [(2, 3)]


def test_negative_scores_clip_to_zero_and_all_negative_selects_nothing():
    # Normalised: a 0 (clipped), b 1, c 0.25 (< 0.3), d 0.5.
    spans = select_spans(words_of("a b c d", [-5.0, 2.0, 0.5, 1.0]), top_fraction=1.0, min_score=0.3)
    assert [(s.start, s.end, s.score) for s in spans] == [(2, 3, 1.0), (6, 7, 0.5)]
    assert select_spans(words_of("a b c", [-1.0, -2.0, 0.0]), top_fraction=1.0, min_score=0.0) == []


def test_adjacent_words_merge_and_score_by_their_best_word():
    text = "not very good at all"
    spans = select_spans(words_of(text, [4.0, 2.0, 3.0, 0.0, 0.0]), top_fraction=0.6, min_score=0.3, segments={"t": text})
    assert [(s.start, s.end, s.text, s.score) for s in spans] == [(0, 13, "not very good", 1.0)]


def test_ineligible_words_never_picked_and_break_runs():
    # "." is ineligible (punctuation): it neither gets picked nor normalises the others.
    text = "dull . boring"
    words = words_of(text, [1.0, 100.0, 2.0], eligible=[True, False, True])
    spans = select_spans(words, top_fraction=1.0, min_score=0.3, segments={"t": text})
    assert [(s.text, s.score) for s in spans] == [("dull", 0.5), ("boring", 1.0)]


def test_runs_do_not_cross_segments():
    words = words_of("a b", [1.0, 1.0], segment="premise") + words_of("c d", [1.0, 1.0], segment="hypothesis")
    spans = select_spans(words, top_fraction=1.0, min_score=0.0)
    assert [(s.segment, s.start, s.end) for s in spans] == [("premise", 0, 3), ("hypothesis", 0, 3)]


def test_max_spans_keeps_highest_in_text_order():
    text = "a x b x c x d"
    words = words_of(text, [0.5, 0.0, 1.0, 0.0, 0.9, 0.0, 0.4])
    spans = select_spans(words, top_fraction=1.0, min_score=0.3, max_spans=2, segments={"t": text})
    assert [s.text for s in spans] == ["b", "c"]


def test_noun_chunk_expands_to_the_whole_chunk():
    text = "a very dull film indeed"
    words = words_of(text, [0.0, 0.1, 1.0, 0.2, 0.0])
    for w in words[:4]:
        w.chunk = 0
    spans = select_spans(words, top_fraction=0.2, min_score=0.3, granularity="noun_chunk", segments={"t": text})
    assert [(s.text, s.score) for s in spans] == [("a very dull film", 1.0)]
    with pytest.raises(ValueError, match="granularity"):
        select_spans(words, granularity="sentence")


def test_no_eligible_words_gives_no_spans():
    assert select_spans(words_of("a b", [1.0, 1.0], eligible=[False, False])) == []


# ----------------------------------------------------------------- SpanSelector
def test_selector_maps_subwords_to_words_and_respects_seen_chars():
    text = "An unwatchable, dull film. Truly awful."
    selector = SpanSelector(ExplainConfig(top_fraction=1.0, min_score=0.3), SENTIMENT, nlp=spacy.blank("en"))
    tokens = [
        TokenScore("text", 3, 5, 0.5),  # un
        TokenScore("text", 5, 10, 0.5),  # watch
        TokenScore("text", 10, 14, 0.5),  # able
        TokenScore("text", 14, 15, 9.0),  # "," punctuation: never picked, never the max
        TokenScore("text", 16, 20, 1.0),  # dull
        TokenScore("text", 21, 25, 0.1),  # film
        TokenScore("text", 33, 38, 5.0),  # awful: beyond seen_chars
    ]
    spans = selector.spans({"text": text}, Attribution("Negative", tokens, {"text": 26}))
    assert [(s.text, s.score) for s in spans] == [("unwatchable", 1.0), ("dull", pytest.approx(2 / 3))]


def test_selector_only_picks_in_editable_segments():
    segments = {"premise": "A dog runs.", "hypothesis": "A cat sleeps."}
    tokens = [TokenScore("premise", 2, 5, 10.0), TokenScore("hypothesis", 2, 5, 1.0), TokenScore("hypothesis", 6, 12, 0.2)]
    selector = SpanSelector(ExplainConfig(), NLI, nlp=spacy.blank("en"))
    spans = selector.spans(segments, Attribution("neutral", tokens, {"premise": 11, "hypothesis": 13}))
    assert [(s.segment, s.text, s.score) for s in spans] == [("hypothesis", "cat", 1.0)]
