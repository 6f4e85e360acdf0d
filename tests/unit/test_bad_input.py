"""Bad input never costs a run: every case ends before any model loads, with exit code 2 and
one line that names the input, the place and what is allowed (no traceback).

Data, config, template, output and model cases run `cda build --dry-run` (the same checks as a
real run); server cases run a real `cda build` against a stub OpenAI-compatible server on
127.0.0.1 (tests/stub_openai_server.py, stopped by PID), or the Python API with a fake
classifier when the fault shows only once generation starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cda.cli import app

ROOT = Path(__file__).resolve().parents[2]
IMDB = str(ROOT / "configs/imdb.yaml")
runner = CliRunner()
HEADER = "Sentiment\tText\n"
GOOD = "Negative\tA dull film.\nPositive\tA fine film.\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def build(tmp_path: Path, *args: str, config: str = IMDB, dry_run: bool = True):
    out = [] if any(a.startswith("--output") for a in args) else ["--output", str(tmp_path / "out")]
    result = runner.invoke(app, ["build", "--config", config, *out, *args, *(["--dry-run"] if dry_run else [])])
    return result


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert errors, result.output
    assert "Traceback" not in result.output, result.output
    return errors[0]


# (name, files {name: content}, CLI args with {tmp} for tmp_path, expected exit, message fragment)
CASES = [
    # ---- data
    ("non-UTF-8 bytes", {"x.tsv": HEADER.encode() + b"Negative\tA dull film.\nPositive\tCaf\xe9 scene\n"},
     ["data.path={tmp}/x.tsv"], 2, "x.tsv:3: not UTF-8 text (byte 0xe9)"),
    ("row with an extra field", {"x.tsv": HEADER + "Negative\tA dull film.\textra\n"},
     ["data.path={tmp}/x.tsv"], 2, "x.tsv:2: 3 fields, but the header has 2"),
    ("row with a missing field", {"x.tsv": HEADER + GOOD + "Negative\n"},
     ["data.path={tmp}/x.tsv"], 2, "x.tsv:4: 1 fields, but the header has 2"),
    ("stray quote swallows rows", {"x.tsv": HEADER + 'Negative\t"A dull film.\nPositive\tA fine film.\nNegative\tBad.\n'},
     ["data.path={tmp}/x.tsv"], 2, "x.tsv:2: a quoted cell runs over 2 more line(s) that look like rows"),
    ("broken JSONL line", {"x.jsonl": '{"Text": "A dull film.", "Sentiment": "Negative"}\n{"Text": "A fine\n'},
     ["data.path={tmp}/x.jsonl"], 2, "x.jsonl:2: not valid JSON"),
    ("JSONL line that is a list", {"x.jsonl": '["A dull film.", "Negative"]\n'},
     ["data.path={tmp}/x.jsonl"], 2, "x.jsonl:1: a JSON list, expected an object per line"),
    ("format override that does not match", {"x.tsv": HEADER + GOOD},
     ["data.path={tmp}/x.tsv", "data.format=jsonl"], 2, "x.tsv:1: not valid JSON"),
    ("missing data file", {}, ["data.path={tmp}/nope.tsv"], 2, "Data file not found"),
    ("unknown file extension", {"x.xlsx": "x"}, ["data.path={tmp}/x.xlsx"], 2, "Cannot tell the format"),
    ("header but no rows", {"x.tsv": HEADER}, ["data.path={tmp}/x.tsv"], 2, "has a header but no rows"),
    ("empty file", {"x.tsv": ""}, ["data.path={tmp}/x.tsv"], 2, "is empty: expected a header line and rows"),
    ("missing label column", {"x.tsv": "Label\tText\nNegative\tA dull film.\n"},
     ["data.path={tmp}/x.tsv"], 2, "Missing column(s) task.label_column='Sentiment'"),
    ("label outside task.labels", {"x.tsv": HEADER + "Neutral\tA film.\n"},
     ["data.path={tmp}/x.tsv"], 2, "row 0: label 'Neutral' is not in task.labels"),
    ("empty text", {"x.tsv": HEADER + "Negative\t \n"}, ["data.path={tmp}/x.tsv"], 2, "empty text in segment(s) ['text']"),
    ("column colliding with cda_*", {"x.tsv": "Sentiment\tText\tcda_source_label\n" + "Negative\tA dull film.\tx\n"},
     ["data.path={tmp}/x.tsv"], 2, "['cda_source_label'] collide with the cda_* provenance columns"),
    ("text column of number lists", {"x.jsonl": '{"Text": [1, 2], "Sentiment": "Negative"}\n'},
     ["data.path={tmp}/x.jsonl"], 2, "Text column 'Text' (task.segments.text) holds List values (lists or records); "
     "expected text or a list of sentences"),
    ("label column of floats", {"x.jsonl": '{"Text": "A dull film.", "Sentiment": 0.5}\n'},
     ["data.path={tmp}/x.jsonl"], 2, "Label column 'Sentiment' (task.label_column) holds float64 values"),
    ("dedupe_on an unknown column", {"x.tsv": HEADER + GOOD},
     ["data.path={tmp}/x.tsv", "data.dedupe_on=batch"], 2, "data.dedupe_on column 'batch' not in"),
    # ---- config
    ("unknown config key", {}, ["generate.temprature=1"], 2, "generate.temprature: unknown key. Allowed keys here"),
    ("boolean for a number", {}, ["generate.n=true"], 2, "generate.n: Input should be a valid integer"),
    ("invalid YAML", {"bad.yaml": "task: [unclosed\n"}, ["--config", "{tmp}/bad.yaml"], 2, "Invalid YAML in"),
    ("missing config file", {}, ["--config", "{tmp}/nope.yaml"], 2, "Config file not found"),
    ("override without =", {}, ["generate.n"], 2, "is not of the form key.sub=value"),
    ("--limit 0", {}, ["--limit", "0"], 2, "Invalid value for '--limit'"),
    ("editable segment that does not exist", {}, ["task.editable=[review]"], 2, "must name segments from ['text']"),
    ("generator section without a source", {}, ["generator={}"], 2, "generator needs path"),
    ("unknown way to read long inputs", {}, ["classifier.long_inputs=middle"], 2,
     "classifier.long_inputs: Input should be 'windows' or 'truncate'"),
    # ---- templates
    ("template reaching Python internals", {"t.jinja": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
     ["generate.template={tmp}/t.jinja"], 2, "tried something templates may not do"),
    ("template with an undefined variable", {"t.jinja": "Make it {{ target }}"},
     ["generate.template={tmp}/t.jinja"], 2, "uses an undefined variable: 'target' is undefined"),
    ("missing template file", {}, ["generate.template={tmp}/missing.jinja"], 2, "generate.template file not found"),
    # ---- output
    ("output path is a file", {"out": "x"}, ["--output", "{tmp}/out"], 2, "exists as a file"),
    ("output folder not writable", {}, ["--output", "/proc/cda-test-out"], 2, "is not writable"),
    ("output folder of other files", {"mine/notes.txt": "keep me"}, ["--output", "{tmp}/mine"], 2,
     "already holds other files (not a cda build output)"),
    ("Hub push without a token", {}, ["export.push_to_hub={repo_id: me/data, token_env: CDA_TEST_NO_TOKEN}"], 2,
     "needs a Hugging Face token with write access in the environment variable CDA_TEST_NO_TOKEN"),
    # ---- models
    ("generator model path that does not exist", {}, ["generate.model=/nope/model.gguf", "generate.backend=transformers"],
     2, "generate.model '/nope/model.gguf' does not exist"),
    ("spaCy pipeline not installed", {}, ["explain.spacy_model=xx_nope_sm"], 2, "spaCy pipeline 'xx_nope_sm'"),
    ("classifier path that does not exist", {}, ["classifier.path=/nope/clf"], 2, "classifier.path '/nope/clf' does not exist"),
    ("generator adapter that is not one", {"adapter/x.txt": "x"}, ["generator.path={tmp}/adapter"], 2,
     "is not a LoRA adapter folder (no adapter_config.json)"),
]


@pytest.mark.parametrize("name, files, args, code, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_before_any_model(tmp_path, monkeypatch, name, files, args, code, message):
    monkeypatch.delenv("CDA_TEST_NO_TOKEN", raising=False)
    for file, content in files.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path, file, content)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    config = IMDB
    if "--config" in args:
        i = args.index("--config")
        config, args = args[i + 1], args[:i] + args[i + 2 :]
    if not any(a.startswith("data.path=") for a in args):
        args.append(f"data.path={write(tmp_path, 'good.tsv', HEADER + GOOD)}")
    start = time.perf_counter()
    result = build(tmp_path, *args, config=config)
    assert result.exit_code == code, result.output
    if name == "--limit 0":  # Typer's own usage error
        assert message in result.output
        return
    assert message in one_line_error(result), result.output
    assert time.perf_counter() - start < 30  # no model was trained or loaded


def test_the_suite_covers_at_least_30_cases():
    assert len(CASES) >= 30


# ---------------------------------------------------------------------- server faults
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stub_server(request):
    """Start tests/stub_openai_server.py in the mode named by the test's parameter; stop it by PID."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/stub_openai_server.py"), "--port", str(port), "--mode", request.param,
         "--lifetime", "120"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


