"""Reports as plain data, written as ``report.md`` and ``report.html`` (Jinja templates),
plus the matplotlib figures and the highlighted edits they show.

``cda evaluate`` and ``cda experiment`` both build a :class:`Report` (sections of text,
tables, figures and code) and call :func:`write_report`, so their reports look alike.
A table cell may be a :class:`Marked` text: its highlighted parts become ``**bold**``
in markdown and ``<mark>`` in HTML.

Examples:
    >>> report = Report("Demo", sections=[Section("Numbers", [Table(["metric", "value"], [["flip rate", 0.5]])])])
    >>> paths = write_report(report, tmp_dir / "report")
    >>> sorted(p.name for p in paths)
    ['report.html', 'report.md']
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, Union

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Marked:
    """Text whose parts are flagged: ``[("It was ", False), ("great", True)]``."""

    parts: list[tuple[str, bool]]

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.parts)


Cell = Union[str, int, float, None, Marked]


@dataclass
class Text:
    text: str
    kind: str = "text"


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    kind: str = "table"


@dataclass
class Figure:
    """An image file next to the report (``path`` is relative to the report's folder)."""

    path: str
    caption: str
    kind: str = "figure"


@dataclass
class Code:
    text: str
    language: str = ""
    kind: str = "code"


Block = Union[Text, Table, Figure, Code]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)


_SPACES = re.compile(r"\s+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _md(text: object) -> str:
    """Escape markdown syntax so user text shows as written."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def format_number(value: object) -> str:
    """Floats with 3 significant decimals, ``None`` as an en dash, the rest as ``str``.

    Examples:
        >>> format_number(0.123456), format_number(None), format_number(12)
        ('0.123', '–', '12')
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Marked):
        out = []
        for text, marked in cell.parts:
            escaped = _md(_SPACES.sub(" ", text))
            # Bold markers must hug the text, so surrounding spaces stay outside them.
            core = escaped.strip()
            if marked and core:
                lead = " " if escaped[:1] == " " else ""
                trail = " " if escaped[-1:] == " " else ""
                out.append(f"{lead}**{core}**{trail}")
            else:
                out.append(escaped)
        return "".join(out).strip()
    return _md(_SPACES.sub(" ", format_number(cell)).strip())


def _html_cell(cell: Cell) -> str:
    from markupsafe import Markup

    if isinstance(cell, Marked):
        return Markup(
            "".join(f"<mark>{html.escape(t)}</mark>" if marked else html.escape(t) for t, marked in cell.parts)
        )
    return format_number(cell)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.jinja",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = _md
    env.filters["md_cell"] = _md_cell
    env.filters["html_cell"] = _html_cell
    return env


def write_report(report: Report, output_dir: str | Path) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into ``output_dir``; return both paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    paths = []
    for name in ("report.md", "report.html"):
        text = env.get_template(f"{name}.jinja").render(report=report)
        # Collapse the blank lines the block tags leave behind.
        text = re.sub(r"\n{3,}", "\n\n", text)
        path = output_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def highlight_edits(original: str, edited: str, context: int = 8) -> tuple[Marked, Marked]:
    """The original with removed tokens flagged and the edit with new tokens flagged.

    Tokens are spaCy's (the ones minimality counts); runs of unchanged text longer than
    ``2 * context`` tokens are shortened to ``…`` so long reviews stay readable.

    Examples:
        >>> before, after = highlight_edits("It was a dull film.", "It was a great film.")
        >>> [t for t, m in after.parts if m]
        ['great']
    """
    from rapidfuzz.distance import Levenshtein

    from cda.filter.tokens import tokens_with_offsets

    a, b = tokens_with_offsets(original), tokens_with_offsets(edited)
    changed_a: set[int] = set()
    changed_b: set[int] = set()
    for op in Levenshtein.opcodes([t.text for t in a], [t.text for t in b]):
        if op.tag == "equal":
            continue
        changed_a.update(range(op.src_start, op.src_end))
        changed_b.update(range(op.dest_start, op.dest_end))
    return _marked(original, a, changed_a, context), _marked(edited, b, changed_b, context)


