import pytest
import yaml

from cda.config import ConfigError, apply_overrides, config_from_dict, load_config

BASE = {
    "data": {"path": "demo/imdb_sample.tsv"},
    "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
}


def test_shipped_configs_load(root):
    for name in ["imdb.yaml", "snli.yaml"]:
        cfg = load_config(root / "configs" / name)
        assert cfg.threads == 1
    snli = load_config(root / "configs" / "snli.yaml")
    assert list(snli.task.segments) == ["premise", "hypothesis"]
    assert snli.task.editable == ["hypothesis"]


def test_overrides_are_typed_and_nested(root):
    cfg = load_config(root / "configs/imdb.yaml", ["generate.n=7", "data.path=x.tsv", "filter.checks.fluency=null",
                                                   "filter.checks.label.threshold=0.7", "generate.backend.max_model_len=512"])
    assert cfg.generate.n == 7 and cfg.data.path == "x.tsv" and "fluency" not in cfg.filter.checks
    assert cfg.filter.checks["label"].threshold == 0.7 and cfg.filter.checks["minimality"].max_edit_distance == 0.5
    assert cfg.generate.backend.name == "auto" and cfg.generate.backend.max_model_len == 512


def test_unknown_key_names_key_and_allowed_keys(root):
    with pytest.raises(ConfigError) as e:
        load_config(root / "configs/imdb.yaml", ["generate.temprature=0.5"])
    msg = str(e.value)
    assert "generate.temprature" in msg and "temperature" in msg and "top_p" in msg


def test_bad_value_names_allowed_values():
    with pytest.raises(ConfigError, match=r"explain\.method.*grad_x_input"):
        config_from_dict({**BASE, "explain": {"method": "lime"}})


def test_fewer_than_two_labels_is_an_error():
    bad = {**BASE, "task": {**BASE["task"], "labels": ["Positive"]}}
    with pytest.raises(ConfigError, match="at least 2 labels"):
        config_from_dict(bad)


def test_editable_and_targets_are_checked():
    with pytest.raises(ConfigError, match="editable"):
        config_from_dict({**BASE, "task": {**BASE["task"], "editable": ["premise"]}})
    with pytest.raises(ConfigError, match="not in task.labels"):
        config_from_dict({**BASE, "task": {**BASE["task"], "targets": {"Negative": ["Neutral"]}}})


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="Invalid YAML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["generate.n"])


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "c"))
    assert config_from_dict(BASE).resolved_cache_dir() == tmp_path / "c"
    assert config_from_dict({**BASE, "cache_dir": "/x"}).resolved_cache_dir().as_posix() == "/x"


def test_a_build_config_of_an_earlier_cda_still_loads(tmp_path):
    from cda.config import load_saved_config

    old = {**BASE, "generate": {"mode": "rewrite", "backend": "openai", "base_url": "http://h:1/v1", "max_model_len": 512},
           "explain": {"method": "integrated_gradients", "ig_steps": 8},
           "filter": {"checks": ["logic", "label", "fluency"], "label_threshold": 0.4, "fluency_factor": None}}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match="mode moved to edit.strategy"):
        load_config(path)  # a config a person edits must be the new shape
    cfg = load_saved_config(path)
    assert cfg.edit.strategy.name == "rewrite" and cfg.generate.backend.base_url == "http://h:1/v1"
    assert cfg.explain.method.steps == 8 and list(cfg.filter.checks) == ["logic", "label"]
    assert cfg.filter.checks["label"].threshold == 0.4
