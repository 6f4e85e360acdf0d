"""The Ray executor on a local cluster: the same records and dataset as the local executor.

One local cluster (2 CPUs) for the module; the fakes travel to the actors pickled, the real
path loads the MiniLM classifier and a vLLM engine inside actors.
"""

from __future__ import annotations

import importlib.util

import datasets
import pytest

from cda.config import config_from_dict
from cda.pipeline import Components, build
from tests.fakes import FakeClassifier, FakeGenerator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install 'cda[ray]'"),
]

ROWS = {
    "Text": ["A dull film with bad acting.", "A great film, I loved it.", "The plot was boring and the end was awful.",
             "Wonderful music, a fun story.", "Not bad at all.", "The worst film I saw this year."],
    "Sentiment": ["Negative", "Positive", "Negative", "Positive", "Positive", "Negative"],
}  # fmt: skip


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _config(tmp_path, executor):
    return config_from_dict({
        "data": {"path": "unused.tsv"},
        "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "generate": {"n": 2},
        "filter": {"checks": {"fluency": None}},
        "cache_dir": str(tmp_path / "cache"),
        "executor": executor,
    })  # fmt: skip


def test_ray_build_on_fakes_matches_the_local_build(tmp_path, ray_cluster):
    table = datasets.Dataset.from_dict(ROWS)
    local = build(_config(tmp_path / "local", "local"), table, components=Components(FakeClassifier(), FakeGenerator()))
    on_ray = build(_config(tmp_path / "ray", {"name": "ray", "batch_size": 2, "replicas": {"explain": 2}}), table,
                   components=Components(FakeClassifier(), FakeGenerator()))  # fmt: skip
    assert [r.model_dump() for r in on_ray.records] == [r.model_dump() for r in local.records]
    assert on_ray.dataset.to_list() == local.dataset.to_list()
    assert on_ray.audit.to_list() == local.audit.to_list()
    assert on_ray.summary.counterfactuals == local.summary.counterfactuals > 0
    assert "ray" in on_ray.summary.seconds


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_ray_build_with_a_real_classifier_and_a_vllm_engine_actor(tmp_path, ray_cluster):
    """The classifier is trained once on the driver and loaded by the explain and filter actors;
    the generate actor owns a vLLM engine."""
    table = datasets.Dataset.from_dict(ROWS)
    config = config_from_dict({
        **_config(tmp_path, {"name": "ray", "batch_size": 3}).model_dump(),
        "classifier": {"max_length": 32, "train": {"max_steps": 2, "batch_size": 4}},
        "generate": {"n": 2, "max_new_tokens": 24, "backend": {"name": "vllm", "max_model_len": 512, "kv_cache_gb": 0.25}},
    })  # fmt: skip
    result = build(config, table)
    assert len(result.records) == len(ROWS["Text"]) and all(r.plans for r in result.records)
    candidates = [c for r in result.records for p in r.plans for c in p.candidates]
    assert candidates and all(c.generator == "vllm:SmolLM2-135M-Instruct.Q4_1" for c in candidates)
    assert sum(c.error is None for c in candidates) > 0  # the engine answered inside its actor
    assert len(result.dataset) == len(ROWS["Text"]) + result.summary.counterfactuals
