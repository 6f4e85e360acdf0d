"""Filter stage: each check's pass and fail cases, selection order, the stage end to end."""

from __future__ import annotations

import pytest

from cda.config import ConfigError, config_from_dict
from cda.filter.duplicate import check_duplicates
from cda.filter.fluency import fluency_checks
from cda.filter.label import (
    LabelCheck,
    LabelMismatchError,
    SecondOpinionError,
    label_check,
    label_checks,
)
from cda.filter.logic import LogicCheck, outside_span_change
from cda.filter.minimality import MinimalityCheck, token_edit_distance
from cda.filter.select import select_best
from cda.filter.stage import FilterStage
from cda.records import Candidate, Check, EditPlan, Record, Span
from tests.fakes import FakeClassifier

SENTIMENT = {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]}
NLI = {
    "segments": {"premise": "sentence1", "hypothesis": "sentence2"},
    "label_column": "gold_label",
    "labels": ["entailment", "neutral", "contradiction"],
}


def _config(task=SENTIMENT, checks=None, **settings):
    """A config whose filter checks are ``checks`` (default: all), with ``check.key`` settings."""
    sections = {} if checks is None else {name: {} for name in checks}
    if checks is not None:
        sections = {**{name: None for name in ("logic", "minimality", "words", "duplicate", "label", "fluency")},
                    **sections}
    for key, value in settings.items():
        name, field = key.split("__")
        if value is None:
            sections[name] = None
        else:
            sections.setdefault(name, {})[field] = value
    return config_from_dict({"data": {"path": "unused.tsv"}, "task": task, "filter": {"checks": sections}})


def _span(text: str, word: str, segment: str = "text") -> Span:
    start = text.index(word)
    return Span(segment=segment, start=start, end=start + len(word), text=word)


ORIGINAL = "The plot was dull and the acting was bad."


def _record(
    *candidates: str | None, target: str = "Positive", text: str = ORIGINAL, prompt: str = "",
    words: tuple[str, ...] = ("dull", "bad"),
) -> Record:
    plan = EditPlan(
        target_label=target,
        segment="text",
        spans=[_span(text, w) for w in words],
        candidates=[
            Candidate(segments=None if c is None else {"text": c}, sample_index=i, prompt=prompt,
                      raw=c or "???", error="could not parse [BLANK1]" if c is None else None)
            for i, c in enumerate(candidates)
        ],
    )
    return Record(index=0, segments={"text": text}, label="Negative", plans=[plan])


def _logic(record: Record, position: int = 0, **filter_section) -> Check:
    plan = record.plans[0]
    return LogicCheck.create(_config(), **filter_section)(record, plan, plan.candidates[position])


class CountingLM:
    """Perplexity = 10 per token; remembers every batch it scored."""

    name = "counting-lm"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def perplexity(self, texts: list[str]) -> list[float]:
        self.calls.append(list(texts))
        return [10.0 * len(t.split()) for t in texts]


# --- minimality -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("It was bad.", "It was good.", 1 / 4),  # It was bad . -> 1 substitution over 4 tokens
        ("a b c", "a x b c", 1 / 4),  # 1 insertion, longer side has 4 tokens
        ("It was bad.", "It was not bad at all.", 3 / 7),  # 3 insertions, 7 tokens
        ("a b", "c d e", 3 / 3),  # 2 substitutions + 1 insertion
        ("It  was\nbad.", "It was bad.", 0.0),  # whitespace is not an edit
        ("It wasn't bad", "It was bad", 1 / 4),  # spaCy splits "wasn't" into was + n't
        ("", "", 0.0),
    ],
)
def test_token_edit_distance_hand_computed(a, b, expected):
    assert token_edit_distance(a, b) == pytest.approx(expected)


