"""Search rounds, retrieved demonstrations and the change prior on the real models (MiniLM, SmolLM2, spaCy)."""

import json

import datasets
import pytest
from typer.testing import CliRunner

from cda.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()

PAIRS = "{path: demo/imdb_pairs.tsv, key: batch_id, limit: 60}"


def _build(root, out, monkeypatch, limit: int, *overrides: str) -> None:
    """``cda build`` of configs/imdb.yaml on the first ``limit`` demo reviews, small and on transformers."""
    monkeypatch.chdir(root)
    result = runner.invoke(app, [
        "build", "--config", "configs/imdb.yaml", "--limit", str(limit), "--output", str(out),
        "classifier.train.max_steps=40", "generate.n=2", "generate.max_new_tokens=24", "generate.backend=transformers",
        "filter.checks.fluency=null", *overrides,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_rounds_with_retrieved_demonstrations_and_the_prior(root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _build(root, out, monkeypatch, 4, "edit.strategy={name: infill, max_words: 3}", "generate.template=infill.v2",
           f"generate.demonstrations={{pairs: {PAIRS}, k: 3, substitute: true}}",
           f"explain.prior={{pairs: {PAIRS}, weight: 2}}", "search.rounds=2", "search.add_spans=1")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    audit = datasets.load_from_disk(str(out / "audit"))
    assert summary["rounds"]["1"]["plans"] == 4
    generated = [row for row in audit if row["generator"] != "retrieved:demonstrations" and row["prompt"]]
    # Every prompt shows people's edits (the pool of 60 pairs has edits in both directions).
    assert generated and all("People made changes like these:" in row["prompt"] for row in generated)
    retrieved = [row for row in audit if row["generator"] == "retrieved:demonstrations"]
    for row in retrieved:  # the pool's replacements go into the blanks; nothing else changes
        assert row["parsed"] != row["segments"]["text"] and row["error"] is None
    # A round 2 plans again exactly the originals round 1 left without a counterfactual, with a mask at least as wide.
    first = {(r["original_index"], r["target_label"]) for r in audit if r["round"] == 1}
    solved = {(r["original_index"], r["target_label"]) for r in audit if r["round"] == 1 and r["selected"]}
    second = {(r["original_index"], r["target_label"]) for r in audit if r["round"] == 2}
    assert second == first - solved
    assert summary["rounds"].get("2", {"plans": 0})["plans"] == len(second)
    spans = {(r["original_index"], r["round"]): len(json.loads(r["spans"])) for r in audit}
    assert all(spans[(i, 2)] >= spans[(i, 1)] for i, _ in second)
    ds = datasets.load_from_disk(str(out / "dataset"))
    assert set(ds.filter(lambda r: r["cda_is_counterfactual"])["cda_round"]) <= {1, 2}


def test_the_lexicon_edits_by_rule_and_the_generator_fills_what_it_left(root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _build(root, out, monkeypatch, 6, f"edit.strategy={{name: lexicon, max_words: 3, pairs: {PAIRS}}}", "search.rounds=2")
    audit = datasets.load_from_disk(str(out / "audit"))
    by_rule = [row for row in audit if row["generator"] == "rule:lexicon"]
    assert by_rule, "the demo reviews hold words people changed in the 60 pairs"
    for row in by_rule:  # made without a prompt, one candidate per plan, every site replaced
        edits = json.loads(row["edits"])
        assert row["round"] == 1 and row["prompt"] == "" and edits and all(e["type"] == "lexicon" for e in edits)
        assert all(e["old"] not in ("", e["new"]) for e in edits)
    # What the lexicon could not flip (or had no site for) went to the generator.
    lexicon_targets = {(r["original_index"], r["target_label"]) for r in by_rule}
    rejected = lexicon_targets - {(r["original_index"], r["target_label"]) for r in by_rule if r["selected"]}
    prompted = {(r["original_index"], r["target_label"]) for r in audit if r["prompt"]}
    assert rejected <= prompted
    assert all(r["round"] == 2 for r in audit if r["prompt"] and (r["original_index"], r["target_label"]) in lexicon_targets)
