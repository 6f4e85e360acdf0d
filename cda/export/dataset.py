"""Records -> ``datasets.Dataset``: the augmented dataset and the audit of every candidate.

The augmented dataset is the user's table, untouched (same columns, values, order and
features, ``ClassLabel`` included), followed by one row per selected counterfactual, in
the order of the originals. Every row gets the ``cda_`` provenance columns of
:func:`provenance_columns`; the audit's columns are :func:`audit_columns`. The features, the
rows and the dataset card's column tables all come from these two lists. Nested provenance (spans, checks) is stored as JSON strings:
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
from dataclasses import dataclass, replace
from typing import Any, Callable

import datasets

from cda.config import Config, TaskConfig
from cda.data import check_columns, is_sentence_list, label_names
from cda.errors import CdaError
from cda.records import SENTENCE_SEPARATOR, Candidate, EditPlan, Record, Span
from cda.registry import checks as registered_checks

PREFIX = "cda_"


@dataclass(frozen=True)
class Source:
    """What a column's value is computed from: a candidate of a plan of a record."""

    record: Record
    plan: EditPlan
    candidate: Candidate
    position: int = 0


@dataclass(frozen=True)
class Column:
    """One column cda writes: its feature, what it means (for the card), its value per candidate.

    ``original`` gives the value on an input row, from its position and label name (provenance
    columns only).
    """

    name: str
    feature: Any
    meaning: str
    value: Callable[[Source], Any]
    original: Callable[[int, str], Any] = lambda position, label: None


_BOOL, _INT = datasets.Value("bool"), datasets.Value("int64")
_STRING, _FLOAT = datasets.Value("string"), datasets.Value("float64")
_SPANS = "JSON list of the rationale spans {segment, start, end, text, score}"
_CHECKS = "JSON list of the filter checks {name, passed, reason, value}"
_EDITS = ("JSON list of the edits made by rule (edit.strategy entity_swap: type is the entity's; lexicon: type lexicon) {segment, sentence, start, end, "
          "old, new, type}: offsets of each replaced occurrence in the original (in a list segment: in its sentence)")
_SENTENCES = "JSON list of the evidence sentences the verdict rests on, most salient first (entity_swap; else [])"


def _const(value: Any) -> Callable[[int, str], Any]:
    return lambda position, label: value


def measure_columns(config: Config) -> list[tuple[str, str]]:
    """``(column, meaning)`` of the values the filter measures: the built-in ``label_prob``,
    ``edit_distance`` and ``perplexity``, then the ``column`` of any other configured check.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...                         "label_column": "y", "labels": ["a", "b"]}})
        >>> [name for name, _ in measure_columns(cfg)]
        ['label_prob', 'edit_distance', 'perplexity']
    """
    meaning = {"label_prob": "", "edit_distance": "", "perplexity": ""}
    for name in ("label", "minimality", "fluency", *config.filter.checks):
        check = registered_checks.get(name)
        if check.column is not None and not meaning.get(check.column):
            meaning[check.column] = check.column_description
    return list(meaning.items())


