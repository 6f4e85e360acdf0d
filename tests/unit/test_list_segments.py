"""Segments that are lists of sentences (evidence): read, addressed by sentence, edited, written back as lists."""

from __future__ import annotations

import json

import pytest

from cda.config import config_from_dict
from cda.data import DataError, load_table, to_records
from cda.export.writer import write_outputs
from cda.filter.logic import LogicCheck
from cda.pipeline import Components, build
from cda.records import Candidate, EditPlan, Span
from tests.fakes import FakeClassifier, FakeGenerator

ROWS = [
    {"claim": "The film is liked.", "evidence": ["The film opened in May.", "Critics found it dull and bad.", "It ran 90 minutes."],
     "verdict": "Negative"},
    {"claim": "The show is liked.", "evidence": ["Viewers loved it.", "It was great fun."], "verdict": "Positive"},
]  # fmt: skip


def _config(tmp_path, path):
    return config_from_dict({
        "data": {"path": str(path)},
        "task": {"segments": {"claim": "claim", "evidence": "evidence"}, "label_column": "verdict",
                 "labels": ["Negative", "Positive"], "editable": ["evidence"]},
        "generate": {"n": 2},
        "filter": {"checks": {"fluency": None, "words": None}},
        "cache_dir": str(tmp_path / "cache"),
        "export": {"output_dir": str(tmp_path / "out"), "formats": ["disk", "jsonl"]},
    })  # fmt: skip


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "claims.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def test_a_list_column_is_one_segment_addressed_by_sentence(tmp_path, data):
    config = _config(tmp_path, data)
    records = to_records(load_table(config.data), config.task)
    assert records[0].list_segments == ["evidence"]
    assert records[0].segments["evidence"] == "The film opened in May.\nCritics found it dull and bad.\nIt ran 90 minutes."
    start = records[0].segments["evidence"].index("dull")
    assert records[0].locate(Span(segment="evidence", start=start, end=start + 4)) == ("evidence", 1, 17, 21)
    assert records[0].locate(Span(segment="claim", start=4, end=8)) == ("claim", None, 4, 8)


def test_a_sentence_with_a_line_break_is_refused_with_its_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**ROWS[0], "evidence": ["One.", "Two\nlines."]}) + "\n", encoding="utf-8")
    config = _config(tmp_path, path)
    with pytest.raises(DataError, match=r"row 0: a sentence of list segment\(s\) \['evidence'\] holds a line break"):
        to_records(load_table(config.data), config.task)


def test_edited_evidence_is_written_back_as_a_list_with_only_its_sentence_changed(tmp_path, data):
    config = _config(tmp_path, data)
    result = build(config, components=Components(FakeClassifier(), FakeGenerator(["great", "wonderful"])))
    assert result.dataset.features["evidence"] == load_table(config.data).features["evidence"]  # still a list column
    counterfactual = next(row for row in result.dataset if row["cda_is_counterfactual"] and row["cda_original_index"] == 0)
    assert counterfactual["evidence"][0] == ROWS[0]["evidence"][0] and counterfactual["evidence"][2] == ROWS[0]["evidence"][2]
    assert counterfactual["evidence"][1] != ROWS[0]["evidence"][1] and len(counterfactual["evidence"]) == 3
    assert counterfactual["claim"] == ROWS[0]["claim"]
    spans = json.loads(counterfactual["cda_rationale_spans"])
    assert {s["sentence"] for s in spans} == {1}
    assert all(ROWS[0]["evidence"][1][s["start"] : s["end"]] == s["text"] for s in spans)
    out = write_outputs(result.dataset, result.audit, result.summary.as_dict(), config)
    lines = (out / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["evidence"] == ROWS[0]["evidence"]


def test_logic_refuses_an_edit_that_merges_or_splits_sentences(tmp_path, data):
    config = _config(tmp_path, data)
    record = to_records(load_table(config.data), config.task)[0]
    text = record.segments["evidence"]
    start = text.index("dull")
    plan = EditPlan(target_label="Positive", segment="evidence", spans=[Span(segment="evidence", start=start, end=start + 4)])
    merged = {**record.segments, "evidence": text.replace("May.\nCritics found it dull", "May. Critics found it fine")}
    check = LogicCheck.create(config, span_context=20)(record, plan, Candidate(segments=merged))
    assert "the list segment 'evidence' has 2 sentences instead of its 3" in check.reason


def test_a_plan_may_edit_several_segments_consistently(tmp_path, data):
    """A toy RACE-style strategy: swap an entity in the evidence and in the claim alike."""
    from cda.edit.strategies import EditStrategy
    from cda.registry import edit_strategies

    @edit_strategies.register("swap_film")
    class SwapFilm(EditStrategy):
        template = "rewrite.v1"

        def plans(self, record):
            spans = [Span(segment=name, start=m, end=m + 4) for name in ("evidence", "claim")
                     if (m := record.segments[name].find("film")) >= 0]  # fmt: skip
            target = next(label for label in self.config.task.labels if label != record.label)
            return [EditPlan(target_label=target, segment="evidence", also_edits=["claim"], spans=spans)]

        def parse(self, raw, record, plan):
            new = raw.split(":")[-1].strip()
            return {**record.segments, **{s: record.segments[s].replace("film", new) for s in plan.edited_segments}}, None

    try:
        config = _config(tmp_path, data).model_copy(deep=True)
        config = config_from_dict({**config.model_dump(), "edit": {**config.edit.model_dump(), "strategy": "swap_film"},
                                   "filter": {"checks": ["logic", "minimality", "duplicate"]}})  # fmt: skip
        result = build(config, components=Components(FakeClassifier(), FakeGenerator(["movie", "picture"])))
        row = next(r for r in result.dataset if r["cda_is_counterfactual"])
        assert row["claim"] == "The movie is liked." and row["evidence"][0] == "The movie opened in May."
        assert row["evidence"][1:] == ROWS[0]["evidence"][1:] and row["cda_edited_segment"] == "evidence,claim"
        spans = json.loads(row["cda_rationale_spans"])
        assert [(s["segment"], s.get("sentence")) for s in spans] == [("evidence", 0), ("claim", None)]
    finally:
        edit_strategies.unregister("swap_film")
