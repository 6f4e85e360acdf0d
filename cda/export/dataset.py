"""Records -> ``datasets.Dataset``: the augmented dataset and the audit of every candidate.

The augmented dataset is the user's table, untouched (same columns, values, order and
features, ``ClassLabel`` included), followed by one row per selected counterfactual, in
the order of the originals. Every row gets the ``cda_`` provenance columns of
:data:`PROVENANCE_COLUMNS`. Nested provenance (spans, checks) is stored as JSON strings:
they load the same from ``save_to_disk``, Parquet, JSON lines and the Hub, and an empty
list never needs a type.

Examples:
    >>> import datasets
    >>> from cda.config import Config, DataConfig, TaskConfig
    >>> from cda.records import Candidate, Check, EditPlan, Record
    >>> table = datasets.Dataset.from_dict({"Text": ["A dull film."], "Sentiment": ["Negative"]})
    >>> cfg = Config(data=DataConfig(path="x.tsv"), task=TaskConfig(segments={"text": "Text"},
    ...              label_column="Sentiment", labels=["Negative", "Positive"]))
    >>> best = Candidate(segments={"text": "A fine film."}, checks=[Check(name="label", passed=True)])
    >>> plan = EditPlan(target_label="Positive", segment="text", candidates=[best], selected=0)
    >>> records = [Record(index=0, segments={"text": "A dull film."}, label="Negative", plans=[plan])]
    >>> out = to_dataset(table, records, cfg)
    >>> list(out["Text"]), list(out["Sentiment"]), list(out["cda_is_counterfactual"])
    (['A dull film.', 'A fine film.'], ['Negative', 'Positive'], [False, True])
    >>> len(to_audit_dataset(records, cfg))
    1
"""

from __future__ import annotations

import json
from typing import Any

import datasets

from cda.config import Config, TaskConfig
from cda.data import check_columns, label_names
from cda.errors import CdaError
from cda.records import Candidate, EditPlan, Record, Span

PREFIX = "cda_"

#: Provenance columns on every row of the augmented dataset, with their features.
PROVENANCE_FEATURES = datasets.Features(
    {
        "cda_is_counterfactual": datasets.Value("bool"),
        "cda_original_index": datasets.Value("int64"),
        "cda_source_label": datasets.Value("string"),
        "cda_target_label": datasets.Value("string"),
        "cda_rationale_spans": datasets.Value("string"),
        "cda_edited_segment": datasets.Value("string"),
        "cda_generator": datasets.Value("string"),
        "cda_prompt_template": datasets.Value("string"),
        "cda_checks": datasets.Value("string"),
        "cda_label_prob": datasets.Value("float64"),
        "cda_edit_distance": datasets.Value("float64"),
        "cda_perplexity": datasets.Value("float64"),
    }
)

#: What each provenance column means (and its value on original rows); the dataset card lists these.
PROVENANCE_COLUMNS: dict[str, str] = {
    "cda_is_counterfactual": "true for a generated counterfactual, false for an input row",
    "cda_original_index": "position of the original row in this dataset (originals: their own position)",
    "cda_source_label": "label of the original row",
    "cda_target_label": "label the counterfactual was written toward (originals: empty)",
    "cda_rationale_spans": "JSON list of the edited rationale spans {segment, start, end, text, score}; "
    "character offsets into the original segment after task.replace (originals: [])",
    "cda_edited_segment": "name of the segment the generator changed (originals: empty)",
    "cda_generator": "the LLM that wrote the counterfactual, as engine:model (originals: empty)",
    "cda_prompt_template": "the prompt template used (originals: empty)",
    "cda_checks": "JSON list of the filter checks {name, passed, reason, value} it passed (originals: [])",
    "cda_label_prob": "classifier probability of the target label (originals: null)",
    "cda_edit_distance": "token-level Levenshtein distance to the original segment, 0..1 (originals: null)",
    "cda_perplexity": "language-model perplexity of the edited segment (null when not measured)",
}

#: Columns of the audit dataset (one row per generated candidate) and their meaning.
AUDIT_COLUMNS: dict[str, str] = {
    "original_index": "position of the original row in the input",
    "segments": "the original's segments (after task.replace), one field per segment",
    "source_label": "label of the original",
    "target_label": "label the candidate was written toward",
    "edited_segment": "name of the segment the generator changed",
    "masked": "the edited segment with its rationale spans blanked out",
    "spans": "JSON list of the rationale spans {segment, start, end, text, score}",
    "sample_index": "which of the n samples for this prompt",
    "raw": "the generator's raw output",
    "prompt": "the rendered prompt",
    "parsed": "the edited segment parsed from the output (null when it could not be parsed)",
    "error": "why generation or parsing failed (null when it did not)",
    "checks": "JSON list of the filter checks {name, passed, reason, value} that ran",
    "accepted": "true when the candidate parsed and passed every check",
    "selected": "true for the candidate that became the plan's counterfactual",
    "drop_reason": "first failed check, or parse/generation/unchecked (null when accepted)",
    "label_prob": "classifier probability of the target label (null when not measured)",
    "edit_distance": "token-level edit distance to the original segment (null when not measured)",
    "perplexity": "language-model perplexity of the edited segment (null when not measured)",
    "generator": "the LLM that wrote the candidate",
    "prompt_template": "the prompt template used",
}