SERVER_CASES = [
    ("html", "answered something that is not the OpenAI API"),
    ("models500", "answered HTTP 500"),
]


@pytest.mark.parametrize("stub_server, message", SERVER_CASES, indirect=["stub_server"], ids=[c[0] for c in SERVER_CASES])
def test_a_server_that_is_not_an_openai_api_fails_before_training(tmp_path, stub_server, message):
    data = write(tmp_path, "x.tsv", HEADER + GOOD)
    start = time.perf_counter()
    result = build(tmp_path, f"data.path={data}", "generate.backend=openai",
                   f"generate.backend.base_url={stub_server}", "generate.backend.health_timeout_s=5", dry_run=False)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in one_line_error(result)
    assert time.perf_counter() - start < 30


def test_no_server_at_all_fails_before_training(tmp_path):
    data = write(tmp_path, "x.tsv", HEADER + GOOD)
    result = build(tmp_path, f"data.path={data}", "generate.backend=openai",
                   f"generate.backend.base_url=http://127.0.0.1:{free_port()}/v1", "generate.backend.health_timeout_s=2", dry_run=False)  # fmt: skip
    assert result.exit_code == 2
    assert "No OpenAI-compatible server answered" in one_line_error(result)


def generation_config(tmp_path: Path, base_url: str, **backend):
    from cda.config import config_from_dict

    return config_from_dict({
        "cache_dir": str(tmp_path / "cache"),
        "data": {"path": write(tmp_path, "x.tsv", HEADER + "Negative\tA dull and boring film.\nPositive\tA great, fun film.\n")},
        "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "generate": {"backend": {"name": "openai", "base_url": base_url, "max_retries": 0, **backend}, "n": 2, "prompts_per_call": 1},
        "filter": {"checks": ["logic", "minimality", "words", "duplicate", "label"]},
    })  # fmt: skip


