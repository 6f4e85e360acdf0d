"""Export: the augmented dataset, the audit split, the files written, the Hub push, the card."""

from __future__ import annotations

import json

import datasets
import pytest

from cda.data import DataError
import yaml

from cda.config import Config, config_from_dict
from cda.data import to_records
from cda.export.card import render_card
from cda.export.dataset import ExportError, audit_features, provenance_features, to_audit_dataset, to_dataset
from cda.export.writer import HubPushError, HubTokenError, push_to_hub, write_outputs
from cda.pipeline import Summary
from cda.records import Candidate, Check, EditPlan, Record, Span

TOKEN = "hf_SuperSecretToken0123456789"
ROWS = {
    "Text": ["A dull<br />film.", "A great cast.", "Bad, bad acting."],
    "Sentiment": ["Negative", "Positive", "Negative"],
    "batch_id": [11, 12, 13],
}
SENTIMENT = {
    "segments": {"text": "Text"},
    "label_column": "Sentiment",
    "labels": ["Negative", "Positive"],
    "replace": {"<br />": " "},
}
PASSED = [Check(name="logic", passed=True), Check(name="label", passed=True, value=0.9)]


def _config(tmp_path, task=SENTIMENT, **export) -> Config:
    return config_from_dict({
        "data": {"path": "unused.tsv"},
        "task": task,
        "export": {"output_dir": str(tmp_path / "out"), **export},
    })


def _candidate(text: str | None, i: int, checks=(), error=None, segment="text", others=None, **values) -> Candidate:
    segments = None if text is None else {**(others or {}), segment: text}
    return Candidate(segments=segments, raw=text or "garbage", prompt=f"prompt {i}", generator="fake:generator",
                     prompt_template="infill", sample_index=i, error=error, checks=list(checks), **values)


def _sentiment_records(table: datasets.Dataset, config: Config) -> list[Record]:
    """Row 2 and row 0 get a counterfactual (given out of order); row 1 gets none."""
    records = to_records(table, config.task)
    r0, r1, r2 = records
    r0.spans = [Span(segment="text", start=2, end=6, score=0.8)]
    r0.plans = [EditPlan(target_label="Positive", segment="text", spans=r0.spans, masked="A [BLANK1] film.",
                         candidates=[
                             _candidate("A terrible film.", 0, [Check(name="label", passed=False, value=0.1)],
                                        label_prob=0.1),
                             _candidate(None, 1, error="no [BLANK1] answer in the output"),
                             _candidate("A fine film.", 2, PASSED, label_prob=0.9, edit_distance=0.25),
                         ], selected=2)]
    r1.plans = [EditPlan(target_label="Negative", segment="text", masked="A [BLANK1] cast.",
                         candidates=[_candidate("A great cast.", 0, [Check(name="logic", passed=False,
                                                                           reason="identical to the original")])])]
    r2.plans = [EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=0, end=3)],
                         candidates=[_candidate("Good, bad acting.", 0, PASSED, label_prob=0.7, edit_distance=0.2,
                                                perplexity=42.0)], selected=0)]
    return [r2, r0, r1]


def _table(label_feature=None) -> datasets.Dataset:
    features = datasets.Features({
        "Text": datasets.Value("string"),
        "Sentiment": label_feature or datasets.Value("string"),
        "batch_id": datasets.Value("int64"),
    })
    rows = dict(ROWS)
    if isinstance(label_feature, datasets.ClassLabel):
        rows["Sentiment"] = [label_feature.str2int(v) for v in ROWS["Sentiment"]]
    return datasets.Dataset.from_dict(rows, features=features)


def _user_part(ds: datasets.Dataset) -> datasets.Dataset:
    return ds.remove_columns([c for c in ds.column_names if c.startswith("cda_")])


# --- to_dataset -------------------------------------------------------------------------------