def test_minimality_check_pass_fail_and_sets_edit_distance():
    # 10 tokens: The plot was dull and the acting was bad .
    minimality = MinimalityCheck.create(_config(), max_edit_distance=0.25)
    check = minimality.check(ORIGINAL, "The plot was great and the acting was fine.")
    assert check.passed and check.value == pytest.approx(2 / 10)
    check = minimality.check(ORIGINAL, "Wonderful.")
    assert not check.passed
    assert check.reason == "token edit distance 0.900 > max 0.250"  # 9 edits over 10 tokens


# --- logic ------------------------------------------------------------------------------------


def test_logic_passes_an_edit_inside_the_spans():
    check = _logic(_record("The plot was gripping and the acting was superb."))
    assert check.passed and check.reason == ""


def test_logic_allows_longer_fills_and_whitespace_changes():
    assert _logic(_record("The plot was  not at all dull and the acting was very good indeed.")).passed


def test_logic_fails_empty_and_identical():
    empty = _logic(_record("   "))
    assert not empty.passed and empty.reason == "the edited segment 'text' is empty"
    same = _logic(_record(ORIGINAL.replace(" ", "  ")))
    assert not same.passed and same.reason == "identical to the original (ignoring whitespace)"
    punctuation = _logic(_record("The plot was Dull! and the acting was BAD."))  # inside the spans only
    assert not punctuation.passed and punctuation.reason == "changes no word of the original (only punctuation or case)"


def test_logic_fails_a_change_outside_the_spans():
    check = _logic(_record("The story was gripping and the acting was superb."), span_context=0)
    assert not check.passed
    assert check.reason == "the text before the first span changed: expected it to start with 'The plot was'"
    check = _logic(_record("The plot was gripping and the music was superb."), span_context=0)
    assert check.reason == "text outside the spans changed: 'and the acting was' is missing or out of order"
    check = _logic(_record("The plot was gripping and the acting was superb!"), span_context=0)
    assert check.reason == "the text after the last span changed: expected it to end with '.'"


def test_logic_span_context_lets_neighbouring_tokens_change():
    text = "It is a dull film."
    record = _record("It is an exciting film.", text=text, words=("dull",))
    assert not _logic(record, span_context=0).passed  # "a" -> "an" is outside the span
    assert _logic(record, span_context=1).passed


def test_outside_span_change_without_text_outside_spans():
    assert outside_span_change("dull", "great", [Span(segment="text", start=0, end=4)]) is None


def test_logic_fails_when_an_unedited_segment_changes():
    premise, hypothesis = "A man rides a red motorcycle.", "A man rides a bike."
    plan = EditPlan(
        target_label="contradiction",
        segment="hypothesis",
        spans=[_span(hypothesis, "rides", "hypothesis")],
        candidates=[
            Candidate(segments={"premise": premise, "hypothesis": "A man pushes a bike."}),
            Candidate(segments={"premise": "A man rides a blue motorcycle.", "hypothesis": "A man pushes a bike."}),
            Candidate(segments={"hypothesis": "A man pushes a bike."}),
        ],
    )
    record = Record(index=3, segments={"premise": premise, "hypothesis": hypothesis}, label="entailment", plans=[plan])
    check = LogicCheck.create(_config(NLI))
    assert check(record, plan, plan.candidates[0]).passed
    assert check(record, plan, plan.candidates[1]).reason == (
        "segment(s) ['premise'] changed, but only 'hypothesis' may be edited"
    )
    assert check(record, plan, plan.candidates[2]).reason == "segment(s) ['premise'] missing from the candidate"


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("The plot was [BLANK1] and the acting was great.", "leaks the blank marker '[BLANK1]'"),
        ("The plot was [blank] and the acting was great.", "leaks the blank marker '[blank]'"),
        ("The plot was Sentiment: good and the acting was great.", "leaks the prompt term 'sentiment:'"),
        ("The plot was positive and the acting was great.",
         "names the target label 'Positive', which the original does not"),
    ],
)
def test_logic_catches_leakage(candidate, reason):
    check = _logic(_record(candidate))
    assert not check.passed and check.reason == reason


