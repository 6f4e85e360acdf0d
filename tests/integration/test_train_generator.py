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


def _train_rewrite_and_answer(tmp_path, settings: dict, prompt: str, segment: str, max_new_tokens: int):
    """Train a 2-step rewrite adapter with ``settings`` (data, task, edit, generator) and sample two
    answers to ``prompt`` through transformers + peft: ``(the adapter's record, the parsed answers)``."""
    from cda.config import config_from_dict
    from cda.generate.model_files import prepare_generator_model
    from cda.generate.parsing import parse_rewrite

    (tmp_path / "models").symlink_to(prepare_generator_model(MODEL_CACHE).parent)
    config = config_from_dict({"seed": 0, "cache_dir": str(tmp_path), **settings})
    adapter = load_or_train_generator(config, Cache(tmp_path))
    gen = TransformersGenerator(None, cache_root=MODEL_CACHE, batch_size=2, lora_path=adapter)
    out = gen.generate([prompt], SamplingSettings(n=2, temperature=0.7, max_new_tokens=max_new_tokens, seed=0))[0]
    assert out.error is None and len(out.texts) == 2
    return adapter_meta(adapter), [parse_rewrite(t, segment) for t in out.texts]


def test_a_rewrite_generator_learns_whole_hypotheses_and_answers_with_one(tmp_path):
    """``edit.strategy: {name: rewrite, anchor: false}``: the adapter learns to rewrite the hypothesis
    (trained_rewrite.v1) and answers with a whole sentence the rewrite parser reads."""
    from tests.integration.conftest import ROOT

    meta, parsed = _train_rewrite_and_answer(tmp_path, {
        "data": {"path": str(ROOT / "demo/snli_sample.tsv")},
        "task": {"name": "nli", "segments": {"premise": "sentence1", "hypothesis": "sentence2"}, "label_column": "gold_label",
                 "labels": ["entailment", "neutral", "contradiction"], "editable": ["hypothesis"]},
        "edit": {"strategy": {"name": "rewrite", "anchor": False}},
        "generator": {"train": {"pairs": {"path": str(ROOT / "demo/snli_revised_hypothesis.tsv"),
                                          "originals": str(ROOT / "demo/snli_sample.tsv"), "per_original": 2, "limit": 4},
                                "unlikelihood": 0.5, "max_steps": 2, "batch_size": 2}},
    }, "Premise: A man is riding a red motorcycle.\nHypothesis (entailment -> contradiction): A man rides a motorcycle.",
        "hypothesis", max_new_tokens=24)  # fmt: skip
    assert meta["template"] == "trained_rewrite.v1" and meta["answers"] == "rewrite" and meta["max_blanks"] is None
    assert meta["examples"]["likely"] > 0 and meta["examples"]["unlikely"] > 0
    print("\ntrained rewrite (2 steps) answers:", parsed)
    assert any(text for text, _ in parsed)


def test_a_sentence_rewrite_generator_learns_from_the_sentences_of_review_pairs(tmp_path):
    """``edit.strategy: {name: rewrite, unit: sentence}``: the examples are the aligned sentences of
    the review pairs (rewritten and left alone), and the adapter answers a one-sentence prompt."""
    from tests.integration.conftest import ROOT

    meta, parsed = _train_rewrite_and_answer(tmp_path, {
        "data": {"path": str(ROOT / "demo/imdb_sample.tsv")},
        "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"],
                 "replace": {"<br />": " "}},
        "edit": {"strategy": {"name": "rewrite", "unit": "sentence", "anchor": False}},
        "generator": {"train": {"pairs": {"path": str(ROOT / "demo/imdb_pairs.tsv"), "key": "batch_id", "limit": 2},
                                "unlikelihood": 0, "max_steps": 2, "batch_size": 2}},
    }, "Text (Positive -> Negative): The acting was superb and the music lovely.", "text", max_new_tokens=32)  # fmt: skip
    assert meta["template"] == "trained_rewrite.v1" and meta["answers"] == "sentences"
    assert meta["examples"]["likely"] > 4  # several sentences from each of 2 pairs, both directions
    print("\ntrained sentence rewrite (2 steps) answers:", parsed)
    assert any(text for text, _ in parsed)
