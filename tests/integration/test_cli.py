"""`cda build` through Typer's CliRunner on the real models (MiniLM + LoRA, SmolLM2, spaCy)."""

import json

import datasets
import pytest
from typer.testing import CliRunner

from cda.cli import app
from cda.config import DataConfig
from cda.data import load_table

pytestmark = pytest.mark.integration
runner = CliRunner()

# The transformers backend: vLLM is tested end to end in test_vllm.py (against a real server too).
SMALL = ["classifier.train.max_steps=40", "generate.n=2", "generate.max_new_tokens=40", "threads=1",
         "generate.backend=transformers"]


def test_build_writes_a_loadable_dataset_with_provenance(root, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", "--config", str(root / "configs/imdb.yaml"), "--limit", "3",
                                 "--output", str(out), f"data.path={root / 'demo/imdb_sample.tsv'}", *SMALL])
    assert result.exit_code == 0, result.output
    ds = datasets.load_from_disk(str(out / "dataset"))
    summary = json.loads((out / "summary.json").read_text())
    audit = datasets.load_from_disk(str(out / "audit"))
    # A review with words people changed gets the lexicon's one candidate; the others (and, in round 2,
    # what the lexicon did not flip) n=2 LLM samples plus, where people's replacements fit, one of those.
    by_rule = [row for row in audit if row["generator"] == "rule:lexicon"]
    retrieved = sum(row["generator"] == "retrieved:demonstrations" for row in audit)
    sampled = len(audit) - len(by_rule) - retrieved
    assert summary["originals"] == 3 and summary["rounds"]["1"]["plans"] == 3 and sampled % 2 == 0
    assert len({row["original_index"] for row in by_rule}) == len(by_rule) and all(row["round"] == 1 for row in by_rule)
    assert len(ds) == 3 + summary["counterfactuals"]
    assert ds[:3]["Text"] == load_table(DataConfig(path=str(root / "demo/imdb_sample.tsv")))[:3]["Text"]  # unchanged
    assert ds.column_names[:3] == ["Sentiment", "Text", "batch_id"]
    assert {"cda_is_counterfactual", "cda_original_index", "cda_generator", "cda_checks"} <= set(ds.column_names)
    assert len(audit) == summary["candidates"]
    assert all(row["drop_reason"] or row["accepted"] for row in audit)
    assert summary["generator"] and summary["generator"] in (out / "README.md").read_text()

    # A rerun reuses the cached classifier, attributions and generations: same dataset.
    again = tmp_path / "again"
    result = runner.invoke(app, ["build", "--config", str(root / "configs/imdb.yaml"), "--limit", "3",
                                 "--output", str(again), f"data.path={root / 'demo/imdb_sample.tsv'}", *SMALL])
    assert result.exit_code == 0, result.output
    assert datasets.load_from_disk(str(again / "dataset")).to_list() == ds.to_list()


def test_bad_inputs_exit_2_with_a_clear_message(root, tmp_path):
    cfg = str(root / "configs/imdb.yaml")
    cases = [
        (["data.path=/nope.tsv"], "Data file not found"),
        (["task.label_column=Label"], "Missing column"),
        (["generate.temprature=1"], "Allowed keys here"),
        (["task.labels=[Positive]"], "at least 2 labels"),
        (["generate.template=" + str(tmp_path / "missing.jinja")], "template"),
    ]
    for overrides, expected in cases:
        result = runner.invoke(app, ["build", "--config", cfg, "--dry-run", *overrides])
        assert result.exit_code == 2, (overrides, result.output)
        assert expected.lower() in result.output.lower(), (overrides, result.output)


def test_dry_run_reports_what_would_run(root):
    result = runner.invoke(app, ["build", "--config", str(root / "configs/snli.yaml"), "--dry-run",
                                 f"data.path={root / 'demo/snli_sample.tsv'}"])
    assert result.exit_code == 0, result.output
    assert "150 rows" in result.output and "300 edit plans" in result.output
