"""Edit plans: span merging, masking, one plan per target label and editable segment."""

from __future__ import annotations

import pytest

from cda.config import EditConfig, TaskConfig, config_from_dict
from cda.edit.plans import fill_blanks, make_plans, mask_segment, merge_spans
from cda.edit.stage import EditStage
from cda.records import Record, Span

SENTIMENT = TaskConfig(name="sentiment", segments={"text": "Text"}, label_column="y", labels=["Negative", "Positive"])
NLI = TaskConfig(
    name="nli",
    segments={"premise": "s1", "hypothesis": "s2"},
    label_column="y",
    labels=["entailment", "neutral", "contradiction"],
)


def span(text: str, word: str, segment: str = "text", score: float = 1.0, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = text.index(word, start + 1)
    return Span(segment=segment, start=start, end=start + len(word), score=score)


def test_merge_spans_sorts_and_fills_text():
    text = "A dull plot and bad acting."
    merged = merge_spans(text, [span(text, "bad"), span(text, "dull")], gap=1)
    assert [(s.text, s.start) for s in merged] == [("dull", 2), ("bad", 16)]


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(0, ["dull", "boring"]), (1, ["dull", "boring"]), (2, ["dull, boring"]), (10, ["dull, boring"])],
)
def test_merge_spans_gap_of_punctuation_and_space(gap, expected):
    text = "A dull, boring film."
    merged = merge_spans(text, [span(text, "dull", score=0.2), span(text, "boring", score=0.7)], gap=gap)
    assert [s.text for s in merged] == expected
    if len(merged) == 1:
        assert merged[0].score == 0.7  # a merged span keeps the strongest saliency


def test_merge_spans_does_not_bridge_words():
    text = "dull a boring"
    merged = merge_spans(text, [span(text, "dull"), span(text, "boring")], gap=5)
    assert [s.text for s in merged] == ["dull", "boring"]


def test_merge_spans_adjacent_and_overlapping():
    text = "unbelievably bad"
    spans = [Span(segment="text", start=0, end=6), Span(segment="text", start=6, end=12), Span(segment="text", start=4, end=8)]
    assert [s.text for s in merge_spans(text, spans, gap=0)] == ["unbelievably"]


def test_merge_spans_clips_and_drops_bad_offsets():
    text = "short"
    spans = [Span(segment="text", start=3, end=99), Span(segment="text", start=7, end=9), Span(segment="text", start=2, end=2)]
    assert [(s.start, s.end, s.text) for s in merge_spans(text, spans, gap=0)] == [(3, 5, "rt")]


def test_mask_and_fill_round_trip():
    text = "The acting was bad and the plot dull."
    spans = merge_spans(text, [span(text, "dull"), span(text, "bad")], gap=1)
    masked = mask_segment(text, spans, "[BLANK{i}]")
    assert masked == "The acting was [BLANK1] and the plot [BLANK2]."
    assert fill_blanks(text, spans, ["bad", "dull"]) == text
    assert fill_blanks(text, spans, ["superb", "gripping"]) == "The acting was superb and the plot gripping."
    assert mask_segment(text, spans, "<mask{i}>") == "The acting was <mask1> and the plot <mask2>."


def test_fill_blanks_rejects_wrong_count():
    with pytest.raises(ValueError, match="2 spans but 1 replacements"):
        fill_blanks("a b", [Span(segment="t", start=0, end=1), Span(segment="t", start=2, end=3)], ["x"])


def test_binary_task_one_plan_toward_other_label():
    text = "A dull film."
    record = Record(index=0, segments={"text": text}, label="Negative", spans=[span(text, "dull")])
    plans = make_plans(record, SENTIMENT, EditConfig())
    assert len(plans) == 1
    plan = plans[0]
    assert (plan.target_label, plan.segment, plan.masked) == ("Positive", "text", "A [BLANK1] film.")
    assert [s.text for s in plan.spans] == ["dull"]
    assert plan.candidates == []


def test_nli_plans_per_target_only_editable_segment():
    premise, hyp = "A dog runs in the park.", "An animal sleeps indoors."
    record = Record(
        index=3,
        segments={"premise": premise, "hypothesis": hyp},
        label="contradiction",
        # A premise span is ignored: only the hypothesis (the default editable segment) is edited.
        spans=[span(premise, "runs", "premise"), span(hyp, "indoors", "hypothesis"), span(hyp, "sleeps", "hypothesis")],
    )
    plans = make_plans(record, NLI, EditConfig(merge_gap=0))
    assert [p.target_label for p in plans] == ["entailment", "neutral"]
    assert {p.segment for p in plans} == {"hypothesis"}
    assert plans[0].masked == "An animal [BLANK1] [BLANK2]."