def test_logic_allows_a_leak_term_that_the_original_already_has():
    text = "A positive surprise, though dull and bad."
    record = _record("A positive surprise, though fresh and good.", text=text)
    assert _logic(record).passed
    assert _logic(_record("The plot was positive and the acting was great."), leak_target_label=False).passed


def test_logic_catches_an_echoed_prompt_line():
    prompt = "Rewrite the review so that it becomes positive.\nReview: The plot was [BLANK1] and the acting was [BLANK2]."
    record = _record("The plot was Rewrite the review so that it becomes positive. and the acting was ok.", prompt=prompt)
    check = _logic(record)
    assert not check.passed
    assert "copies the prompt line 'Rewrite the review so that it becomes positive.'" in check.reason


def test_logic_reports_every_problem():
    check = _logic(_record("The story was [BLANK1] and the acting was bad."), span_context=0)
    assert check.reason.count("; ") == 1 and check.value == 2.0


# --- duplicate --------------------------------------------------------------------------------


def test_duplicates_name_the_first_sample_and_skip_failed_generations():
    record = _record("The plot was good and the acting was fine.", None, "The plot was  good and the acting was fine. ",
                     "The plot was great and the acting was fine.")
    checks = check_duplicates(record.plans[0])
    assert sorted(checks) == [0, 2, 3]  # the error candidate (1) is not compared
    assert checks[0].passed and checks[3].passed
    assert not checks[2].passed and checks[2].reason == "duplicate of sample 0"


# --- label ------------------------------------------------------------------------------------


def test_label_check_threshold_argmax_and_tie():
    assert label_check({"Negative": 0.3, "Positive": 0.7}, "Positive", 0.5).passed
    low = label_check({"Negative": 0.3, "Positive": 0.7}, "Positive", 0.8)
    assert not low.passed and low.reason == "P(Positive)=0.700 is below the threshold 0.800"
    probs = {"entailment": 0.25, "neutral": 0.35, "contradiction": 0.4}
    not_top = label_check(probs, "neutral", 0.3)
    assert not not_top.passed and not_top.value == 0.35
    assert not_top.reason == "the classifier prefers 'contradiction' (0.400) over the target 'neutral' (0.350)"
    tie = label_check({"Negative": 0.5, "Positive": 0.5}, "Positive", 0.5)
    assert not tie.passed and tie.reason == "the target 'Positive' ties with 'Negative' at 0.500"


def test_label_checks_batch_with_fake_classifier():
    checks = label_checks(
        FakeClassifier(), [({"text": "great fun"}, "Positive"), ({"text": "so dull"}, "Positive")], 0.5
    )
    assert [c.passed for c in checks] == [True, False]
    assert [c.value for c in checks] == pytest.approx([0.9, 0.1])
    with pytest.raises(LabelMismatchError, match="lack the target 'Neutral'"):
        label_checks(FakeClassifier(), [({"text": "x"}, "Neutral")], 0.5)


class TableClassifier:
    """P(Positive) looked up by text; remembers every batch it was given."""

    def __init__(self, name: str, positive: dict[str, float]) -> None:
        self.labels, self.name, self.positive, self.calls = ["Negative", "Positive"], name, positive, []

    def predict_proba(self, inputs):
        self.calls.append([x["text"] for x in inputs])
        return [{"Negative": 1 - self.positive[x["text"]], "Positive": self.positive[x["text"]]} for x in inputs]


def _judged(original: str, label: str, probs: float | None, target: str, *candidates: str) -> Record:
    """An original (P(Positive) from Explain = ``probs``; None: Explain did not run) with one plan."""
    plan = EditPlan(target_label=target, segment="text",
                    candidates=[Candidate(segments={"text": c}, sample_index=i) for i, c in enumerate(candidates)])
    record_probs = {} if probs is None else {"Negative": 1 - probs, "Positive": probs}
    return Record(index=0, segments={"text": original}, label=label, probs=record_probs, plans=[plan])