def provenance_columns(config: Config) -> list[Column]:
    """The ``cda_`` columns on every row of the augmented dataset, in order."""
    columns = [
        Column("is_counterfactual", _BOOL, "true for a generated counterfactual, false for an input row",
               lambda s: True, _const(False)),
        Column("original_index", _INT, "position of the original row in this dataset (originals: their own position)",
               lambda s: s.record.index, lambda position, label: position),
        Column("source_label", _STRING, "label of the original row", lambda s: s.record.label,
               lambda position, label: label),
        Column("target_label", _STRING, "label the counterfactual was written toward (originals: empty)",
               lambda s: s.plan.target_label, _const("")),
        Column("rationale_spans", _STRING, f"{_SPANS}; character offsets into the original segment after "
               "task.replace; in a list segment, the sentence's index and offsets inside it (originals: [])",
               lambda s: _spans_json(s.record, s.plan.spans), _const("[]")),
        Column("edits", _STRING, f"{_EDITS} (originals: [])", lambda s: _edits_json(s.record, s.plan), _const("[]")),
        Column("rationale_sentences", _STRING, f"{_SENTENCES} (originals: [])",
               lambda s: json.dumps(s.plan.rationale_sentences), _const("[]")),
        Column("edited_segment", _STRING, "name of the segment the generator changed, several joined by commas "
               "(originals: empty)", lambda s: ",".join(s.plan.edited_segments), _const("")),
        Column("round", _INT, "the search round that wrote it (1: the first; originals: 0)", lambda s: s.plan.round,
               _const(0)),
        Column("generator", _STRING, "what wrote the counterfactual: engine:model for an LLM, rule:<strategy> or "
               "retrieved:demonstrations without one (originals: empty)",
               lambda s: s.candidate.generator, _const("")),
        Column("prompt_template", _STRING, "the prompt template used (originals: empty)",
               lambda s: s.candidate.prompt_template, _const("")),
        Column("checks", _STRING, f"{_CHECKS} it passed (originals: [])", lambda s: _checks_json(s.candidate),
               _const("[]")),
    ]
    columns += [
        Column(name, _FLOAT, f"{meaning} (null on originals and when not measured)", _measure(name))
        for name, meaning in measure_columns(config)
    ]
    return [replace(c, name=PREFIX + c.name) for c in columns]


def _measure(name: str) -> Callable[[Source], Any]:
    return lambda s: s.candidate.measures.get(name)


def audit_columns(config: Config) -> list[Column]:
    """The columns of the audit dataset (one row per generated candidate), in order."""
    c = lambda s: s.candidate  # noqa: E731
    return [
        Column("original_index", _INT, "position of the original row in the input", lambda s: s.record.index),
        Column("segments", {name: _STRING for name in config.task.segments},
               "the original's segments (after task.replace), one field per segment",
               lambda s: {name: s.record.segments.get(name) for name in config.task.segments}),
        Column("source_label", _STRING, "label of the original", lambda s: s.record.label),
        Column("target_label", _STRING, "label the candidate was written toward", lambda s: s.plan.target_label),
        Column("edited_segment", _STRING, "name of the segment(s) the generator changed, joined by commas",
               lambda s: ",".join(s.plan.edited_segments)),
        Column("masked", _STRING, "the edited segment with its rationale spans blanked out", lambda s: s.plan.masked),
        Column("spans", _STRING, _SPANS, lambda s: _spans_json(s.record, s.plan.spans)),
        Column("edits", _STRING, _EDITS, lambda s: _edits_json(s.record, s.plan)),
        Column("rationale_sentences", _STRING, _SENTENCES, lambda s: json.dumps(s.plan.rationale_sentences)),
        Column("round", _INT, "the search round of the candidate's plan (1: the first)", lambda s: s.plan.round),
        Column("sample_index", _INT, "which of the n samples for this prompt", lambda s: c(s).sample_index),
        Column("raw", _STRING, "the generator's raw output", lambda s: c(s).raw),
        Column("prompt", _STRING, "the rendered prompt", lambda s: c(s).prompt),
        Column("parsed", _STRING, "the edited segment(s) parsed from the output, several joined by line breaks "
               "(null when it could not be parsed)", lambda s: None if c(s).segments is None else s.plan.text_of(c(s).segments)),
        Column("error", _STRING, "why generation or parsing failed (null when it did not)", lambda s: c(s).error),
        Column("checks", _STRING, f"{_CHECKS} that ran", lambda s: _checks_json(c(s))),
        Column("accepted", _BOOL, "true when the candidate parsed and passed every check", lambda s: c(s).accepted),
        Column("selected", _BOOL, "true for the candidate that became the plan's counterfactual",
               lambda s: s.plan.selected == s.position),
        Column("drop_reason", _STRING, "first failed check, or parse/generation/unchecked (null when accepted)",
               lambda s: c(s).drop_reason),
        *(Column(name, _FLOAT, f"{meaning} (null when not measured)", _measure(name))
          for name, meaning in measure_columns(config)),
        Column("generator", _STRING, "what wrote the candidate (as the generator column of the dataset)", lambda s: c(s).generator),
        Column("prompt_template", _STRING, "the prompt template used", lambda s: c(s).prompt_template),
    ]


