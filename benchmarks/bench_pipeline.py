"""Time and memory of each pipeline stage on N IMDb reviews, with an empty cache.

Prints, per stage: seconds, examples/s and the RSS after it, the peak RSS of the run
(this process and its children: the vLLM engine runs in child processes), and the cost of each attribution method as a ratio to one plain forward+backward
pass of the classifier on the same batch.

    python benchmarks/bench_pipeline.py --rows 200 --threads 1
    python benchmarks/bench_pipeline.py --data ../shared/data/kaushik-cad/sentiment/dev_paired.tsv --rows 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """RSS of this process and its children (the vLLM engine and worker are child processes)."""
    total = 0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


class PeakMemory:
    """The largest :func:`rss_mib` seen, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.25) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            self._stop.wait(interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/imdb.yaml"))
    parser.add_argument("--data", default=str(ROOT / "demo/imdb_sample.tsv"))
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--attribution-batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="Also write the numbers as JSON here.")
    parser.add_argument("overrides", nargs="*", help="Dotted config overrides, e.g. generate.n=2")
    args = parser.parse_args()

    from cda.config import load_config
    from cda.data import load_table
    from cda.explain.attribution import forward_backward_seconds
    from cda.pipeline import Runner

    cache_dir = tempfile.mkdtemp(prefix="cda-bench-")
    config = load_config(args.config, [f"data.path={args.data}", f"data.limit={args.rows}", f"threads={args.threads}",
                                       f"cache_dir={cache_dir}", *args.overrides])
    runner = Runner(config, use_cache=True)  # empty cache: everything is computed once
    table = load_table(config.data)
    records = runner.records(table)
    n = len(records)
    rows: list[dict] = []

    with PeakMemory() as memory:
        start = time.perf_counter()
        classifier = runner.classifier(records)
        rows.append({"stage": "train classifier", "seconds": time.perf_counter() - start, "rss_mib": rss_mib()})
        for stage in runner.stages(["explain", "edit", "generate", "filter"], records):
            start = time.perf_counter()
            stage.load()
            records = stage.process(records)
            stage.unload()
            rows.append({"stage": stage.name, "seconds": time.perf_counter() - start, "rss_mib": rss_mib()})
    for row in rows:
        row["examples_per_s"] = n / row["seconds"] if row["seconds"] else float("inf")
    runner.summary.update_from(records)

    batch = [r.segments for r in records[: args.attribution_batch]]
    targets = [r.label for r in records[: args.attribution_batch]]
    forward_backward_seconds(classifier, batch)  # warm-up
    base = min(forward_backward_seconds(classifier, batch) for _ in range(3))
    ratios = {}
    for method in ["grad_x_input", "integrated_gradients", "occlusion"]:
        start = time.perf_counter()
        classifier.attribute(batch, targets, method)
        ratios[method] = (time.perf_counter() - start) / base

    console = Console()
    table_out = Table(title=f"cda pipeline on {n} examples ({Path(args.data).name}), {args.threads} thread(s)")
    for col in ["stage", "seconds", "examples/s", "RSS after (MiB)"]:
        table_out.add_column(col, justify="right" if col != "stage" else "left")
    for row in rows:
        table_out.add_row(row["stage"], f"{row['seconds']:.1f}", f"{row['examples_per_s']:.2f}", f"{row['rss_mib']:.0f}")
    total = sum(r["seconds"] for r in rows)
    table_out.add_row("total", f"{total:.1f}", f"{n / total:.2f}", f"peak {memory.peak:.0f}")
    console.print(table_out)
    console.print(f"attribution cost on a batch of {len(batch)} (ratio to one forward+backward pass, {base:.3f}s, "
                  "IG with its default steps): " + ", ".join(f"{m} {r:.1f}x" for m, r in ratios.items()))
    summary = runner.summary.as_dict()
    console.print(f"generator {summary.get('generator')}, classifier {summary.get('classifier')}")
    console.print(f"candidates {summary['candidates']}, accepted {summary['accepted_candidates']}, "
                  f"counterfactuals {summary['counterfactuals']}, drops {summary['drops']}")
    if args.out:
        args.out.write_text(json.dumps({"examples": n, "stages": rows, "peak_rss_mib": memory.peak,
                                        "forward_backward_s": base, "attribution_ratio": ratios,
                                        "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