def test_nli_merge_gap_joins_words_separated_by_a_space():
    hyp = "An animal sleeps indoors."
    record = Record(
        index=0,
        segments={"premise": "p", "hypothesis": hyp},
        label="neutral",
        spans=[span(hyp, "indoors", "hypothesis"), span(hyp, "sleeps", "hypothesis")],
    )
    plan = make_plans(record, NLI, EditConfig(merge_gap=1))[0]
    # One space is a gap of 1: the two words merge into one blank.
    assert plan.masked == "An animal [BLANK1]."
    assert [s.text for s in plan.spans] == ["sleeps indoors"]


def test_several_editable_segments_with_spans_get_one_plan_each():
    task = NLI.model_copy(update={"editable": ["premise", "hypothesis"]})
    premise, hyp = "A dog runs.", "An animal sleeps."
    record = Record(
        index=0,
        segments={"premise": premise, "hypothesis": hyp},
        label="entailment",
        spans=[span(hyp, "sleeps", "hypothesis"), span(premise, "runs", "premise")],
    )
    plans = make_plans(record, task, EditConfig())
    assert [(p.target_label, p.segment) for p in plans] == [
        ("neutral", "premise"), ("neutral", "hypothesis"),
        ("contradiction", "premise"), ("contradiction", "hypothesis"),
    ]  # fmt: skip
    assert plans[0].masked == "A dog [BLANK1]."


def test_editable_segment_without_spans_gets_no_plan_when_another_has_spans():
    task = NLI.model_copy(update={"editable": ["premise", "hypothesis"]})
    hyp = "An animal sleeps."
    record = Record(index=0, segments={"premise": "A dog runs.", "hypothesis": hyp}, label="neutral",
                    spans=[span(hyp, "sleeps", "hypothesis")])  # fmt: skip
    assert {p.segment for p in make_plans(record, task, EditConfig())} == {"hypothesis"}


def test_record_without_spans_still_gets_plans():
    record = Record(index=0, segments={"premise": "A dog runs.", "hypothesis": "An animal moves."}, label="neutral")
    plans = make_plans(record, NLI, EditConfig())
    assert [p.target_label for p in plans] == ["entailment", "contradiction"]
    assert all(p.spans == [] and p.masked == "An animal moves." and p.segment == "hypothesis" for p in plans)


def test_explicit_target_map():
    task = NLI.model_copy(update={"targets": {"entailment": ["contradiction"]}})
    record = Record(index=0, segments={"premise": "p", "hypothesis": "h h"}, label="entailment")
    assert [p.target_label for p in make_plans(record, task, EditConfig())] == ["contradiction"]
    record.label = "neutral"  # not in the map: no targets
    assert make_plans(record, task, EditConfig()) == []


def test_edit_stage_replaces_plans_and_is_idempotent():
    cfg = config_from_dict(
        {"data": {"path": "x.tsv"}, "task": SENTIMENT.model_dump(), "edit": {"blank": "<mask{i}>", "merge_gap": 0}}
    )
    text = "Bad acting, dull plot."
    records = [
        Record(index=0, segments={"text": text}, label="Negative", spans=[span(text, "dull"), span(text, "Bad")]),
        Record(index=1, segments={"text": "Fine."}, label="Positive"),
    ]
    stage = EditStage(cfg)
    assert stage.name == "edit"
    stage.load()
    out = stage.process(records)
    out = stage.process(out)
    stage.unload()
    assert [len(r.plans) for r in out] == [1, 1]
    assert out[0].plans[0].masked == "<mask1> acting, <mask2> plot."
    assert out[1].plans[0].spans == [] and out[1].plans[0].target_label == "Negative"


def test_blank_format_is_validated():
    for bad in ["[BLANK]", "[{i}]", "{i}{i}"]:
        with pytest.raises(ValueError, match="must contain"):
            EditConfig(blank=bad)


# --------------------------------------------------------------- edit.select: what to augment
# index: gold label, P(gold label) from Explain (None: no probs)
CONFIDENCE = [("Negative", 0.9), ("Positive", 0.3), ("Negative", 0.2), ("Positive", None), ("Negative", 0.6),
              ("Positive", 0.8)]  # fmt: skip