def _label_reasons(records: list[Record]) -> list[tuple[bool, str]]:
    return [(c.checks[-1].passed, c.checks[-1].reason) for r in records for p in r.plans for c in p.candidates]


CALIBRATION = [
    _judged("neg, misread", "Negative", 0.6, "Positive", "pos 0.80", "pos 0.85"),  # the only Negative: misread
    _judged("pos 0.7", "Positive", 0.7, "Negative", "neg 0.6"),
    _judged("pos 0.95", "Positive", 0.95, "Negative", "neg 0.55"),
    _judged("pos, misread", "Positive", 0.3, "Negative", "neg 0.7"),  # left out of the Positive quantile
    _judged("pos, unexplained", "Positive", None, "Negative", "neg 0.7"),  # no probs: left out too
]
FIRST = TableClassifier("first", {"pos 0.80": 0.8, "pos 0.85": 0.85, "neg 0.6": 0.4, "neg 0.55": 0.45, "neg 0.7": 0.3})


def test_label_quantile_calibrates_on_correctly_read_originals_and_falls_back(caplog):
    records = [r.model_copy(deep=True) for r in CALIBRATION]
    plain = FilterStage(_config(checks=["label"]), FIRST, None)
    plain.load()
    assert all(passed for passed, _ in _label_reasons(plain.process(records)))  # threshold 0.5: all pass
    stage = FilterStage(_config(checks=["label"], label__quantile=0.5), FIRST, None)
    stage.load()
    with caplog.at_level("WARNING", logger="cda.filter.label"):
        out = _label_reasons(stage.process(records))
    # Positive: median of the correctly read Positive originals' P(Positive), 0.7 and 0.95 -> 0.825.
    assert out[0] == (False, ("P(Positive)=0.800 is below the calibrated threshold 0.825 (the 0.50-quantile of "
                              "P(Positive) over 2 original(s) labelled 'Positive' that the classifier reads correctly)"))
    assert out[1] == (True, "")
    # Negative: its only original is misread, so the threshold stays 0.5 and says so in the log.
    assert [passed for passed, _ in out[2:]] == [True, True, True, True]
    assert "none of the 5 original(s) is labelled 'Negative' and read correctly by the classifier" in caplog.text
    assert "1 of 5 have no probabilities" in caplog.text
    # The quantile never lowers the threshold.
    high = FilterStage(_config(checks=["label"], label__quantile=0.5, label__threshold=0.9), FIRST, None)
    high.load()
    assert _label_reasons(high.process(records))[1] == (False, "P(Positive)=0.850 is below the threshold 0.900")


def test_label_second_opinion_both_must_pass(monkeypatch, tmp_path):
    from cda.cache import Cache

    second = TableClassifier("second-fake", {"a": 0.9, "b": 0.3, "c": 0.8, "d": 0.5})
    built = []

    def factory(config, cache, train_records):
        built.append((config.seed, config.task.labels, cache, train_records))
        return second

    monkeypatch.setattr(LabelCheck, "second_classifier_factory", factory)
    first = TableClassifier("first", {"a": 0.9, "b": 0.8, "c": 0.2, "d": 0.7})
    record = _judged("neg", "Negative", 0.1, "Positive", "a", "b", "c", "d")
    train, cache = [record], Cache(tmp_path)
    config = _config(checks=["label"], label__second_opinion={}, label__threshold=0.2)
    stage = FilterStage(config, first, None, train_records=train, cache=cache)
    assert built == []  # built in load(), not before
    stage.load()
    stage.load()  # once only
    assert built == [(17, ["Negative", "Positive"], cache, train)]  # the task classifier's recipe with seed 17
    cands = stage.process([record])[0].plans[0].candidates
    assert [c.accepted for c in cands] == [True, False, False, False]
    assert [c.label_prob for c in cands] == pytest.approx([0.9, 0.8, 0.2, 0.7])  # the task classifier's P
    reasons = [c.checks[-1].reason for c in cands]
    assert reasons[0] == "second classifier second-fake: P(Positive)=0.900"
    assert reasons[1] == "second classifier second-fake prefers 'Negative' (0.700) over the target 'Positive' (0.300)"
    assert reasons[2] == ("the classifier prefers 'Negative' (0.800) over the target 'Positive' (0.200); "
                          "second classifier second-fake: P(Positive)=0.800")
    assert reasons[3] == "second classifier second-fake: the target 'Positive' ties with 'Negative' at 0.500"
    assert second.calls == [["a", "b", "c", "d"]]  # no quantile: the originals are not needed


