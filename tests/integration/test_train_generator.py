"""A real LoRA training of SmolLM2 on a handful of human pairs, and generation with the adapter
through transformers + peft (the vLLM engine and server are in test_vllm_lora.py)."""

from __future__ import annotations

import json
import math

import pytest

from cda.cache import Cache
from cda.generate.parsing import parse_infill
from cda.generate.trained.train import LOSS_FILE, META_FILE, adapter_meta, load_or_train_generator
from cda.generate.transformers_backend import TransformersGenerator
from cda.protocols import SamplingSettings

from tests.integration.conftest import MODEL_CACHE, trained_config

pytestmark = pytest.mark.integration


def test_training_writes_a_peft_adapter_with_its_record(trained_adapter):
    adapter = trained_adapter
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    meta = adapter_meta(trained_adapter)
    assert meta["template"] == "trained_infill.v2" and meta["steps"] == 2  # from pairs only: blanks show their words
    assert meta["examples"]["from_pairs"] > 0 and meta["examples"]["unlikely"] > 0
    losses = [json.loads(line) for line in (adapter / LOSS_FILE).read_text().splitlines()]
    assert [row["step"] for row in losses] == [1, 2]
    assert all(math.isfinite(row["nll"]) and math.isfinite(row["ul"]) for row in losses)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and config["r"] == 16
    assert (adapter / META_FILE).is_file()


def test_the_same_settings_load_the_adapter_from_the_cache(trained_adapter):
    adapter = trained_adapter
    cache_dir = adapter.parents[1]
    config = trained_config(cache_dir)
    assert load_or_train_generator(config, Cache(cache_dir)) == adapter


def test_transformers_backend_generates_with_the_adapter_merged(trained_adapter):
    adapter = trained_adapter
    gen = TransformersGenerator(None, cache_root=MODEL_CACHE, batch_size=2, lora_path=adapter)
    assert gen.name == f"transformers:SmolLM2-135M-Instruct.Q4_1+lora:{adapter.name}"
    prompt = "Text (Positive): The acting was [BLANK1: dull] and the plot was [BLANK2: slow] from start"
    out = gen.generate([prompt], SamplingSettings(n=2, temperature=0.7, max_new_tokens=16, seed=0))[0]
    assert out.error is None and len(out.texts) == 2
    print("\ntrained (2 steps) answers:", out.texts, [parse_infill(t, 2) for t in out.texts])


def test_a_missing_adapter_is_a_clear_error(tmp_path):
    from cda.generate.model_files import ModelFileError

    gen = TransformersGenerator(None, cache_root=MODEL_CACHE, lora_path=tmp_path)
    with pytest.raises(ModelFileError, match="not a LoRA adapter folder"):
        gen.load()