def _planned(select: dict, seed: int = 0) -> list[int]:
    """Indices of the records that get plans under ``edit.select``."""
    cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": SENTIMENT.model_dump(), "seed": seed,
                            "edit": {"select": select}})  # fmt: skip
    records = [Record(index=i, segments={"text": "Fine."}, label=label, probs={} if p is None else {label: p})
               for i, (label, p) in enumerate(CONFIDENCE)]  # fmt: skip
    return [r.index for r in EditStage(cfg).process(records) if r.plans]


def test_select_default_plans_for_every_record():
    assert _planned({}) == [0, 1, 2, 3, 4, 5]
    assert _planned({"order": "least_confident"}) == [0, 1, 2, 3, 4, 5]  # an order without caps keeps all


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ({"order": "all", "limit": 2}, [0, 1]),  # input order
        ({"order": "least_confident", "limit": 3}, [1, 2, 4]),  # 0.2, 0.3, 0.6
        ({"order": "most_confident", "limit": 3}, [0, 4, 5]),  # 0.9, 0.8, 0.6
        ({"order": "least_confident", "limit": 6}, [0, 1, 2, 3, 4, 5]),
        ({"order": "most_confident", "limit": 5}, [0, 1, 2, 4, 5]),  # no probs ranks last either way
        ({"order": "least_confident", "per_label": 1}, [1, 2]),  # per gold label: 0.2 Negative, 0.3 Positive
        ({"order": "most_confident", "per_label": 2}, [0, 1, 4, 5]),
        ({"order": "all", "per_label": 1}, [0, 1]),
        # rank: 2 (0.2), 1 (0.3), 4 (0.6), 5 (0.8), 0 (0.9: a third Negative, cut by per_label), 3; limit: first 3
        ({"order": "least_confident", "per_label": 2, "limit": 3}, [1, 2, 4]),
        ({"order": "most_confident", "per_label": 1, "limit": 1}, [0]),
        ({"order": "all", "limit": 100}, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_select_orders_and_caps(select, expected):
    assert _planned(select) == expected


def test_select_per_label_then_limit_keeps_rank_order():
    from cda.config import SelectConfig
    from cda.edit.selection import select_records

    records = [Record(index=i, segments={"text": "x"}, label=label, probs={label: p})
               for i, (label, p) in enumerate([("Negative", 0.1), ("Negative", 0.2), ("Negative", 0.3),
                                               ("Positive", 0.4), ("Positive", 0.5)])]  # fmt: skip
    chosen = select_records(records, SelectConfig(order="least_confident", per_label=2, limit=3))
    # per_label drops the third Negative (0.3) before limit counts; limit then cuts the second Positive.
    assert [r.index for r in chosen] == [0, 1, 3]


def test_select_random_is_seeded_and_respects_caps():
    first = _planned({"order": "random", "limit": 3}, seed=7)
    assert len(first) == 3 and first == _planned({"order": "random", "limit": 3}, seed=7)
    draws = {tuple(_planned({"order": "random", "limit": 3}, seed=s)) for s in range(10)}
    assert len(draws) > 1  # the seed matters
    for seed in range(5):
        chosen = _planned({"order": "random", "per_label": 1}, seed=seed)
        assert sorted(CONFIDENCE[i][0] for i in chosen) == ["Negative", "Positive"]


def test_select_logs_how_many_and_why(caplog):
    with caplog.at_level("INFO", logger="cda.edit.selection"):
        _planned({"order": "least_confident", "per_label": 1})
    assert "order least_confident, per_label 1, limit None): 2 of 6 records get edit plans" in caplog.text
    assert "1 of 6 records have no classifier probability" in caplog.text


@pytest.mark.parametrize(
    ("select", "message"),
    [
        ({"order": "confident"}, "edit.select.order: Input should be 'all', 'least_confident'"),
        ({"limit": 0}, "edit.select.limit: Input should be greater than or equal to 1"),
        ({"per_label": -1}, "edit.select.per_label: Input should be greater than or equal to 1"),
        ({"size": 3}, "edit.select.size: unknown key. Allowed keys here: order, limit, per_label"),
    ],
)
def test_select_nonsense_is_a_one_line_config_error(select, message):
    from cda.config import ConfigError

    with pytest.raises(ConfigError) as err:
        config_from_dict({"data": {"path": "x.tsv"}, "task": SENTIMENT.model_dump(), "edit": {"select": select}})
    problems = str(err.value).splitlines()[1:]
    assert len(problems) == 1 and problems[0].strip().startswith(message)