def test_label_second_opinion_calibrates_on_its_own_reading_of_the_originals(monkeypatch):
    # Explain's probs (the task classifier's) put the Positive threshold at 0.7; the second
    # classifier reads the Positive original at 0.95, so its own threshold is 0.95.
    second = TableClassifier("second-fake", {"neg": 0.1, "pos": 0.95, "a": 0.97, "b": 0.9, "c": 0.1})
    monkeypatch.setattr(LabelCheck, "second_classifier_factory", lambda config, cache, train: second)
    first = TableClassifier("first", {"a": 0.9, "b": 0.9, "c": 0.1})
    records = [_judged("neg", "Negative", 0.1, "Positive", "a", "b"), _judged("pos", "Positive", 0.7, "Negative", "c")]
    stage = FilterStage(_config(checks=["label"], label__quantile=0.5, label__second_opinion={"seed": 5}),
                        first, None, train_records=records)
    stage.load()
    cands = stage.process(records)[0].plans[0].candidates
    assert second.calls == [["neg", "pos", "a", "b", "c"]]  # one call: distinct originals, then the candidates
    assert cands[0].accepted and not cands[1].accepted
    assert cands[1].checks[-1].reason == (
        "second classifier second-fake: P(Positive)=0.900 is below the calibrated threshold 0.950 (the 0.50-quantile "
        "of P(Positive) over 1 original(s) labelled 'Positive' that second classifier second-fake reads correctly)")


def test_label_second_opinion_refuses_what_it_cannot_train(monkeypatch):
    monkeypatch.setattr(LabelCheck, "second_classifier_factory", lambda *a: pytest.fail("must not train"))
    same_seed = FilterStage(_config(checks=["label"], label__second_opinion={"seed": 0}), FakeClassifier(), None,
                            train_records=[_record("x")])
    with pytest.raises(SecondOpinionError, match="seed 0 is the run's seed"):
        same_seed.load()
    no_data = FilterStage(_config(checks=["label"], label__second_opinion={}), FakeClassifier(), None)
    with pytest.raises(SecondOpinionError, match="needs the task classifier's training data"):
        no_data.load()


@pytest.mark.parametrize(("section", "problem"), [
    ({"quantile": 1.5}, "filter.checks.label.quantile: Input should be less than or equal to 1 (got 1.5)"),
    ({"quantile": -0.1}, "filter.checks.label.quantile: Input should be greater than or equal to 0 (got -0.1)"),
    ({"second_opinion": {"sed": 3}}, "filter.checks.label.second_opinion.sed: unknown key"),
    ({"second_opinion": {"seed": "3"}}, "filter.checks.label.second_opinion.seed: Input should be a valid integer"),
])
def test_label_settings_are_validated(section, problem):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"path": "x"}, "task": SENTIMENT, "filter": {"checks": {"label": section}}})
    assert problem in str(info.value).splitlines()[1]
    defaults = _config().filter.checks["label"]
    assert (defaults.threshold, defaults.quantile, defaults.second_opinion) == (0.5, None, None)
    assert _config(label__second_opinion={}).filter.checks["label"].second_opinion.seed == 17


# --- fluency ----------------------------------------------------------------------------------


