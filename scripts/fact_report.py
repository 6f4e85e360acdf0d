"""What a fact-verification build (edit.strategy: entity_swap) made, read from its audit split.

Prints, per output type -- ``(claim, E')`` by evidence edit and ``(c', E')`` by generated claim --
the candidates, accepted and selected counts; the pass rate of every check over the candidates
it ran on; the filter verifier's agreement with the intended labels; seconds of the build per
accepted counterfactual; and accepted / rejected examples side by side.

    python scripts/fact_report.py outputs/feverous-build --accepted 10 --rejected 5
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import datasets


def output_type(row: dict) -> str:
    return "generated claim (c', E')" if "claim" in row["edited_segment"].split(",") else "evidence edit (c, E')"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--accepted", type=int, default=10)
    parser.add_argument("--rejected", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = datasets.load_from_disk(str(args.build / "audit")).to_list()
    summary = json.loads((args.build / "summary.json").read_text())

    print(f"## {args.build}: {summary['originals']} originals, {len(rows)} candidates\n")
    print("| output type | target | candidates | parsed | accepted | selected |\n|---|---|---|---|---|---|")
    kinds = Counter((output_type(r), r["target_label"]) for r in rows)
    for (kind, target), n in sorted(kinds.items()):
        group = [r for r in rows if output_type(r) == kind and r["target_label"] == target]
        print(f"| {kind} | {target} | {n} | {sum(r['parsed'] is not None for r in group)} | "
              f"{sum(r['accepted'] for r in group)} | {sum(r['selected'] for r in group)} |")
    print(f"\nno entity to swap: {sum(r['drop_reason'] in ('no_edit', 'generation') and not r['prompt'] for r in rows)} plans\n")

    print("| check | output type | ran on | passed | pass rate |\n|---|---|---|---|---|")
    tally: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in rows:
        for check in json.loads(r["checks"]):
            tally[(check["name"], output_type(r))].append(check["passed"])
    for (name, kind), results in sorted(tally.items()):
        print(f"| {name} | {kind} | {len(results)} | {sum(results)} | {sum(results) / len(results):.3f} |")

    label = [(output_type(r), c["passed"]) for r in rows for c in json.loads(r["checks"]) if c["name"] == "label"]
    print("\nfilter verifier agrees with the intended label (label check, candidates that reached it):")
    for kind in sorted({k for k, _ in label}):
        got = [p for k, p in label if k == kind]
        print(f"  {kind}: {sum(got)}/{len(got)} = {sum(got) / len(got):.3f}")
    seconds = sum(v for k, v in summary["seconds"].items() if k != "train")
    accepted = summary["counterfactuals"]
    print(f"\nbuild time without verifier training: {seconds:.0f} s for {accepted} counterfactuals "
          f"= {seconds / max(accepted, 1):.1f} s each ({summary['seconds']})")

    rng = random.Random(args.seed)
    chosen = [r for r in rows if r["selected"]]
    dropped = [r for r in rows if not r["accepted"] and r["parsed"] is not None]
    for title, sample in (("Accepted", rng.sample(chosen, min(args.accepted, len(chosen)))),
                          ("Rejected", rng.sample(dropped, min(args.rejected, len(dropped))))):
        print(f"\n### {title}\n")
        for r in sample:
            edits = "; ".join(f"{e['old']} → {e['new']} ({e['type']}, sentence {e['sentence']})" for e in json.loads(r["edits"]))
            claim, *evidence = r["parsed"].split("\n") if "claim" in r["edited_segment"] else [r["segments"]["claim"], *r["parsed"].split("\n")]
            touched = {e["sentence"] for e in json.loads(r["edits"])}
            before = r["segments"]["evidence"].split("\n")
            print(f"- **{r['source_label']} → {r['target_label']}**, {output_type(r)}; swap: {edits}")
            print(f"  - claim: {r['segments']['claim']}")
            if claim != r["segments"]["claim"]:
                print(f"  - new claim: {claim}")
            for k in sorted(touched):
                print(f"  - evidence [{k}]: {before[k]}\n    → {evidence[k] if k < len(evidence) else '(missing)'}")
            if not r["accepted"]:
                failed = [f"{c['name']}: {c['reason'] or 'failed'}" for c in json.loads(r["checks"]) if not c["passed"]]
                print(f"  - dropped by {r['drop_reason']} ({'; '.join(failed)[:300]})")


if __name__ == "__main__":
    main()