GENERATION_CASES = [
    ("garbage", "parse", None),
    ("error500", "generation", "request to"),
    ("empty", "generation", "returned 0 samples, expected n=2"),
    ("hang", "generation", "no answer from"),
]


@pytest.mark.parametrize(
    "stub_server, reason, error", GENERATION_CASES, indirect=["stub_server"], ids=[c[0] for c in GENERATION_CASES]
)
def test_generation_faults_keep_every_row_with_a_reason(tmp_path, stub_server, reason, error):
    from cda.generate.openai_client import OpenAICompatibleGenerator
    from cda.pipeline import Components, build
    from tests.fakes import FakeClassifier

    config = generation_config(tmp_path, stub_server, first_response_timeout_s=3, timeout_s=60)
    generator = OpenAICompatibleGenerator.from_config(config)
    start = time.perf_counter()
    result = build(config, components=Components(classifier=FakeClassifier(), generator=generator))
    seconds = time.perf_counter() - start
    assert result.summary.rows == 2 and len(result.dataset) == 2  # the input rows, unchanged
    candidates = [c for r in result.records for p in r.plans for c in p.candidates]
    assert candidates and all(c.drop_reason == reason for c in candidates)
    if error is not None:
        assert all(error in (c.error or "") for c in candidates), candidates[0].error
    if error == "no answer from":
        # Two plans, one per call: the first waits the 3 s deadline, the second fails at once.
        assert 3 <= seconds < 3 + 10