def test_fluency_checks_score_each_original_once():
    lm = CountingLM()
    items = [("one two", "one three"), ("one two", "one two three four five six seven"), ("a b c", "a b d")]
    checks = fluency_checks(lm, items, factor=3.0)
    assert lm.calls == [["one two", "a b c", "one three", "one two three four five six seven", "a b d"]]
    assert [c.passed for c in checks] == [True, False, True]
    assert checks[1].value == 70.0 and checks[1].reason == "perplexity 70.0 > 3 x the original 20.0 (= 60.0)"


def test_fluency_on_windows_judges_the_edit_not_the_whole_review():
    class GarbleLM:  # perplexity: 100 for a text holding "zzq", 10 otherwise
        name = "garble"

        def __init__(self):
            self.texts = []

        def perplexity(self, texts):
            self.texts += texts
            return [10.0 + 90.0 * ("zzq" in t) * (1 if len(t.split()) < 12 else 0.02) for t in texts]

    review = "The film was slow . " * 10 + "I liked the cast ."
    garbled = review.replace("liked", "zzq qqz")
    (whole,) = fluency_checks(GarbleLM(), [(review, garbled)], 3.0)
    lm = GarbleLM()
    (window,) = fluency_checks(lm, [(review, garbled)], 3.0, window=2)
    assert whole.passed and not window.passed  # diluted in 55 tokens, plain in 7
    assert lm.texts == [". I liked the cast", ". I zzq qqz the cast"]


def test_fluency_non_finite_perplexity_fails():
    class NanLM:
        name = "nan"

        def perplexity(self, texts):
            return [10.0, float("nan")]

    (check,) = fluency_checks(NanLM(), [("a", "b")], 3.0)
    assert not check.passed and check.reason == "perplexity is nan"


# --- selection --------------------------------------------------------------------------------


def _accepted(i: int, prob: float, distance: float) -> Candidate:
    return Candidate(segments={"text": str(i)}, sample_index=i, label_prob=prob, edit_distance=distance,
                     checks=[Check(name="label", passed=True)])


def test_selection_order():
    rejected = Candidate(segments={"text": "x"}, sample_index=0, label_prob=0.99, edit_distance=0.0,
                         checks=[Check(name="logic", passed=False)])
    plan = EditPlan(target_label="Positive", segment="text", candidates=[
        rejected, _accepted(1, 0.8, 0.3), _accepted(2, 0.9, 0.4), _accepted(3, 0.9, 0.2), _accepted(4, 0.9, 0.2),
    ])
    assert select_best(plan) == 3  # highest prob 0.9, then lowest distance 0.2, then lowest sample index
    assert plan.best is plan.candidates[3]
    plan.candidates[3].checks.append(Check(name="fluency", passed=False))
    assert select_best(plan) == 4
    plan.candidates = [rejected]
    assert select_best(plan) is None and plan.best is None


# --- the stage --------------------------------------------------------------------------------


def test_stage_end_to_end_with_fake_classifier():
    record = _record(
        "The plot was great and the acting was excellent.",  # 0: accepted, P=0.9
        None,  # 1: parse error -> no checks
        "The plot was great and the acting was excellent.",  # 2: duplicate of 0
        "The plot was bad and the acting was terrible.",  # 3: fails label
        "The story was great and the acting was excellent!",  # 4: fails logic (outside spans)
        "The plot was good and the acting was great.",  # 5: accepted, also P=0.9 but further
    )
    stage = FilterStage(_config(fluency__factor=None, logic__span_context=0), FakeClassifier(), None)
    stage.load()
    out = stage.process([record])
    stage.unload()
    cands = out[0].plans[0].candidates
    names = [[c.name for c in cand.checks] for cand in cands]
    assert names[0] == ["logic", "minimality", "words", "duplicate", "label"]
    assert names[1] == [] and cands[1].drop_reason == "parse"
    assert names[2] == ["logic", "minimality", "words", "duplicate"] and cands[2].drop_reason == "duplicate"
    assert cands[3].drop_reason == "label" and cands[3].label_prob == pytest.approx(0.1)
    assert names[4] == ["logic", "minimality", "words", "duplicate"] and cands[4].drop_reason == "logic"
    assert cands[4].label_prob is None and cands[4].edit_distance == pytest.approx(4 / 10)
    assert [c.accepted for c in cands] == [True, False, False, False, False, True]
    # both accepted have P=0.9: candidate 0 (2 edits) beats 5 (2 edits) on sample index
    assert cands[0].edit_distance == cands[5].edit_distance == pytest.approx(0.2)
    assert out[0].plans[0].selected == 0


