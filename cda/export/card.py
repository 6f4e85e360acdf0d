"""The dataset card (``README.md``) written next to the augmented dataset.

It states how the data was made (config, models), what happened to every candidate
(counts and drop reasons), what each column means and how to load the data.

Examples:
    >>> from cda.config import config_from_dict
    >>> from cda.pipeline import Summary
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
    ...                         "label_column": "Sentiment", "labels": ["Negative", "Positive"]}})
    >>> card = render_card(cfg, Summary(rows=2, originals=2).as_dict(), None, None)
    >>> card.splitlines()[0], "counterfactual-augmentation" in card
    ('---', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import yaml

from cda.config import Config
from cda.export.dataset import audit_columns, provenance_columns
from cda.registry import ComponentError
from cda.registry import checks as registered_checks

#: What the drop reasons that are not checks mean.
OTHER_DROP_REASONS: dict[str, str] = {
    "generation": "the generator failed (error kept in the audit split)",
    "no_edit": "nothing to edit: no rationale span, or no entity to swap (no prompt was sent)",
    "parse": "the output could not be parsed into the edited text",
    "unchecked": "no check ran on it",
}


def drop_reason_meaning(reason: str) -> str:
    """What a drop reason in the summary means: a check's ``fails_when``, or one of :data:`OTHER_DROP_REASONS`.

    Examples:
        >>> drop_reason_meaning("minimality")
        'too many tokens changed (filter.checks.minimality.max_edit_distance)'
    """
    if reason in OTHER_DROP_REASONS:
        return OTHER_DROP_REASONS[reason]
    try:
        return registered_checks.get(reason).fails_when
    except ComponentError:
        return ""


def _front_matter(config: Config, n_rows: int | None) -> str:
    meta: dict[str, Any] = {
        # The rows derive from the input data, whose license cda cannot know.
        "license": "other",
        "task_categories": ["text-classification"],
        "tags": ["counterfactual-augmentation", "cda", config.task.name],
        "pretty_name": f"Counterfactually augmented {config.task.name} data",
    }
    if n_rows is not None:
        meta["size_categories"] = ["n<1K" if n_rows < 1000 else "1K<n<10K" if n_rows < 10_000 else "10K<n<100K"]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _user_columns(config: Config, dataset: datasets.Dataset | None) -> list[tuple[str, str]]:
    task = config.task
    by_column = {column: name for name, column in task.segments.items()}
    names = [c for c in dataset.column_names if not c.startswith("cda_")] if dataset is not None else [
        *task.segments.values(), task.label_column
    ]
    out = []
    for column in names:
        if column in by_column:
            out.append((column, f"segment `{by_column[column]}`: the edited text on a counterfactual of this segment, "
                                "else copied from the original"))
        elif column == task.label_column:
            out.append((column, f"label ({', '.join(task.labels)}): the target label on counterfactual rows"))
        else:
            out.append((column, "copied from the original row"))
    return out


def render_card(
    config: Config,
    summary: dict,
    dataset: datasets.Dataset | None,
    audit: datasets.Dataset | None,
    output_dir: str | Path | None = None,
) -> str:
    """A ``README.md`` dataset card with YAML front matter.

    Args:
        config: the resolved run config.
        summary: :meth:`cda.pipeline.Summary.as_dict` of the run.
        dataset: the augmented dataset (its length and columns are described), or ``None``.
        audit: the audit split, or ``None`` when it is not written.
        output_dir: the folder the outputs are written to (for the loading example);
            default ``export.output_dir``.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...                         "label_column": "Sentiment", "labels": ["Negative", "Positive"]}})
        >>> summary = {"rows": 4, "candidates": 8, "accepted_candidates": 3, "drops": {"label": 5}}
        >>> card = render_card(cfg, summary, None, None, output_dir="out")
        >>> "| label | 5 |" in card, 'datasets.load_from_disk("out/dataset")' in card
        (True, True)
    """
    task, gen = config.task, config.generate
    out = Path(output_dir or config.export.output_dir).as_posix()
    n_rows = len(dataset) if dataset is not None else None
    get = summary.get
    generator = get("generator") or gen.model or "SmolLM2-135M-Instruct (default)"
    classifier = get("classifier") or config.classifier.path or config.classifier.backbone or "MiniLM-L6 (default)"
    parts = [_front_matter(config, n_rows)]
    parts.append(
        f"# Counterfactually augmented {task.name} data\n\n"
        f"Built with `cda` (Explain -> Edit -> Generate -> Filter -> Export). Every input row is kept "
        f"unchanged; after them come counterfactuals: copies of an original in which the rationale spans "
        f"of one segment were rewritten by an LLM so that the label becomes another one, kept only when "
        f"they passed the filter checks ({', '.join(config.filter.checks)}). "
        f"Columns prefixed `cda_` record where each row came from.\n\n"
        "License: the rows derive from the input data and carry its license."
    )
    parts.append(
        "## Models\n\n"
        f"- Classifier (rationales and the label check): `{classifier}`\n"
        f"- Generator: `{generator}` (backend `{gen.backend.name}`, edit strategy `{config.edit.strategy.name}`, template "
        f"`{gen.template or 'default'}`, n={gen.n}, temperature={gen.temperature}, top_p={gen.top_p})\n"
        f"- Attribution: `{config.explain.method.name}` toward the {config.explain.toward}, "
        f"top {config.explain.top_fraction:.0%} of {config.explain.granularity}s with score >= {config.explain.min_score}"
    )
    counts = [
        ("rows in this dataset", n_rows if n_rows is not None else "-"),
        ("input rows", get("rows", 0)),
        ("input rows skipped (invalid)", get("skipped_rows", 0)),
        ("originals", get("originals", 0)),
        ("originals truncated by the classifier", get("truncated", 0)),
        ("edit plans (original x target label)", get("plans", 0)),
        ("edit plans without rationale spans", get("plans_without_spans", 0)),
        ("candidates generated", get("candidates", 0)),
        ("candidates accepted", get("accepted_candidates", 0)),
        ("counterfactuals (one per plan at most)", get("counterfactuals", 0)),
        ("originals with at least one counterfactual", get("originals_with_counterfactual", 0)),
    ]
    parts.append("## Counts\n\n" + _table(("what", "count"), counts))
    drops = get("drops") or {}
    if drops:
        rows = [(reason, count, drop_reason_meaning(reason)) for reason, count in drops.items()]
        parts.append("## Dropped candidates\n\nEach dropped candidate counts once, under the first check it failed.\n\n"
                     + _table(("reason", "candidates", "meaning"), rows))
    else:
        parts.append("## Dropped candidates\n\nNone.")
    columns = _user_columns(config, dataset) + [(col.name, col.meaning) for col in provenance_columns(config)]
    parts.append("## Columns\n\n" + _table(("column", "meaning"), [(f"`{c}`", m) for c, m in columns]))
    if audit is not None:
        parts.append(
            f"## Audit split\n\nOne row per generated candidate ({len(audit)} rows), accepted or not, with its "
            "prompt, raw output and every check.\n\n"
            + _table(("column", "meaning"), [(f"`{c.name}`", c.meaning) for c in audit_columns(config)])
        )
    load = [
        "import datasets",
        "",
        f'ds = datasets.load_from_disk("{out}/dataset")',
        'counterfactuals = ds.filter(lambda row: row["cda_is_counterfactual"])',
    ]
    if audit is not None:
        load.append(f'audit = datasets.load_from_disk("{out}/audit")')
    if "parquet" in config.export.formats:
        load.append(f'ds = datasets.load_dataset("parquet", data_files="{out}/dataset.parquet", split="train")')
    if "jsonl" in config.export.formats:
        load.append(f'ds = datasets.load_dataset("json", data_files="{out}/dataset.jsonl", split="train")')
    if config.export.push_to_hub is not None:
        load.append(f'ds = datasets.load_dataset("{config.export.push_to_hub.repo_id}", split="train")')
    parts.append("## How to load\n\n```python\n" + "\n".join(load) + "\n```\n\n"
                 "`cda_rationale_spans` and `cda_checks` are JSON strings: `json.loads(row[\"cda_checks\"])`.")
    seconds = get("seconds") or {}
    if seconds:
        parts.append("## Time\n\n" + _table(("stage", "seconds"), [(k, f"{v:.1f}") for k, v in seconds.items()]))
    config_yaml = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    parts.append("## Configuration\n\n```yaml\n" + config_yaml + "```")
    return "\n\n".join(parts) + "\n"