def test_a_hung_server_fails_the_first_group_in_time_and_the_rest_at_once(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "tests/stub_openai_server.py"), "--port", str(port),
                                "--mode", "hang", "--lifetime", "60"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        from cda.generate.openai_client import OpenAICompatibleGenerator
        from cda.protocols import SamplingSettings

        gen = OpenAICompatibleGenerator(base_url=f"http://127.0.0.1:{port}/v1", first_response_timeout_s=2, max_retries=0)
        start = time.perf_counter()
        first = gen.generate(["a", "b"], SamplingSettings(n=1))
        middle = time.perf_counter()
        second = gen.generate(["c"], SamplingSettings(n=1))
        end = time.perf_counter()
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    assert all("no answer from" in g.error for g in first + second)
    assert 2 <= middle - start < 8 and end - middle < 1
    print(json.dumps({"hung_server_first_group_s": round(middle - start, 2), "later_group_s": round(end - middle, 3)}))


KILLABLE_BUILD = """
import json, sys, time
from cda.config import config_from_dict
from cda.pipeline import Components, build
from tests.fakes import FakeClassifier, FakeGenerator

class Slow(FakeGenerator):
    calls = 0
    def generate(self, prompts, sampling):
        Slow.calls += 1
        if Slow.calls == 2 and sys.argv[2] == "die":
            print("first chunk cached", flush=True)
            time.sleep(600)  # killed here with SIGKILL
        return super().generate(prompts, sampling)

config = config_from_dict(json.loads(sys.argv[1]))
gen = Slow()
result = build(config, components=Components(classifier=FakeClassifier(), generator=gen))
print(json.dumps({"calls": Slow.calls, "rows": result.dataset.to_list()}, default=str))
"""


def test_kill_9_and_rerun_gives_an_identical_dataset(tmp_path):
    data = write(tmp_path, "x.tsv", HEADER + "Negative\tA dull and boring film.\nPositive\tA great, fun film.\nNegative\tAn awful plot.\n")
    config = {
        "cache_dir": str(tmp_path / "cache"), "data": {"path": data},
        "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "generate": {"n": 2, "prompts_per_call": 1}, "filter": {"checks": ["logic", "minimality", "duplicate", "label"]},
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(mode: str, cache: str) -> subprocess.Popen:
        args = json.dumps({**config, "cache_dir": str(tmp_path / cache)})
        return subprocess.Popen([sys.executable, "-c", KILLABLE_BUILD, args, mode], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    dying = run("die", "cache")
    assert dying.stdout is not None and dying.stdout.readline().strip() == "first chunk cached"
    os.kill(dying.pid, signal.SIGKILL)
    dying.wait(timeout=10)
    resumed = json.loads(run("live", "cache").communicate(timeout=120)[0].splitlines()[-1])
    clean = json.loads(run("live", "clean-cache").communicate(timeout=120)[0].splitlines()[-1])
    assert resumed["rows"] == clean["rows"]
    assert resumed["calls"] == clean["calls"] - 1  # the chunk finished before the kill came from the cache
