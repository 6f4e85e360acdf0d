"""`cda evaluate` and the robustness experiment with the real small models (MiniLM + LoRA,
SmolLM2 perplexity), on tiny data and a couple of training steps."""

from __future__ import annotations

import json

import pytest

from cda.evaluate import evaluate, load_build_output
from cda.evaluate.judges import judge_from_path
from cda.experiment import experiment_config_from_dict, run_robustness
from tests.build_outputs import write_input, write_reference, write_tiny_build

pytestmark = pytest.mark.integration


@pytest.fixture
def build_dir(tmp_path):
    data = write_input(tmp_path / "input.tsv")
    return write_tiny_build(tmp_path / "build", data_path=str(data))


def test_evaluate_with_retrained_task_judge_independent_judge_and_smollm2(build_dir, tmp_path):
    result = evaluate(build_dir, reference=write_reference(tmp_path / "ref.tsv"), judge="independent")
    m = result.metrics
    task, independent = m["judges"]["task"]["name"], m["judges"]["independent"]["name"]
    assert task.startswith("lora-minilm@") and independent.startswith("lora-minilm@") and task != independent
    assert m["cda"]["overall"]["flip_task"]["n"] == 2 and m["human"]["overall"]["flip_independent"]["n"] == 3
    ppl = m["cda"]["overall"]["perplexity"]
    assert ppl["n"] == 2 and ppl["mean"] > 1
    assert m["language_model"].startswith("transformers:SmolLM2")
    assert (result.output_dir / "report.html").is_file()
    # A second evaluation loads both judges and every perplexity from the cache.
    again = evaluate(build_dir, reference=tmp_path / "ref.tsv", output_dir=tmp_path / "again")
    assert again.metrics["judges"] == m["judges"]
    assert again.metrics["cda"]["overall"]["perplexity"] == ppl


def test_a_saved_classifier_folder_is_a_judge(build_dir, tmp_path):
    from cda.explain.classifier import train_classifier

    build = load_build_output(build_dir)
    clf = train_classifier(build.originals(), build.config, seed=5)
    folder = clf.save(tmp_path / "judge")
    judge = judge_from_path(folder, build.config)
    assert judge.labels == ["Negative", "Positive"]
    result = evaluate(build_dir, judge=str(folder), fluency=False)
    assert result.metrics["judges"]["independent"]["name"] == clf.name


def test_robustness_experiment_on_a_tiny_configuration(build_dir, tmp_path):
    dev = tmp_path / "dev.tsv"
    dev.write_text("Sentiment\tText\tbatch_id\nNegative\tA boring film .\t1\nPositive\tA wonderful film .\t1\n"
                   "Positive\tGreat fun .\t2\nNegative\tDull , no fun .\t2\n")  # fmt: skip
    config = experiment_config_from_dict({
        "build_dir": str(build_dir),
        "reference": {"path": str(write_reference(tmp_path / "ref.tsv"))},
        "training_sets": ["original", "original+cda", "original+human"],
        "eval_sets": [
            {"name": "dev-original", "path": str(dev), "pair_key": "batch_id", "take": "first"},
            {"name": "dev-human-cf", "path": str(dev), "pair_key": "batch_id", "take": "rest"},
        ],
        "quick": {"seeds": [0], "max_steps": 2, "batch_size": 4, "max_length": 32},
        "output_dir": str(tmp_path / "exp"),
    })  # fmt: skip
    result = run_robustness(config)
    assert [r.training_set for r in result.runs] == ["original", "original+cda", "original+human"]
    assert [r.train_rows for r in result.runs] == [3, 5, 6]
    for run in result.runs:
        assert run.classifier.startswith("lora-minilm@") and set(run.accuracy) == {"dev-original", "dev-human-cf"}
        assert all(0.0 <= a <= 1.0 for a in run.accuracy.values())
    saved = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert saved["table"]["original+cda"]["dev-human-cf"]["n"] == 1
    assert (tmp_path / "exp" / "accuracy.png").is_file() and (tmp_path / "exp" / "report.html").is_file()
