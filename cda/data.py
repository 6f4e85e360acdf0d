"""Load the user's labelled data (TSV/CSV/JSONL/JSON, ``save_to_disk`` folder, Hub id)
and turn rows into :class:`~cda.records.Record` objects, with validation.

Examples:
    >>> from cda.config import DataConfig, TaskConfig
    >>> table = load_table(DataConfig(path="demo/imdb_sample.tsv"))
    >>> task = TaskConfig(segments={"text": "Text"}, label_column="Sentiment", labels=["Negative", "Positive"])
    >>> records = to_records(table, task)
    >>> records[0].label in task.labels
    True
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
from pathlib import Path

import datasets

from cda.config import DataConfig, TaskConfig
from cda.errors import CdaError
from cda.records import SENTENCE_SEPARATOR, Record
from cda.tasks import clean_text

log = logging.getLogger(__name__)

_SUFFIX_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json"}
_EXTRA = "\0extra"  # csv.DictReader's key for fields beyond the header
ALLOWED_FORMATS = ("a .tsv/.csv/.jsonl/.json file, a folder written by datasets' save_to_disk, hub:owner/name, "
                   "or a FEVEROUS-S / SciFact file with data.format feverous / scifact")


class DataError(CdaError, ValueError):
    """The input data does not fit the task; the message names the row/column and what is allowed."""


def detect_format(data: DataConfig) -> str:
    """The configured format, or the one implied by the path."""
    if data.format != "auto":
        return data.format
    if data.path.startswith("hub:"):
        return "hub"
    path = Path(data.path)
    if path.is_dir():
        return "disk"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"Cannot tell the format of {data.path!r}: expected {ALLOWED_FORMATS}, or set data.format.")
    return fmt


def sample_indices(n: int, k: int | None, seed: int) -> list[int]:
    """A seeded random ``k`` of the indices ``0..n-1``, in order (all of them when ``k`` is None or >= n).

    Files are often sorted by label, so a sample in file order, not the first ``k`` rows,
    is how every subset here (``data.sample``, training and evaluation limits) is taken.

    Examples:
        >>> sample_indices(5, 2, seed=0)
        [3, 4]
        >>> sample_indices(3, None, seed=0)
        [0, 1, 2]
    """
    if k is None or k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


def load_table(data: DataConfig) -> datasets.Dataset:
    """Read the rows exactly as the user wrote them (all columns kept, all as given).

    Raises:
        FileNotFoundError: the path does not exist.
        DataError: the format is unknown or the file cannot be parsed.
    """
    fmt = detect_format(data)
    if fmt != "hub" and not Path(data.path).exists():
        raise FileNotFoundError(f"Data file not found: {data.path} (data.path must be {ALLOWED_FORMATS})")
    if fmt in ("tsv", "csv"):
        table = datasets.Dataset.from_list(read_delimited(Path(data.path), "\t" if fmt == "tsv" else ",", data.strict_quoting))
    elif fmt in ("jsonl", "json"):
        _check_json(Path(data.path), fmt)
        table = _read(lambda: datasets.load_dataset("json", data_files=str(data.path), split="train"), data, fmt)
    elif fmt == "feverous":
        from cda.fact_data import FEVEROUS_SPLITS, read_feverous

        if data.split not in FEVEROUS_SPLITS:
            raise DataError(f"{data.path}: the feverous reader splits the file into {list(FEVEROUS_SPLITS)}; "
                            f"set data.split to one of them (got {data.split!r})")
        table = _pick_split(_read(lambda: read_feverous(data.path), data, fmt), data)
    elif fmt == "scifact":
        from cda.fact_data import read_scifact

        table = _read(lambda: read_scifact(data.path), data, fmt)
    elif fmt == "disk":
        table = _pick_split(_read(lambda: datasets.load_from_disk(data.path), data, fmt), data)
    else:
        table = _pick_split(_read(lambda: datasets.load_dataset(data.path.removeprefix("hub:")), data, fmt), data)
    bad = [c for c in table.column_names if c.startswith("cda_")]
    if bad:
        raise DataError(
            f"{data.path}: column(s) {bad} collide with the cda_* provenance columns cda adds; rename them"
        )
    if data.dedupe_on is not None:
        if data.dedupe_on not in table.column_names:
            raise DataError(f"data.dedupe_on column {data.dedupe_on!r} not in {table.column_names}")
        seen: set = set()
        keep = []
        for i, value in enumerate(table[data.dedupe_on]):
            if value not in seen:
                seen.add(value)
                keep.append(i)
        table = table.select(keep)
    if data.sample is not None and data.sample < len(table):
        table = table.select(sample_indices(len(table), data.sample, data.sample_seed))
    if data.limit is not None:
        table = table.select(range(min(data.limit, len(table))))
    return table


def _line_of(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1


def read_delimited(path: Path, delimiter: str, strict_quoting: bool = True) -> list[dict[str, str]]:
    r"""The rows of a TSV/CSV file as dicts of strings, checked line by line.

    Raises:
        DataError: the file is not UTF-8 (with the line of the first bad byte), has no rows,
            a row has more or fewer fields than the header (with its line), or, with
            ``strict_quoting``, a quoted cell swallowed whole rows (a stray ``"``: the cell
            holds line breaks and lines with as many delimiters as a row).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "x.tsv"
        >>> _ = path.write_text('Text\tLabel\n"Good film\tPositive\nBad film\tNegative\n')
        >>> read_delimited(path, "\t")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cda.data.DataError: .../x.tsv:2: a quoted cell runs over 1 more line(s) that look like rows ...
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}:{_line_of(raw, e.start)}: not UTF-8 text (byte 0x{raw[e.start]:02x}); re-save the file as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restkey=_EXTRA)
    header = reader.fieldnames or []
    rows: list[dict[str, str]] = []
    suspicious: list[int] = []
    start = 2
    for row in reader:
        end = reader.line_num
        if end > start:  # a quoted cell spans lines: legal, unless those lines look like rows of their own
            rowlike = [
                line for value in row.values() if isinstance(value, str) for line in str(value).split("\n")[1:]
                if line.count(delimiter) >= max(1, len(header) - 1)
            ]  # fmt: skip
            if rowlike and strict_quoting:
                raise DataError(
                    f"{path}:{start}: a quoted cell runs over {len(rowlike)} more line(s) that look like rows "
                    f"(lines {start}-{end}): a stray '\"' swallowed them. Fix the quote, or set "
                    "data.strict_quoting: false to read the file as it is"
                )
            if rowlike:
                suspicious.append(start)
        if _EXTRA in row or None in row.values():
            count = len(header) + len(row.get(_EXTRA, [])) - sum(v is None for k, v in row.items() if k != _EXTRA)
            raise DataError(
                f"{path}:{start}: {count} fields, but the header has {len(header)} ({', '.join(header)}); "
                f"a stray {'tab' if delimiter == chr(9) else 'comma'} or quote? Quote cells that contain one"
            )
        rows.append({k: v for k, v in row.items() if k != _EXTRA})
        start = end + 1
    if not header:
        raise DataError(f"{path} is empty: expected a header line and rows")
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    if suspicious:
        log.warning("%s: quoted cells spanning lines that look like rows at line(s) %s", path, suspicious[:10])
    return rows


