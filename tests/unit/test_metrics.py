"""Each evaluation metric against values computed by hand.

sacrebleu's sentence BLEU (13a tokens, effective order, exponential smoothing): the
k-th n-gram order with no match gets precision 1 / (2**k * total), and the brevity
penalty is exp(1 - ref_len / hyp_len) when the hypothesis is shorter.
"""

import math

import pytest

from cda.evaluate import metrics as M


def test_bleu_identical_is_100():
    assert M.bleu("the film was good", ["the film was good"]) == 100.0


def test_bleu_one_substitution():
    # 1-4-gram precisions 3/4, 2/3, 1/2, 0/1 -> smoothed 1/(2*1); no brevity penalty.
    assert M.bleu("a b c d", ["a b c e"]) == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)


def test_bleu_brevity_penalty():
    # All 1-3-gram matches, no 4-grams in a 3-token hypothesis (effective order 3); BP = exp(1 - 4/3).
    assert M.bleu("a b c", ["a b c d"]) == pytest.approx(100 * math.exp(1 - 4 / 3))


def test_bleu_with_smoothing_of_two_orders():
    # "It was really good ." vs "It was great .": 3/5, 1/4, 0/3 -> 1/(2*3), 0/2 -> 1/(4*2).
    expected = 100 * (3 / 5 * 1 / 4 * 1 / 6 * 1 / 8) ** 0.25
    assert M.bleu("It was really good .", ["It was great ."]) == pytest.approx(expected)


def test_bleu_needs_a_reference():
    with pytest.raises(ValueError, match="at least one reference"):
        M.bleu("a", [])


def test_self_bleu_is_the_mean_of_each_against_the_others():
    a = 100 * (4 / 5 * 2 / 4 * 1 / 6 * 1 / 8) ** 0.25  # "It was really good ." vs "It was good ."
    b = 100 * math.exp(1 - 5 / 4) * (4 / 4 * 2 / 3 * 1 / 4 * 1 / 4) ** 0.25  # the reverse (shorter: BP)
    assert M.self_bleu(["It was really good .", "It was good ."]) == pytest.approx((a + b) / 2)


def test_self_bleu_of_identical_texts_and_of_one_text():
    assert M.self_bleu(["a b c d"] * 3) == pytest.approx(100.0)
    assert M.self_bleu(["only one"]) is None
    assert M.self_bleu([]) is None


def test_edit_distances_use_spacy_tokens_normalized_by_the_longer():
    pairs = [
        ("It was bad.", "It was good."),  # 1 substitution / 4 tokens ("." is a token)
        ("It was bad .", "It was really good ."),  # bad->really, +good: 2 / 5
        ("a dull film", "a great and fun film"),  # dull->great, +and, +fun: 3 / 5
        ("same text", "same text"),
    ]
    assert M.edit_distances(pairs) == pytest.approx([0.25, 0.4, 0.6, 0.0])


def test_edit_distances_accept_another_distance():
    assert M.edit_distances([("ab", "abc")], distance=lambda a, b: abs(len(a) - len(b))) == [1.0]


def test_perplexity_ratios():
    assert M.perplexity_ratios([50.0, 20.0, None, 5.0], [10.0, 40.0, 3.0, 0.0]) == [5.0, 0.5, None, None]
    with pytest.raises(ValueError):
        M.perplexity_ratios([1.0], [])


def test_judge_flips_and_flip_rate():
    probs = [{"Neg": 0.2, "Pos": 0.8}, {"Neg": 0.7, "Pos": 0.3}, {"Neg": 0.4, "Pos": 0.6}]
    judged = M.judge_flips(probs, ["Pos", "Pos", "Neg"])
    assert [j.flipped for j in judged] == [True, False, False]
    assert [j.predicted for j in judged] == ["Pos", "Neg", "Pos"]
    assert [j.target_prob for j in judged] == [0.8, 0.3, 0.4]
    assert M.flip_rate(judged) == pytest.approx(1 / 3)
    assert M.flip_rate([]) is None


def test_judge_flips_rejects_unknown_target():
    with pytest.raises(ValueError, match="not among the judge's labels"):
        M.judge_flips([{"Neg": 1.0, "Pos": 0.0}], ["neutral"])


def test_judge_batches_the_classifier():
    from tests.fakes import FakeClassifier

    judged = M.judge(FakeClassifier(), [{"text": "great"}, {"text": "awful"}, {"text": "fine"}],
                     ["Positive", "Positive", "Negative"], batch_size=2)  # fmt: skip
    assert [j.flipped for j in judged] == [True, False, True]  # "fine" ties 0.5/0.5: the first label wins


def test_summarize():
    s = M.summarize([1.0, 2.0, None, 6.0, float("nan")])
    assert s["n"] == 3 and s["mean"] == 3.0 and s["median"] == 2.0
    assert s["std"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2), abs=1e-4)
    assert M.summarize([True, False, False, True])["mean"] == 0.5
    assert M.summarize([None]) == {"n": 0, "mean": None, "median": None, "std": None}


def test_aggregate_overall_and_per_pair():
    rows = [
        {"source": "Neg", "target": "Pos", "flip": True, "d": 0.2},
        {"source": "Neg", "target": "Pos", "flip": False, "d": 0.4},
        {"source": "Pos", "target": "Neg", "flip": True, "d": None},
    ]
    agg = M.aggregate(rows, ["flip", "d"])
    assert agg["overall"]["count"] == 3
    assert agg["overall"]["flip"]["mean"] == pytest.approx(2 / 3, abs=1e-4)
    assert agg["overall"]["d"] == {"n": 2, "mean": 0.3, "median": 0.3, "std": pytest.approx(0.1414, abs=1e-4)}
    assert agg["by_pair"]["Neg→Pos"]["flip"]["mean"] == 0.5
    assert agg["by_pair"]["Pos→Neg"]["d"]["n"] == 0
    assert list(agg["by_pair"]) == ["Neg→Pos", "Pos→Neg"]
