"""Time and memory of a review round with the real Label Studio, on a real build.

Measures: the install (``--fresh-install``: into a new folder; else the existing one is
reused and not timed), a cold start (new data folder: database migrations, user and token),
the round trip on the build (push, the scripted reviewer of scripts/review_scripted.py posting
annotations through the API, pull with the build's filter rechecking corrections), a warm
start (same data folder), and the server's memory (RSS of its process group, and its peak).
Prints one JSON object; the annotations are **scripted**, not a person's.

    CDA_CACHE_DIR=/tmp/cdacache .venv/bin/python benchmarks/bench_review.py --build /tmp/dev-review \\
        --accepted 60 --dropped 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from cda.review.agreement import review_metrics  # noqa: E402
from cda.review.client import LabelStudioClient  # noqa: E402
from cda.review.install import ensure_installed  # noqa: E402
from cda.review.rounds import load_build, pull, push  # noqa: E402
from cda.review.server import start_label_studio  # noqa: E402
from cda.review.settings import LabelStudioSettings, load_credentials  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_memory_mb(pgid: int) -> dict[str, float]:
    """RSS now and its peak (VmHWM), summed over the processes of a process group, in MB."""
    rss = hwm = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            status = (entry / "status").read_text()
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        hwm += int(fields.get("VmHWM", "0 kB").split()[0])
    return {"rss_mb": round(rss / 1024, 1), "peak_rss_mb": round(hwm / 1024, 1)}


def _du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, required=True, help="A cda build folder (its review/ is rewritten).")
    parser.add_argument("--home", type=Path, default=None, help="Label Studio's folder (default: the cache's).")
    parser.add_argument("--fresh-install", action="store_true", help="Time an install into a new folder.")
    parser.add_argument("--accepted", type=int, default=60, help="Push this many candidates that passed the filter.")
    parser.add_argument("--dropped", type=int, default=20, help="... and this many it dropped.")
    parser.add_argument("--output", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()

    load_build(args.build)  # a bad build folder fails before anything is installed
    report: dict = {"build": str(args.build), "annotations": "scripted (scripts/review_scripted.py), not a person's"}
    try:
        measure(args, report)
    finally:  # what was measured, even when a step failed
        text = json.dumps(report, indent=2)
        print(text)
        if args.output:
            args.output.write_text(text + "\n", encoding="utf-8")


def measure(args: argparse.Namespace, report: dict) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-review-"))
    try:
        _measure(args, report, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _measure(args: argparse.Namespace, report: dict, scratch: Path) -> None:
    home = args.home
    if args.fresh_install:
        home = scratch / "label-studio"
        start = time.perf_counter()
        venv = ensure_installed(LabelStudioSettings(home=home))
        report["install_s"] = round(time.perf_counter() - start, 1)
        report["venv_mb"] = _du_mb(venv)
    settings = LabelStudioSettings(home=home, data_dir=scratch / "data", port=_free_port())
    ensure_installed(settings)
    report["version"] = settings.version

    start = time.perf_counter()
    server = start_label_studio(settings, log_file=scratch / "server.log")
    report["cold_start_s"] = round(time.perf_counter() - start, 1)
    report["memory_after_cold_start"] = group_memory_mb(server.pid)
    try:
        client = LabelStudioClient(server.url, load_credentials(settings.credentials_file).token.get_secret_value())
        trip = time.perf_counter()
        start = time.perf_counter()
        first = push(args.build, which="accepted", limit=args.accepted, client=client)
        second = push(args.build, which="dropped", limit=args.dropped, client=client)
        report["push_s"] = round(time.perf_counter() - start, 1)
        report["pushed"] = {"accepted": first.created, "dropped": second.created}

        from review_scripted import annotate

        start = time.perf_counter()
        report["scripted_annotations"] = dict(annotate(client, first.project_id))
        report["annotate_s"] = round(time.perf_counter() - start, 1)

        start = time.perf_counter()
        result = pull(args.build, client=client)
        report["pull_s"] = round(time.perf_counter() - start, 1)
        report["round_trip_s"] = round(time.perf_counter() - trip, 1)
        report["memory_after_round_trip"] = group_memory_mb(server.pid)
        report["review"] = {k: v for k, v in result.summary.items() if k not in ("project",)}
        report["agreement"] = review_metrics(result.reviewed.records)["agreement"]
        report["reviewed_dir"] = str(result.output_dir)
    finally:
        server.stop()

    start = time.perf_counter()
    server = start_label_studio(settings, install=False, log_file=scratch / "server.log")
    report["warm_start_s"] = round(time.perf_counter() - start, 1)
    report["memory_after_warm_start"] = group_memory_mb(server.pid)
    server.stop()


if __name__ == "__main__":
    main()