def test_stage_runs_fluency_only_on_label_survivors_and_is_idempotent():
    record = _record("The plot was great and the acting was excellent.", "The plot was bad and the acting was awful.")
    lm = CountingLM()
    stage = FilterStage(_config(fluency__factor=2.0), FakeClassifier(), lm)
    stage.load()
    stage.process([record])
    first = [c.model_copy(deep=True) for c in record.plans[0].candidates]
    stage.process([record])
    cands = record.plans[0].candidates
    assert lm.calls[0] == [ORIGINAL, "The plot was great and the acting was excellent."]
    assert [c.name for c in cands[0].checks] == ["logic", "minimality", "words", "duplicate", "label", "fluency"]
    assert cands[0].perplexity == 90.0  # 9 words and cands[1].perplexity is None
    assert [c.checks for c in cands] == [c.checks for c in first]  # a second pass does not stack checks


def test_stage_respects_configured_checks_and_skips_fluency_without_a_model():
    record = _record("The plot was great and the acting was excellent.", "Great!")
    stage = FilterStage(_config(checks=["minimality", "fluency"], minimality__max_edit_distance=0.5), FakeClassifier(), None)
    assert stage.checks == ["minimality"]
    stage.load()
    stage.process([record])
    cands = record.plans[0].candidates
    assert [c.name for c in cands[0].checks] == ["minimality"] and cands[0].accepted
    assert cands[1].drop_reason == "minimality" and cands[0].label_prob is None
    assert record.plans[0].selected == 0


def test_stage_load_rejects_a_classifier_without_the_task_labels():
    stage = FilterStage(_config(), FakeClassifier(("neg", "pos")), None)
    with pytest.raises(LabelMismatchError, match=r"lacks task label\(s\) \['Negative', 'Positive'\]"):
        stage.load()


def test_config_needs_at_least_one_check():
    with pytest.raises(ConfigError, match="filter.checks"):
        _config(checks=[])
    with pytest.raises(ConfigError, match="filter.checks"):
        config_from_dict({"data": {"path": "x"}, "task": SENTIMENT, "filter": {"checks": []}})


def test_words_check_fails_invented_and_foreign_words_only_where_added():
    from cda.filter.words import WordsCheck

    check = WordsCheck(WordsCheck.Settings(name="words", min_zipf=2.0))
    assert not check.check("The film was dull.", "The film was ithorrible.").passed
    assert not check.check("The film was dull.", "The film was bellissimo.").passed
    assert check.check("The film was dull.", "The film was superb.").passed
    # Rare words the original already had are not the edit's doing.
    assert check.check("Schlockmeister Zqx was dull.", "Schlockmeister Zqx was superb.").passed


