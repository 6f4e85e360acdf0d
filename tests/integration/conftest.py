"""Fixtures shared by the integration tests: a generator adapter trained for two steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cda.cache import Cache
from cda.config import Config, config_from_dict

ROOT = Path(__file__).resolve().parents[2]
MODEL_CACHE = Path(os.environ.get("CDA_TEST_MODEL_CACHE", Path.home() / ".cache" / "cda" / "models"))


def trained_config(cache_dir: Path, **train) -> Config:
    """A sentiment config whose generator trains on 3 demo pairs for 2 steps of 2 examples."""
    return config_from_dict(
        {
            "seed": 0,
            "cache_dir": str(cache_dir),
            "data": {"path": str(ROOT / "demo/imdb_sample.tsv")},
            "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment",
                     "labels": ["Negative", "Positive"], "replace": {"<br />": " "}},
            "generator": {"train": {"pairs": {"path": str(ROOT / "demo/imdb_pairs.tsv"), "key": "batch_id", "limit": 3},
                                    "max_steps": 2, "batch_size": 2, **train}},
        }
    )  # fmt: skip


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory) -> Path:
    """A real LoRA adapter of SmolLM2 (2 training steps), in a cache folder of its own."""
    from cda.generate.model_files import prepare_generator_model
    from cda.generate.trained.train import load_or_train_generator

    cache = tmp_path_factory.mktemp("generator-cache")
    (cache / "models").symlink_to(prepare_generator_model(MODEL_CACHE).parent)  # the converted SmolLM2, once
    config = trained_config(cache)
    return load_or_train_generator(config, Cache(config.resolved_cache_dir()))