def test_originals_come_first_unchanged(tmp_path):
    config = _config(tmp_path)
    table = _table()
    ds = to_dataset(table, _sentiment_records(table, config), config)
    assert len(ds) == 5
    originals = ds.select(range(3))
    assert _user_part(originals).to_list() == table.to_list()  # "<br />" kept: replace only fed the models
    assert _user_part(ds).features == table.features
    assert {k: ds.features[k] for k in provenance_features(config)} == dict(provenance_features(config))
    assert list(originals["cda_is_counterfactual"]) == [False] * 3
    assert list(originals["cda_original_index"]) == [0, 1, 2]
    assert list(originals["cda_source_label"]) == ROWS["Sentiment"]
    assert list(originals["cda_target_label"]) == [""] * 3
    assert list(originals["cda_checks"]) == ["[]"] * 3
    assert list(originals["cda_label_prob"]) == [None] * 3


def test_counterfactual_rows_and_provenance(tmp_path):
    config = _config(tmp_path)
    table = _table()
    ds = to_dataset(table, _sentiment_records(table, config), config)
    cf = ds.select(range(3, 5)).to_list()
    assert [r["cda_original_index"] for r in cf] == [0, 2]  # ordered by original index
    first, second = cf
    assert first["Text"] == "A fine film." and first["Sentiment"] == "Positive" and first["batch_id"] == 11
    assert second["Text"] == "Good, bad acting." and second["batch_id"] == 13
    assert first["cda_is_counterfactual"] and first["cda_source_label"] == "Negative"
    assert first["cda_target_label"] == "Positive" and first["cda_edited_segment"] == "text"
    # Span offsets are into the cleaned text ("<br />" -> " "): "dull" at 2..6
    assert json.loads(first["cda_rationale_spans"]) == [
        {"segment": "text", "start": 2, "end": 6, "text": "dull", "score": 0.8}
    ]
    assert [c["name"] for c in json.loads(first["cda_checks"])] == ["logic", "label"]
    assert first["cda_generator"] == "fake:generator" and first["cda_prompt_template"] == "infill"
    assert first["cda_label_prob"] == 0.9 and first["cda_edit_distance"] == 0.25 and first["cda_perplexity"] is None
    assert second["cda_perplexity"] == 42.0


def test_classlabel_column_stays_a_classlabel(tmp_path):
    config = _config(tmp_path)
    label = datasets.ClassLabel(names=["Negative", "Positive"])
    table = _table(label)
    ds = to_dataset(table, _sentiment_records(table, config), config)
    assert ds.features["Sentiment"] == label
    assert list(ds["Sentiment"]) == [0, 1, 0, 1, 1]
    assert _user_part(ds.select(range(3))).to_list() == table.to_list()


def test_integer_label_column_uses_task_label_positions(tmp_path):
    config = _config(tmp_path)
    table = datasets.Dataset.from_dict({**ROWS, "Sentiment": [0, 1, 0]})
    ds = to_dataset(table, _sentiment_records(table, config), config)
    assert list(ds["Sentiment"]) == [0, 1, 0, 1, 1]


def test_two_segments_copy_the_original_unedited_segment(tmp_path):
    task = {"segments": {"premise": "sentence1", "hypothesis": "sentence2"}, "label_column": "gold_label",
            "labels": ["entailment", "neutral", "contradiction"], "replace": {"<br />": " "}}
    config = _config(tmp_path, task=task)
    table = datasets.Dataset.from_dict({
        "sentence1": ["A man rides<br />a red motorcycle."], "sentence2": ["A man rides a bike."],
        "gold_label": ["entailment"], "pair_id": ["p1"],
    })
    (record,) = to_records(table, config.task)
    premise = record.segments["premise"]  # cleaned: "A man rides a red motorcycle."
    plans = []
    for target, text in [("neutral", "A man rides a new bike."), ("contradiction", "A man pushes a bike.")]:
        cand = _candidate(text, 0, PASSED, segment="hypothesis", others={"premise": premise}, label_prob=0.8)
        plans.append(EditPlan(target_label=target, segment="hypothesis", candidates=[cand], selected=0))
    record.plans = plans
    cf = to_dataset(table, [record], config).select(range(1, 3)).to_list()
    assert [r["gold_label"] for r in cf] == ["neutral", "contradiction"]
    assert [r["sentence2"] for r in cf] == ["A man rides a new bike.", "A man pushes a bike."]
    assert all(r["sentence1"] == "A man rides<br />a red motorcycle." for r in cf)
    assert all(r["pair_id"] == "p1" and r["cda_edited_segment"] == "hypothesis" for r in cf)