_STRING_DTYPES = {"string", "large_string"}
_INT_PREFIXES = ("int", "uint")


class ExportError(CdaError, ValueError):
    """The records cannot be written into the user's table; the message says why and what is allowed."""


def _spans_json(record: Record, spans: list[Span]) -> str:
    return json.dumps(
        [
            {"segment": s.segment, "start": s.start, "end": s.end, "text": s.text or record.span_text(s), "score": s.score}
            for s in spans
        ],
        ensure_ascii=False,
    )


def _checks_json(candidate: Candidate) -> str:
    return json.dumps([c.model_dump() for c in candidate.checks], ensure_ascii=False)


def _check_columns(table: datasets.Dataset, task: TaskConfig) -> None:
    check_columns(table, task)
    taken = [c for c in table.column_names if c.startswith(PREFIX)]
    if taken:
        raise ExportError(
            f"The input already has provenance column(s) {taken}; cda adds its own {PREFIX}* columns. "
            f"Drop them first (dataset.remove_columns({taken})) or rename them."
        )
    for column in task.segments.values():
        feature = table.features[column]
        if not (isinstance(feature, datasets.Value) and feature.dtype in _STRING_DTYPES):
            raise ExportError(f"Segment column {column!r} has type {feature}; cda writes text into string columns only")


def label_encoder(table: datasets.Dataset, task: TaskConfig):
    """A function turning a label name into a value of the table's label column type.

    ``ClassLabel`` -> its integer id; an integer column -> the position in ``task.labels``
    (as :func:`cda.data.label_names` reads it); a string column -> the name itself.

    Examples:
        >>> import datasets
        >>> from cda.config import TaskConfig
        >>> task = TaskConfig(segments={"t": "t"}, label_column="y", labels=["no", "yes"])
        >>> features = datasets.Features({"t": datasets.Value("string"), "y": datasets.ClassLabel(names=["no", "yes"])})
        >>> label_encoder(datasets.Dataset.from_dict({"t": ["a"], "y": [0]}, features=features), task)("yes")
        1
    """
    column = task.label_column
    feature = table.features[column]
    if isinstance(feature, datasets.ClassLabel):

        def encode(label: str) -> Any:
            if label not in feature.names:
                raise ExportError(f"Label {label!r} is not one of the ClassLabel names {feature.names} of {column!r}")
            return feature.str2int(label)

        return encode
    if isinstance(feature, datasets.Value) and feature.dtype.startswith(_INT_PREFIXES):
        return task.labels.index
    if isinstance(feature, datasets.Value) and feature.dtype in _STRING_DTYPES:
        return str
    raise ExportError(
        f"Label column {column!r} has type {feature}; cda writes labels into string, integer or ClassLabel columns"
    )


def _original_provenance(table: datasets.Dataset, task: TaskConfig) -> datasets.Dataset:
    n = len(table)
    labels = label_names(table, task)
    columns = {
        "cda_is_counterfactual": [False] * n,
        "cda_original_index": list(range(n)),
        "cda_source_label": labels,
        "cda_target_label": [""] * n,
        "cda_rationale_spans": ["[]"] * n,
        "cda_edited_segment": [""] * n,
        "cda_generator": [""] * n,
        "cda_prompt_template": [""] * n,
        "cda_checks": ["[]"] * n,
        "cda_label_prob": [None] * n,
        "cda_edit_distance": [None] * n,
        "cda_perplexity": [None] * n,
    }
    return datasets.Dataset.from_dict(columns, features=PROVENANCE_FEATURES)


def _counterfactual_row(original: dict, record: Record, plan: EditPlan, best: Candidate, task: TaskConfig, encode) -> dict:
    row = dict(original)
    # Unedited segments keep the user's text as written (task.replace only fed the models).
    row[task.segments[plan.segment]] = best.segments[plan.segment]
    row[task.label_column] = encode(plan.target_label)
    row.update(
        {
            "cda_is_counterfactual": True,
            "cda_original_index": record.index,
            "cda_source_label": record.label,
            "cda_target_label": plan.target_label,
            "cda_rationale_spans": _spans_json(record, plan.spans),
            "cda_edited_segment": plan.segment,
            "cda_generator": best.generator,
            "cda_prompt_template": best.prompt_template,
            "cda_checks": _checks_json(best),
            "cda_label_prob": best.label_prob,
            "cda_edit_distance": best.edit_distance,
            "cda_perplexity": best.perplexity,
        }
    )
    return row


