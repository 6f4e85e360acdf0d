"""Task spec helpers: which labels each example is flipped toward, which segment is edited.

Examples:
    >>> from cda.config import TaskConfig
    >>> task = TaskConfig(segments={"premise": "s1", "hypothesis": "s2"}, label_column="y",
    ...                   labels=["entailment", "neutral", "contradiction"])
    >>> target_labels(task, "neutral")
    ['entailment', 'contradiction']
    >>> editable_segments(task)
    ['hypothesis']
"""

from __future__ import annotations

from cda.config import TaskConfig


def target_labels(task: TaskConfig, source: str) -> list[str]:
    """Labels a counterfactual of a ``source``-labelled example should get.

    Binary: the other label. More labels: every other label, unless ``task.targets``
    maps the source label explicitly.
    """
    if task.targets is not None and source in task.targets:
        return list(task.targets[source])
    if task.targets is not None:
        return []
    return [label for label in task.labels if label != source]


def editable_segments(task: TaskConfig) -> list[str]:
    """Segments the generator may change: ``task.editable``, default the last segment."""
    return list(task.editable) if task.editable else [list(task.segments)[-1]]


def clean_text(task: TaskConfig, text: str) -> str:
    """Apply the task's ``replace`` map (e.g. IMDb's ``<br />`` to a space)."""
    for old, new in task.replace.items():
        text = text.replace(old, new)
    return text