def _check_json(path: Path, fmt: str) -> None:
    """Raise :class:`DataError` naming the line of the first record that is not a JSON object."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{_line_of(raw, e.start)}: not UTF-8 text; re-save the file as UTF-8") from None
    if fmt == "jsonl" or not text.lstrip().startswith("["):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno}); one object per line") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{number}: a JSON {type(value).__name__}, expected an object per line")
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise DataError(f"{path}: expected a JSON list of objects (or JSON lines)")


def _read(load, data: DataConfig, fmt: str):
    """``load()``, with a reader's failure turned into a :class:`DataError` that names the format."""
    try:
        return load()
    except (DataError, FileNotFoundError):
        raise
    except Exception as e:  # datasets raises many types for a file that is not what it should be
        raise DataError(
            f"{data.path} could not be read as {fmt} (data.format={data.format}): {type(e).__name__}: {e}".split("\n")[0]
        ) from None


def _pick_split(loaded: datasets.Dataset | datasets.DatasetDict, data: DataConfig) -> datasets.Dataset:
    if isinstance(loaded, datasets.Dataset):
        return loaded
    split = data.split or ("train" if "train" in loaded else None)
    if split not in loaded:
        raise DataError(f"{data.path} has splits {list(loaded)}; set data.split to one of them")
    return loaded[split]