def to_dataset(table: datasets.Dataset, records: list[Record], config: Config) -> datasets.Dataset:
    """The input rows unchanged, then one row per selected counterfactual, all with ``cda_`` columns.

    Counterfactual rows copy every column of their original row, except the edited
    segment's column (the counterfactual's text) and the label column (the target
    label, in the column's own type). They come after all originals, ordered by
    original index, then by plan.

    Args:
        table: the rows the records were made from (``record.index`` is a row position).
        records: records after the Filter stage.
        config: the run config (``task`` maps segments and the label to columns).

    Raises:
        ExportError: the table already has ``cda_`` columns, a segment column is not text,
            the label column's type cannot hold a label, or a record points past the table.

    Examples:
        >>> import datasets
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...                         "label_column": "Sentiment", "labels": ["Negative", "Positive"]}})
        >>> table = datasets.Dataset.from_dict({"Text": ["A dull film."], "Sentiment": ["Negative"]})
        >>> to_dataset(table, [], cfg).column_names[:3]
        ['Text', 'Sentiment', 'cda_is_counterfactual']
    """
    task = config.task
    _check_columns(table, task)
    encode = label_encoder(table, task)
    originals = datasets.concatenate_datasets([table, _original_provenance(table, task)], axis=1)
    chosen = [
        (record, plan, plan.best)
        for record in sorted(records, key=lambda r: r.index)
        for plan in record.plans
        if plan.best is not None
    ]
    if not chosen:
        return originals
    bad = sorted({r.index for r, _, _ in chosen if not 0 <= r.index < len(table)})
    if bad:
        raise ExportError(f"Records with index {bad[:5]} point past the table's {len(table)} rows: wrong table?")
    source_rows = table.select(sorted({r.index for r, _, _ in chosen})).to_list()
    by_index = dict(zip(sorted({r.index for r, _, _ in chosen}), source_rows))
    rows = [_counterfactual_row(by_index[r.index], r, p, best, task, encode) for r, p, best in chosen]
    counterfactuals = datasets.Dataset.from_list(rows, features=originals.features)
    return datasets.concatenate_datasets([originals, counterfactuals])


def audit_features(config: Config) -> datasets.Features:
    """Features of :func:`to_audit_dataset` (``segments`` is a struct with one field per segment).

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...                         "label_column": "Sentiment", "labels": ["Negative", "Positive"]}})
        >>> list(audit_features(cfg)["segments"])
        ['text']
    """
    string, number = datasets.Value("string"), datasets.Value("float64")
    return datasets.Features(
        {
            "original_index": datasets.Value("int64"),
            "segments": {name: string for name in config.task.segments},
            "source_label": string,
            "target_label": string,
            "edited_segment": string,
            "masked": string,
            "spans": string,
            "sample_index": datasets.Value("int64"),
            "raw": string,
            "prompt": string,
            "parsed": string,
            "error": string,
            "checks": string,
            "accepted": datasets.Value("bool"),
            "selected": datasets.Value("bool"),
            "drop_reason": string,
            "label_prob": number,
            "edit_distance": number,
            "perplexity": number,
            "generator": string,
            "prompt_template": string,
        }
    )


def to_audit_dataset(records: list[Record], config: Config) -> datasets.Dataset:
    """One row per generated candidate, accepted or not, with everything needed to see why.

    Works with zero candidates (an empty dataset with the same columns).

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...                         "label_column": "Sentiment", "labels": ["Negative", "Positive"]}})
        >>> to_audit_dataset([], cfg).column_names[:3]
        ['original_index', 'segments', 'source_label']
    """
    features = audit_features(config)
    rows = []
    for record in sorted(records, key=lambda r: r.index):
        segments = {name: record.segments.get(name) for name in config.task.segments}
        for plan in record.plans:
            spans = _spans_json(record, plan.spans)
            for position, c in enumerate(plan.candidates):
                rows.append(
                    {
                        "original_index": record.index,
                        "segments": segments,
                        "source_label": record.label,
                        "target_label": plan.target_label,
                        "edited_segment": plan.segment,
                        "masked": plan.masked,
                        "spans": spans,
                        "sample_index": c.sample_index,
                        "raw": c.raw,
                        "prompt": c.prompt,
                        "parsed": None if c.segments is None else c.segments.get(plan.segment),
                        "error": c.error,
                        "checks": _checks_json(c),
                        "accepted": c.accepted,
                        "selected": plan.selected == position,
                        "drop_reason": c.drop_reason,
                        "label_prob": c.label_prob,
                        "edit_distance": c.edit_distance,
                        "perplexity": c.perplexity,
                        "generator": c.generator,
                        "prompt_template": c.prompt_template,
                    }
                )
    if not rows:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(rows, features=features)
