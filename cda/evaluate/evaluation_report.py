"""The ``cda evaluate`` report: cda and human counterfactuals side by side, figures, examples.

Examples:
    >>> from tests.fakes import FakeClassifier
    >>> from cda.evaluate import EvalComponents, evaluate
    >>> result = evaluate(build_dir, judge=None, fluency=False, components=EvalComponents(task_judge=FakeClassifier()))
    >>> [p.name for p in write_evaluation_report(result.metrics, result.rows, tmp_dir / "evaluation")]
    ['edit_distance.png', 'judge_confidence.png', 'candidates.png', 'report.md', 'report.html']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cda.data import sample_indices
from cda.evaluate.funnel import funnel_table
from cda.evaluate.report import (
    Figure,
    Report,
    Section,
    Table,
    Text,
    fate_order,
    highlight_edits,
    histogram,
    histogram_panels,
    stacked_bars,
    write_report,
)

# (label in the report, field, statistic) of the side-by-side table.
SIDE_BY_SIDE = (
    ("flip rate, task judge", "flip_task", "mean"),
    ("flip rate, independent judge", "flip_independent", "mean"),
    ("mean P(target), task judge", "prob_task", "mean"),
    ("mean P(target), independent judge", "prob_independent", "mean"),
    ("token edit distance to original (mean)", "edit_distance", "mean"),
    ("token edit distance to original (median)", "edit_distance", "median"),
    ("BLEU to original (mean)", "bleu_to_original", "mean"),
    ("share adding an invented or foreign word (filter.words)", "unknown_words", "mean"),
    ("perplexity (median)", "perplexity", "median"),
    ("perplexity ratio to original (median)", "perplexity_ratio", "median"),
    ("perplexity ratio to original (mean)", "perplexity_ratio", "mean"),
    ("self-BLEU of candidates (mean; lower = more diverse)", "self_bleu", "mean"),
    ("token edit distance to the human counterfactual (mean)", "edit_distance_to_human", "mean"),
    ("BLEU to the human counterfactual (mean)", "bleu_to_human", "mean"),
    ("share of cda's changed words the human changed too (mean)", "words_changed_by_human_too", "mean"),
    ("share of the human's changed words cda changed (mean)", "human_words_changed", "mean"),
)
PER_PAIR = (
    ("flip (task)", "flip_task"),
    ("flip (indep.)", "flip_independent"),
    ("edit dist.", "edit_distance"),
    ("ppl ratio (median)", "perplexity_ratio"),
)


def _stat(block: dict | None, name: str, stat: str) -> Any:
    if not block or name not in block:
        return None
    return block[name][stat]


def sample_examples(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` cda counterfactuals spread over the dataset (seeded), in dataset order: the report's examples."""
    cda_rows = [r for r in rows if r["kind"] == "cda"]
    return [cda_rows[i] for i in sample_indices(len(cda_rows), n, seed)]