def provenance_features(config: Config) -> datasets.Features:
    """Features of the ``cda_`` columns of :func:`to_dataset`."""
    return datasets.Features({col.name: col.feature for col in provenance_columns(config)})


_STRING_DTYPES = {"string", "large_string"}
_INT_PREFIXES = ("int", "uint")


class ExportError(CdaError, ValueError):
    """The records cannot be written into the user's table; the message says why and what is allowed."""


def _where(record: Record, span: Span) -> dict:
    segment, sentence, start, end = record.locate(span)
    if sentence is None:
        return {"segment": segment, "start": start, "end": end}
    return {"segment": segment, "sentence": sentence, "start": start, "end": end}


def _spans_json(record: Record, spans: list[Span]) -> str:
    out = [{**_where(record, s), "text": s.text or record.span_text(s), "score": s.score} for s in spans]
    return json.dumps(out, ensure_ascii=False)


def _edits_json(record: Record, plan: EditPlan) -> str:
    out = [{**_where(record, span), "old": span.text, "new": sub.forms.get(span.text, sub.new), "type": sub.type}
           for sub in plan.substitutions for span in sub.spans]  # fmt: skip
    out += [{**_where(record, span), "old": span.text or record.span_text(span), "new": new.strip(), "type": "lexicon"}
            for span, new in zip(plan.spans, plan.replacements)]  # fmt: skip
    return json.dumps(out, ensure_ascii=False)


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
        if not (isinstance(feature, datasets.Value) and feature.dtype in _STRING_DTYPES) and not is_sentence_list(feature):
            raise ExportError(
                f"Segment column {column!r} has type {feature}; cda writes text into string columns and sentence "
                "lists into columns of string lists only"
            )


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


def _original_provenance(table: datasets.Dataset, config: Config) -> datasets.Dataset:
    labels = label_names(table, config.task)
    columns = provenance_columns(config)
    data = {col.name: [col.original(position, label) for position, label in enumerate(labels)] for col in columns}
    return datasets.Dataset.from_dict(data, features=datasets.Features({c.name: c.feature for c in columns}))


def _counterfactual_row(original: dict, source: Source, columns: list[Column], task: TaskConfig, encode) -> dict:
    row = dict(original)
    # Unedited segments keep the user's text as written (task.replace only fed the models).
    for name in source.plan.edited_segments:
        edited: str | list[str] = source.candidate.segments[name]
        if name in source.record.list_segments:  # back to the list of sentences it came from
            edited = edited.split(SENTENCE_SEPARATOR) if edited else []
        row[task.segments[name]] = edited
    row[task.label_column] = encode(source.plan.target_label)
    row.update({col.name: col.value(source) for col in columns})
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
    originals = datasets.concatenate_datasets([table, _original_provenance(table, config)], axis=1)
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
    columns = provenance_columns(config)
    rows = [_counterfactual_row(by_index[r.index], Source(r, p, best), columns, task, encode) for r, p, best in chosen]
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
    return datasets.Features({col.name: col.feature for col in audit_columns(config)})


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
    columns = audit_columns(config)
    features = datasets.Features({col.name: col.feature for col in columns})
    rows = [
        {col.name: col.value(Source(record, plan, candidate, position)) for col in columns}
        for record in sorted(records, key=lambda r: r.index)
        for plan in record.plans
        for position, candidate in enumerate(plan.candidates)
    ]
    if not rows:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(rows, features=features)
