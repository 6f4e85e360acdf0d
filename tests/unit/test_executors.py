"""Executor settings and errors (the Ray runs themselves are in tests/integration/test_ray_executor.py)."""

from __future__ import annotations

import sys

import pytest

from cda.config import ConfigError, config_from_dict
from cda.executors.ray_data import RayError, require_ray

BASE = {"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"}, "label_column": "y", "labels": ["a", "b"]}}


def test_local_is_the_default_and_ray_takes_its_settings():
    assert config_from_dict(BASE).executor.name == "local"
    ray = config_from_dict({**BASE, "executor": {"name": "ray", "replicas": {"explain": 2}, "num_gpus": {"generate": 1}}})
    assert ray.executor.replicas == {"explain": 2} and ray.executor.num_gpus == {"generate": 1.0}


@pytest.mark.parametrize(("executor", "message"), [
    ({"name": "ray", "replicas": {"explian": 2}}, "unknown stage(s) ['explian']; the stages are ['explain', 'edit', 'generate', 'filter']"),
    ({"name": "ray", "replicas": {"explain": 0}}, "stage(s) ['explain'] need a positive value"),
    ({"name": "ray", "adress": "auto"}, "executor.adress: unknown key for executor 'ray'; allowed: name, address"),
    ("dask", "executor: unknown executor 'dask'; registered: local, ray"),
])  # fmt: skip
def test_bad_executor_settings_are_one_clear_error(executor, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, "executor": executor})
    assert message in str(err.value)


def test_missing_ray_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayError, match=r"pip install 'cda\[ray\]'"):
        require_ray()
