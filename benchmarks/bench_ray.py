"""Local executor vs the Ray executor with 1 and 2 actors per stage, on the demo reviews.

The classifier is trained once and given to every run as ``classifier.path``; each run then
explains, edits, generates (vLLM) and filters from scratch (no cache), so the runs do the same
work. Prints a table and writes JSON lines.

    python benchmarks/bench_ray.py --rows 16 --out outputs/bench_ray.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/imdb.yaml")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_ray.jsonl"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from cda.config import load_config
    from cda.data import load_table, to_records
    from cda.explain.classifier import load_or_train_classifier
    from cda.cache import Cache
    from cda.pipeline import build

    base = load_config(args.config, [f"data.limit={args.rows}", *args.overrides])
    # One classifier for every run (trained on the whole demo file, as a build would).
    full = load_config(args.config, args.overrides)
    classifier = load_or_train_classifier(full, Cache(full.resolved_cache_dir()), to_records(load_table(full.data), full.task))
    folder = full.resolved_cache_dir() / "bench_ray" / classifier.name
    if not folder.exists():
        classifier.save(folder)  # type: ignore[attr-defined]
    base = load_config(args.config, [f"data.limit={args.rows}", f"classifier.path={folder}", *args.overrides])
    table = load_table(base.data)

    variants = [("local", "local"), ("ray, 1 actor per stage", {"name": "ray", "num_cpus": args.cpus}),
                ("ray, 2 actors per stage", {"name": "ray", "num_cpus": args.cpus,
                                             "replicas": {"explain": 2, "generate": 2, "filter": 2}})]  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, executor in variants:
        config = base.model_copy(update={"executor": base.model_validate({**base.model_dump(), "executor": executor}).executor})
        start = time.perf_counter()
        result = build(config, table, use_cache=False)
        seconds = time.perf_counter() - start
        summary = result.summary
        row = {"variant": label, "rows": len(table), "seconds": round(seconds, 1), "plans": summary.plans,
               "candidates": summary.candidates, "counterfactuals": summary.counterfactuals,
               "cpus": os.cpu_count(), "load": round(os.getloadavg()[0], 2)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if executor != "local":
            import ray

            ray.shutdown()
    print("\n| executor | rows | seconds | plans | candidates | counterfactuals |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['rows']} | {r['seconds']} | {r['plans']} | {r['candidates']} | {r['counterfactuals']} |")


if __name__ == "__main__":
    main()
