"""The cost of generating with a LoRA adapter on vLLM: the same prompts with and without it.

The prompts are those of ``bench_generate.py`` (the first ``--rows`` Kaushik IMDb dev
originals, their first ``--spans`` adjectives masked, toward the opposite label), rendered
with the trained generator's template (``trained_infill.v1``) and decoded under the infill
answer regex, ``--n`` samples each, as the Generate stage sends them. Two engines, one at a
time, on the same converted SmolLM2:

* ``base``: a plain engine on the base weights (what zero-shot prompting costs);
* ``merged``: a plain engine on a copy of the weights with the adapter merged in (cda's
  default on CPU, ``generate.backend.merge_lora``);
* ``lora``: an engine started with ``enable_lora``, every request carrying the adapter
  (``LoRARequest``; cda's default on GPU) — the vLLM LoRA overhead is its ratio to ``merged``.

    python benchmarks/bench_lora.py --adapter outputs/adapters/imdb-pairs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generate import DEFAULT_DATA, build_config, build_records, measure, render_prompts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, required=True, help="a LoRA adapter folder (cda train-generator)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--spans", type=int, default=3)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--context-words", type=int, default=6)
    args = parser.parse_args()

    from cda.config import config_from_dict
    from cda.generate.stage import sampling_settings
    from cda.generate.vllm_engine import VLLMGenerator
    from cda.models import set_threads

    set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        generator = {"path": str(args.adapter), "context_words": args.context_words}
        config = config_from_dict({**build_config(args, tmp).model_dump(), "generator": generator})
        records = build_records(config, args.spans)
        work = render_prompts(config, records)
        print(f"{len(work)} prompts, e.g. {work[0][2]!r}", flush=True)
        sampling = sampling_settings(config)
        rows = []
        for name, lora, merge in (("base", None, None), ("merged", args.adapter, True), ("lora", args.adapter, False)):
            engine = VLLMGenerator(lora_path=lora, merge_lora=merge, max_model_len=512)
            engine.load()
            try:
                rows.append(measure(name, engine, work, sampling, engine._tokenizer, "infill", structured=True))
            finally:
                engine.unload()
        base, merged, lora = rows
        print(json.dumps({
            "merged_over_base_seconds": round(merged["seconds"] / base["seconds"], 3),
            "lora_over_merged_seconds": round(lora["seconds"] / merged["seconds"], 3),
            "tokens_per_s": {r["variant"]: r["tokens_per_s"] for r in rows},
        }))  # fmt: skip


if __name__ == "__main__":
    main()