def test_no_counterfactuals_gives_the_originals_with_provenance(tmp_path):
    config = _config(tmp_path)
    ds = to_dataset(_table(), [], config)
    assert len(ds) == 3 and ds.column_names == list(ROWS) + list(provenance_features(config))


def test_input_with_cda_columns_or_non_text_segments_is_rejected(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(ExportError, match=r"already has provenance column\(s\) \['cda_is_counterfactual'\]"):
        to_dataset(_table().add_column("cda_is_counterfactual", [False] * 3), [], config)
    numbers = datasets.Dataset.from_dict({"Text": [1, 2], "Sentiment": ["Negative", "Positive"]})
    with pytest.raises(DataError, match=r"Text column 'Text' \(task.segments.text\) holds int64 values; expected text"):
        to_dataset(numbers, [], config)


# --- to_audit_dataset -------------------------------------------------------------------------


def test_audit_has_one_row_per_candidate(tmp_path):
    config = _config(tmp_path)
    table = _table()
    records = _sentiment_records(table, config)
    audit = to_audit_dataset(records, config)
    assert len(audit) == sum(len(p.candidates) for r in records for p in r.plans) == 5
    assert audit.features == audit_features(config)
    rows = audit.to_list()
    assert [r["original_index"] for r in rows] == [0, 0, 0, 1, 2]
    assert rows[0]["segments"] == {"text": "A dull film."} and rows[0]["masked"] == "A [BLANK1] film."
    assert rows[1]["parsed"] is None and rows[1]["error"] == "no [BLANK1] answer in the output"
    assert rows[1]["raw"] == "garbage" and rows[1]["drop_reason"] == "parse"
    assert rows[0]["drop_reason"] == "label" and rows[3]["drop_reason"] == "logic"
    assert json.loads(rows[3]["checks"])[0]["reason"] == "identical to the original"
    assert [r["selected"] for r in rows] == [False, False, True, False, True]
    assert [r["accepted"] for r in rows] == [False, False, True, False, True]
    assert rows[2]["parsed"] == "A fine film." and rows[2]["drop_reason"] is None and rows[2]["prompt"] == "prompt 2"


def test_audit_without_candidates_is_empty_with_columns(tmp_path):
    config = _config(tmp_path)
    records = [Record(index=0, segments={"text": "x"}, label="Negative")]
    audit = to_audit_dataset(records, config)
    assert len(audit) == 0 and audit.features == audit_features(config)
    assert {"original_index", "raw", "prompt", "parsed", "checks", "accepted", "drop_reason"} <= set(audit.column_names)


# --- writer and card --------------------------------------------------------------------------


def _outputs(tmp_path, **export):
    config = _config(tmp_path, **export)
    table = _table(datasets.ClassLabel(names=["Negative", "Positive"]))
    records = _sentiment_records(table, config)
    summary = Summary(rows=3, generator="fake:generator", classifier="fake-classifier", seconds={"filter": 0.5})
    summary.update_from(records)
    return config, to_dataset(table, records, config), to_audit_dataset(records, config), summary.as_dict()


def test_write_outputs_all_formats_load_back(tmp_path):
    config, ds, audit, summary = _outputs(tmp_path, formats=["disk", "parquet", "jsonl"])
    out = write_outputs(ds, audit, summary, config)
    assert out == tmp_path / "out"
    loaded = datasets.load_from_disk(str(out / "dataset"))
    assert loaded.features == ds.features and loaded.to_list() == ds.to_list()
    assert datasets.load_from_disk(str(out / "audit")).to_list() == audit.to_list()
    for name, n in [("dataset", len(ds)), ("audit", len(audit))]:
        assert len(datasets.load_dataset("parquet", data_files=str(out / f"{name}.parquet"), split="train")) == n
        lines = (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == n
    first_cf = json.loads((out / "dataset.jsonl").read_text(encoding="utf-8").splitlines()[3])
    assert first_cf["Text"] == "A fine film." and first_cf["cda_is_counterfactual"] is True
    assert json.loads((out / "summary.json").read_text()) == summary
    assert config_from_dict(yaml.safe_load((out / "config.yaml").read_text())) == config
    assert (out / "README.md").read_text().startswith("---\n")


def test_write_outputs_respects_formats_audit_flag_and_output_dir(tmp_path):
    config, ds, audit, summary = _outputs(tmp_path, formats=["parquet"], audit=False)
    out = write_outputs(ds, audit, summary, config, output_dir=tmp_path / "elsewhere")
    assert out == tmp_path / "elsewhere"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.yaml", "dataset.parquet", "summary.json"]


def test_card_states_models_counts_drops_columns_and_loading(tmp_path):
    config, ds, audit, summary = _outputs(tmp_path, formats=["disk", "parquet"])
    card = render_card(config, summary, ds, audit)
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "other" and "counterfactual-augmentation" in front["tags"]
    assert front["task_categories"] == ["text-classification"]
    assert "`fake-classifier`" in card and "`fake:generator`" in card
    assert "| rows in this dataset | 5 |" in card and "| originals | 3 |" in card
    assert "| candidates generated | 5 |" in card and "| candidates accepted | 2 |" in card
    assert "| counterfactuals (one per plan at most) | 2 |" in card
    assert "| label | 1 |" in card and "| parse | 1 |" in card and "| logic | 1 |" in card
    assert "`batch_id` | copied from the original row" in card and "`cda_checks`" in card
    assert f'datasets.load_from_disk("{tmp_path.as_posix()}/out/dataset")' in card
    assert "dataset.parquet" in card and "threshold: 0.5" in card


def test_the_hub_token_is_never_written(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    config, ds, audit, summary = _outputs(tmp_path, formats=["disk", "parquet", "jsonl"],
                                          push_to_hub={"repo_id": "me/cad", "token_env": "HF_TOKEN"})
    out = write_outputs(ds, audit, summary, config)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 8
    assert not [p for p in files if TOKEN.encode() in p.read_bytes()]
    assert "me/cad" in (out / "README.md").read_text()


def test_push_needs_the_token_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("MY_TOKEN", raising=False)
    config, ds, _, _ = _outputs(tmp_path, push_to_hub={"repo_id": "me/cad", "token_env": "MY_TOKEN"})
    with pytest.raises(HubTokenError, match="environment variable MY_TOKEN"):
        push_to_hub(ds, config.export.push_to_hub)


def test_push_passes_token_private_and_scrubs_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    config, ds, audit, _ = _outputs(tmp_path, push_to_hub={"repo_id": "me/cad"})
    calls = []

    def fake_push(self, repo_id, **kwargs):
        calls.append((repo_id, kwargs))

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", fake_push)
    url = push_to_hub(ds, config.export.push_to_hub, audit=audit)
    assert url == "https://huggingface.co/datasets/me/cad"
    assert calls == [("me/cad", {"private": True, "token": TOKEN}),
                     ("me/cad", {"config_name": "audit", "private": True, "token": TOKEN})]

    def failing_push(self, repo_id, **kwargs):
        raise PermissionError(f"401 for token {kwargs['token']}")

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", failing_push)
    with pytest.raises(HubPushError) as info:
        push_to_hub(ds, config.export.push_to_hub)
    assert TOKEN not in str(info.value) and "401 for token ***" in str(info.value)