def write_evaluation_report(metrics: dict[str, Any], rows: list[dict], output_dir: str | Path, examples: int = 10) -> list[Path]:
    """Figures (PNG) and ``report.md``/``report.html`` for :func:`cda.evaluate.evaluate`'s results."""
    out = Path(output_dir)
    cda_rows = [r for r in rows if r["kind"] == "cda"]
    human_rows = [r for r in rows if r["kind"] == "human"]
    has_human = "human" in metrics
    files: list[Path] = []

    files.append(histogram(
        {"cda": [r["edit_distance"] for r in cda_rows], "human": [r["edit_distance"] for r in human_rows]},
        out / "edit_distance.png", "Token edit distance to the original", "normalized token Levenshtein",
        value_range=(0.0, 1.0),
    ))  # fmt: skip
    panels = {}
    for role in metrics["judges"]:
        panel = {"cda": [r[f"prob_{role}"] for r in cda_rows if r.get(f"prob_{role}") is not None]}
        if has_human:
            panel["human"] = [r[f"prob_{role}"] for r in human_rows if r.get(f"prob_{role}") is not None]
        panels[f"{role} judge"] = panel
    files.append(histogram_panels(panels, out / "judge_confidence.png", "P(target label)", value_range=(0.0, 1.0)))
    if metrics.get("candidates"):
        files.append(stacked_bars(metrics["candidates"], out / "candidates.png", "Candidates per label pair and their fate"))

    # Columns: cda, every human counterfactual, and the human ones of the originals cda edited
    # (the fair comparison when cda covers only some originals).
    blocks = [metrics["cda"]["overall"]]
    header = ["metric", "cda"]
    if has_human:
        blocks += [metrics["human"]["overall"], metrics["human_same_originals"]["overall"]]
        header += ["human", "human, same originals"]
    table_rows: list[list[Any]] = [["counterfactuals", *(block["count"] for block in blocks)]]
    for label, name, stat in SIDE_BY_SIDE:
        values = [_stat(block, name, stat) for block in blocks]
        if any(v is not None for v in values):
            table_rows.append([label, *values])

    pairs = sorted(set(metrics["cda"]["by_pair"]) | set(metrics.get("human", {}).get("by_pair", {})))
    pair_header = ["label pair", "cda n", *(f"cda {h}" for h, _ in PER_PAIR)]
    if has_human:
        pair_header += ["human n", *(f"human {h}" for h, _ in PER_PAIR)]
    pair_rows = []
    for pair in pairs:
        c = metrics["cda"]["by_pair"].get(pair)
        row: list[Any] = [pair, c["count"] if c else 0]
        row += [_stat(c, f, "median" if "ratio" in h else "mean") for h, f in PER_PAIR]
        if has_human:
            h_block = metrics["human"]["by_pair"].get(pair)
            row += [h_block["count"] if h_block else 0]
            row += [_stat(h_block, f, "median" if "ratio" in h else "mean") for h, f in PER_PAIR]
        pair_rows.append(row)

    summary_lines = [
        f"Dataset {metrics['dataset']}: {metrics['originals']} originals, {metrics['counterfactuals']} counterfactuals "
        f"({metrics['originals_with_counterfactual']} originals have at least one).",
    ]
    for role, info in metrics["judges"].items():
        summary_lines.append(f"{role.capitalize()} judge: {info['name']} (accuracy on the originals: "
                             f"{info['accuracy_on_originals']}).")  # fmt: skip
    if metrics.get("language_model"):
        summary_lines.append(f"Perplexity under {metrics['language_model']}.")
    if has_human:
        ref = metrics["reference"]
        problems = "; ".join(f"{k}: {v}" for k, v in ref["problems"].items())
        summary_lines.append(
            f"Reference {ref['path']}: {ref['paired']} of {ref['originals']} originals paired ({ref['method']}), "
            f"{ref['human_counterfactuals']} human counterfactuals" + (f"; not paired: {problems}." if problems else ".")
        )
        close = metrics["closeness"]
        summary_lines.append(f"{close['pairs']} cda counterfactuals have a human counterfactual for the same original, "
                             "target label and edited segment (closeness rows).")  # fmt: skip

    example_header = ["#", "label pair", "original (cda's edits marked)", "cda counterfactual"]
    if has_human:
        example_header.append("human counterfactual")
    example_header.append("P(target) task / indep.")
    human_by_key = {(r["original_index"], r["target"], r["segment"]): r for r in human_rows}
    example_rows = []
    for row in sample_examples(rows, examples):
        before, after = highlight_edits(row["original"], row["counterfactual"])
        cells: list[Any] = [row["original_index"], f"{row['source']}→{row['target']}", before, after]
        if has_human:
            h = human_by_key.get((row["original_index"], row["target"], row["segment"]))
            cells.append(highlight_edits(h["original"], h["counterfactual"])[1] if h else None)
        probs = [row.get("prob_task"), row.get("prob_independent")]
        cells.append(" / ".join("–" if p is None else f"{p:.2f}" for p in probs))
        example_rows.append(cells)

    sections = [
        Section("Summary", [Text(line) for line in summary_lines]),
        Section("cda and human counterfactuals, side by side", [
            Table(header, table_rows, caption="flip rates are fractions; BLEU is 0–100; edit distance 0–1"),
        ]),
        Section("Per label pair", [Table(pair_header, pair_rows)]),
        Section("Figures", [
            Figure("edit_distance.png", "Token edit distance to the original: cda vs human"),
            Figure("judge_confidence.png", "Judge probability of the target label, per judge: cda vs human"),
            *([Figure("candidates.png", "Candidates per label pair: selected, accepted, and each drop reason")]
              if metrics.get("candidates") else []),
        ]),
    ]  # fmt: skip
    if metrics.get("candidates"):
        reasons = sorted({k for per in metrics["candidates"].values() for k in per}, key=fate_order)
        sections.append(Section("Candidates and drop reasons", [
            Table(["label pair", *reasons], [[p, *(per.get(k, 0) for k in reasons)]
                                            for p, per in metrics["candidates"].items()]),
        ]))  # fmt: skip
    if metrics.get("funnel"):
        sections.append(Section("Search funnel per round", [funnel_table(metrics["funnel"])]))
    diversity = metrics.get("diversity") or {}
    if diversity.get("plans"):
        sections.append(Section("Diversity", [Text(
            f"Self-BLEU among the parsed candidates of each original and target label, over {diversity['plans']} "
            f"plans with at least two parsed candidates: mean {diversity['self_bleu']['mean']}, median "
            f"{diversity['self_bleu']['median']} (100 = all candidates identical)."
        )]))  # fmt: skip
    from cda.review.agreement import review_sections

    sections += review_sections(metrics.get("review"))
    sections.append(Section(f"{len(example_rows)} example pairs", [
        Table(example_header, example_rows, caption="changed tokens are marked; … elides unchanged text"),
    ]))  # fmt: skip
    report = Report(title="cda evaluation", subtitle=str(metrics["dataset"]), sections=sections)
    return files + write_report(report, out)