def label_names(table: datasets.Dataset, task: TaskConfig) -> list[str]:
    """The label of every row as a string from ``task.labels``.

    Integer labels are mapped through the column's ``ClassLabel`` names, or else by
    position in ``task.labels``.
    """
    column = task.label_column
    feature = table.features[column]
    values = table[column]
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(v) for v in values]
    if isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")):
        mapping = ", ".join(f"{i}→{name}" for i, name in enumerate(task.labels))
        log.warning("label column %r holds integers: mapped by position in task.labels (%s)", column, mapping)
    return [task.labels[v] if isinstance(v, int) and 0 <= v < len(task.labels) else str(v).strip() for v in values]


def check_columns(table: datasets.Dataset, task: TaskConfig) -> None:
    """Raise :class:`DataError` if a configured column is missing."""
    needed = {**{f"task.segments.{k}": v for k, v in task.segments.items()}, "task.label_column": task.label_column}
    missing = {key: col for key, col in needed.items() if col not in table.column_names}
    if missing:
        detail = ", ".join(f"{key}={col!r}" for key, col in missing.items())
        raise DataError(f"Missing column(s) {detail}; the data has columns {table.column_names}")
    for key, col in needed.items():
        feature = table.features[col]
        text = is_text(feature) or (key != "task.label_column" and is_sentence_list(feature))
        integer = isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))
        if key == "task.label_column" and not (text or integer or isinstance(feature, datasets.ClassLabel)):
            raise DataError(f"Label column {col!r} ({key}) holds {_kind(feature)}; expected label names or integer ids")
        if key != "task.label_column" and not text:
            raise DataError(f"Text column {col!r} ({key}) holds {_kind(feature)}; expected text or a list of sentences")


def is_text(feature: object) -> bool:
    """A column of strings (or of nulls only)."""
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string", "null")


def is_sentence_list(feature: object) -> bool:
    """A column whose values are lists of strings (e.g. evidence sentences): a list segment.

    Examples:
        >>> is_sentence_list(datasets.Dataset.from_list([{"e": ["a", "b"]}]).features["e"])
        True
    """
    inner = getattr(feature, "feature", None)
    return isinstance(feature, (datasets.List, datasets.LargeList)) and is_text(inner)


def _kind(feature: object) -> str:
    """How a column's type reads in an error message."""
    if isinstance(feature, datasets.Value):
        return f"{feature.dtype} values"
    return f"{type(feature).__name__} values (lists or records)"


def to_records(table: datasets.Dataset, task: TaskConfig, on_invalid: str = "error") -> list[Record]:
    """Turn rows into records. ``index`` is the row's position in ``table``.

    A segment column of string lists (sentences) becomes one text with the sentences joined by
    :data:`~cda.records.SENTENCE_SEPARATOR` (a line break) and is named in
    ``record.list_segments``; :meth:`~cda.records.Record.locate` addresses a span in it as
    (segment, sentence, start, end), and the export writes it back as a list.

    Rows with an empty segment or a label outside ``task.labels`` raise
    :class:`DataError` naming the first bad rows; with ``on_invalid="skip"`` they are
    left out and logged (the caller counts them via ``len(table) - len(records)``).
    """
    check_columns(table, task)
    labels = label_names(table, task)
    columns = {name: table[col] for name, col in task.segments.items()}
    lists = [name for name, col in task.segments.items() if is_sentence_list(table.features[col])]
    records, problems = [], []
    for i, label in enumerate(labels):
        segments, broken = {}, []
        for name, col in columns.items():
            value = col[i]
            if name in lists:
                sentences = [clean_text(task, s or "") for s in value or []]
                broken += [name] if any(SENTENCE_SEPARATOR in s for s in sentences) else []
                segments[name] = SENTENCE_SEPARATOR.join(sentences)
            else:
                segments[name] = clean_text(task, "" if value is None else str(value))
        empty = [name for name, text in segments.items() if not text.strip()]
        if broken:
            problems.append(f"row {i}: a sentence of list segment(s) {broken} holds a line break; cda joins a list's "
                            "sentences with line breaks, so each sentence must be one line")
        elif label not in task.labels:
            problems.append(f"row {i}: label {label!r} is not in task.labels {task.labels}")
        elif empty:
            problems.append(f"row {i}: empty text in segment(s) {empty} (columns {[task.segments[e] for e in empty]})")
        else:
            records.append(Record(index=i, segments=segments, label=label, list_segments=lists))
    if problems and on_invalid == "error":
        shown = "\n  ".join(problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DataError(f"{len(problems)} invalid row(s):\n  {shown}{more}")
    for p in problems:
        log.warning("skipped %s", p)
    return records
