"""`cda build` on real FEVEROUS-S claims with the small models: a MiniLM verifier (briefly trained),
spaCy entities, SmolLM2 writing claims through the transformers backend."""

import json

import datasets
import pytest
from typer.testing import CliRunner

from cda.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()

SMALL = ["classifier.train.limit=48", "classifier.train.max_steps=6", "classifier.max_length=128", "generate.n=2",
         "generate.max_new_tokens=32", "generate.backend=transformers", "filter.checks.fluency=null"]


def test_feverous_build_swaps_entities_through_the_evidence_and_writes_claims(root, shared_data, tmp_path):
    out = tmp_path / "out"
    data = str(shared_data / "feverous-s/dev.json")
    result = runner.invoke(app, ["build", "--config", str(root / "configs/feverous.yaml"), "--limit", "4",
                                 "--output", str(out), f"data.path={data}", f"classifier.train.path={data}", *SMALL])
    assert result.exit_code == 0, result.output
    audit = datasets.load_from_disk(str(out / "audit"))
    rows = audit.to_list()
    by_rule = [r for r in rows if r["raw"] == "" and r["error"] is None]
    written = [r for r in rows if r["edited_segment"] == "claim,evidence"]
    assert by_rule and written  # evidence edits by rule, claims by the LLM
    for row in by_rule:  # (claim, E'): the claim kept, each swapped sentence changed, the others byte-identical
        edits = json.loads(row["edits"])
        original = row["segments"]["evidence"].split("\n")
        edited = row["parsed"].split("\n")
        touched = {e["sentence"] for e in edits}
        assert row["target_label"] == "REFUTES" and row["source_label"] == "SUPPORTS"
        assert len(edited) == len(original)
        assert all((a != b) == (k in touched) for k, (a, b) in enumerate(zip(original, edited)))
        for e in edits:
            assert original[e["sentence"]][e["start"] : e["end"]] == e["old"] and e["new"] in edited[e["sentence"]]
    for row in written:
        checks = {c["name"]: c for c in json.loads(row["checks"])}
        if row["parsed"] is not None:
            assert {"constraints", "claim_copy", "sentences_kept", "no_dangling"} <= set(checks)
        assert row["target_label"] == "SUPPORTS" and "Summarize one of these facts about" in row["prompt"]
    ds = datasets.load_from_disk(str(out / "dataset"))
    assert ds.features["evidence"] == datasets.List(datasets.Value("string"))  # still a list of sentences
    summary = json.loads((out / "summary.json").read_text())
    assert summary["originals"] == 4 and len(ds) == 4 + summary["counterfactuals"]
    for row in ds.filter(lambda r: r["cda_is_counterfactual"]):
        assert row["label"] == row["cda_target_label"] and json.loads(row["cda_edits"])