def _marked(text: str, tokens: Sequence, changed: set[int], context: int) -> Marked:
    if not tokens:
        return Marked([(text, False)])
    keep = {i for c in changed for i in range(c - context, c + context + 1)} if changed else set(range(2 * context))
    parts: list[tuple[str, bool]] = []
    skipping = False
    for i, token in enumerate(tokens):
        if i not in keep:
            if not skipping:
                parts.append(("… ", False))
                skipping = True
            continue
        skipping = False
        end = tokens[i + 1].start if i + 1 < len(tokens) else len(text)
        chunk = text[token.start : end]
        flag = i in changed
        # The space after a changed token is marked only inside a run of changed tokens.
        body, space = chunk.rstrip(), chunk[len(chunk.rstrip()) :]
        for piece, is_marked in ((body, flag), (space, flag and i + 1 in changed)):
            if not piece:
                continue
            if parts and parts[-1][1] == is_marked:
                parts[-1] = (parts[-1][0] + piece, is_marked)
            else:
                parts.append((piece, is_marked))
    return Marked(parts)


# Figures -----------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("Report figures need matplotlib: pip install 'cda[eval]'") from None
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def histogram(
    series: Mapping[str, Sequence[float]], path: str | Path, title: str, xlabel: str, bins: int = 20,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Overlaid histograms, one per named series (empty series are left out)."""
    return histogram_panels({title: series}, path, xlabel, bins=bins, value_range=value_range)


def histogram_panels(
    panels: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, xlabel: str, bins: int = 20,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Side-by-side panels (one per title), each with overlaid histograms of its named series."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.2 * max(1, len(panels)), 3.6), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels.items()):
        data = {name: list(values) for name, values in series.items() if len(values)}
        if data:
            lo = value_range[0] if value_range else min(min(v) for v in data.values())
            hi = value_range[1] if value_range else max(max(v) for v in data.values())
            if hi <= lo:
                hi = lo + 1.0
            for name, values in data.items():
                ax.hist(values, bins=bins, range=(lo, hi), alpha=0.55, label=f"{name} (n={len(values)})")
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
    return _save(fig, path, plt)


def fate_order(category: str) -> tuple[bool, bool, str]:
    """Sort key for candidate fates: selected, then accepted, then drop reasons alphabetically.

    Examples:
        >>> sorted(["dropped: label", "selected", "accepted, not selected"], key=fate_order)
        ['selected', 'accepted, not selected', 'dropped: label']
    """
    return (not category.startswith("selected"), not category.startswith("accepted"), category)


def stacked_bars(counts: Mapping[str, Mapping[str, int]], path: str | Path, title: str, ylabel: str = "count") -> Path:
    """One bar per group (e.g. label pair), stacked by category (e.g. drop reason)."""
    plt = _pyplot()
    groups = list(counts)
    categories = sorted({c for per in counts.values() for c in per}, key=fate_order)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(groups) + 2), 3.8))
    bottom = [0] * len(groups)
    for category in categories:
        values = [counts[g].get(category, 0) for g in groups]
        ax.bar(groups, values, bottom=bottom, label=category)
        bottom = [b + v for b, v in zip(bottom, values)]
    if categories:
        ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return _save(fig, path, plt)


def grouped_bars(
    means: Mapping[str, Mapping[str, float]], errors: Mapping[str, Mapping[str, float]], path: str | Path,
    title: str, ylabel: str,
) -> Path:
    """Bars per group (x axis) and series (colour), with error bars: ``means[series][group]``."""
    plt = _pyplot()
    series = list(means)
    groups = list(dict.fromkeys(g for s in series for g in means[s]))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(groups) + 2), 3.8))
    for k, name in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ys = [means[name].get(g, float("nan")) for g in groups]
        es = [errors.get(name, {}).get(g, 0.0) for g in groups]
        ax.bar(xs, ys, width=width, yerr=es, capsize=3, label=name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return _save(fig, path, plt)


def _save(fig, path: str | Path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