def test_part_of_speech_check_keeps_each_blank_the_kind_of_word_it_was():
    from cda.filter.checks import CheckItem
    from cda.filter.part_of_speech import PartOfSpeechCheck

    check = PartOfSpeechCheck.create(_config(checks=["part_of_speech"]))
    text = "Weber was especially good, and I enjoyed his work in this film."

    def run(*values: str) -> Check:
        spans = [_span(text, "good"), _span(text, "enjoyed")]
        raw = "\n".join(f"[BLANK{k}]: {v}" for k, v in enumerate(values, start=1))
        edited = text.replace("good", values[0]).replace("enjoyed", values[1])
        plan = EditPlan(target_label="Negative", segment="text", spans=spans)
        return check.run([CheckItem(Record(index=0, segments={"text": text}, label="Positive"), plan,
                                    Candidate(segments={"text": edited}, raw=raw))])[0]  # fmt: skip

    assert run("bad", "hated").passed
    assert run("really bad", "hated").passed  # the last content word decides
    assert run("bad", "and").reason == "'enjoyed' (VERB) became 'and' (no content word)"
    assert not run("mermaid", "hated").passed  # an adjective's blank filled with a noun
    det = "It is an excellent film."
    plan = EditPlan(target_label="Negative", segment="text", spans=[_span(det, "an excellent")])
    for value, passed in (("a terrible", True), ("terrible", False)):
        fill = Candidate(segments={"text": det.replace("an excellent", value)}, raw=f"[BLANK1]: {value}")
        assert check.run([CheckItem(Record(index=0, segments={"text": det}, label="Positive"), plan, fill)])[0].passed is passed
    # A candidate that is not a fill of the plan's blanks (a rewrite) is not judged here.
    plan = EditPlan(target_label="Negative", segment="text", spans=[_span(text, "good")])
    rewrite = Candidate(segments={"text": "Weber was bad."}, raw="Weber was bad.")
    assert check.run([CheckItem(Record(index=0, segments={"text": text}, label="Positive"), plan, rewrite)])[0].passed


def test_sentences_check_fails_a_counterfactual_with_a_sentence_of_the_old_label():
    text = "The plot was dull. The acting was bad. I saw it twice."
    record = _record(
        "The plot was great. The acting was excellent. I saw it twice.",  # 0: every sentence Positive or neutral
        "The plot was great. The acting was excellent. Still bad.",  # 1: passes label, a sentence stays Negative
        text=text,
    )
    config = _config(checks=["label", "sentences"], sentences__min_prob=0.5)
    stage = FilterStage(config, FakeClassifier(), None)
    stage.load()
    stage.process([record])
    first, second = record.plans[0].candidates
    assert [c.name for c in first.checks] == ["label", "sentences"] and first.accepted
    assert first.measures["weakest_sentence_prob"] == pytest.approx(0.5)  # "I saw it twice." is neutral
    assert second.checks[0].passed and second.drop_reason == "sentences"
    assert second.checks[1].reason == "the sentence 'Still bad.' reads P(Positive)=0.100, below 0.500"
    # min_prob 0 measures without dropping.
    record = _record("The plot was great. The acting was excellent. Still bad.", text=text)
    stage = FilterStage(_config(checks=["label", "sentences"], sentences__min_prob=0.0), FakeClassifier(), None)
    stage.process([record])
    assert record.plans[0].candidates[0].accepted
    assert record.plans[0].candidates[0].measures["weakest_sentence_prob"] == pytest.approx(0.1)


def test_sentences_check_reads_a_hypothesis_against_its_premise():
    from cda.filter.sentences import weakest_sentences

    class Seen:
        labels, name = ["entailment", "neutral", "contradiction"], "seen"

        def __init__(self) -> None:
            self.inputs: list[dict[str, str]] = []

        def predict_proba(self, inputs):
            self.inputs += inputs
            return [{"entailment": 0.1, "neutral": 0.1, "contradiction": 0.8} for _ in inputs]

    clf = Seen()
    segments = {"premise": "A man sleeps. He snores.", "hypothesis": "A man is awake."}
    assert weakest_sentences(clf, [(segments, ["hypothesis"], "contradiction")]) == [(0.8, "A man is awake.")]
    assert clf.inputs == [segments]  # the premise is not split: only the edited segment is
    clf.inputs = []
    again = {"premise": "A man sleeps. He snores.", "hypothesis": "A man is awake. He sits."}
    assert weakest_sentences(clf, [(segments, ["hypothesis"], "contradiction"), (again, ["hypothesis"], "entailment")]) \
        == [(0.8, "A man is awake."), (0.1, "A man is awake.")]
    assert clf.inputs == [segments, {**again, "hypothesis": "He sits."}]  # a sentence read once for both
