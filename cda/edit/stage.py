"""The Edit stage: turns rationale spans into masked edit plans, one per target label."""

from __future__ import annotations

from cda.config import Config
from cda.edit.strategies import make_strategy
from cda.records import Record


class EditStage:
    """Builds :class:`~cda.records.EditPlan` objects from each record's spans, as the edit strategy
    (``edit.strategy``) plans them.

    Input columns: ``segments``, ``label``, ``spans`` (from Explain; may be empty).
    Output columns: ``plans`` (replaced, so rerunning the stage is idempotent).

    Args:
        config: the run config (``task`` for targets and editable segments, ``edit``
            for the blank format and span merging).

    Examples:
        >>> from cda.config import config_from_dict
        >>> from cda.records import Record, Span
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}})
        >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative",
        ...            spans=[Span(segment="text", start=2, end=6)])
        >>> EditStage(cfg).process([r])[0].plans[0].masked
        'A [BLANK1] film.'
    """

    name = "edit"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.strategy = make_strategy(config)

    def load(self) -> None:
        """Nothing to load: editing is pure string work."""

    def process(self, records: list[Record]) -> list[Record]:
        for record in records:
            record.plans = self.strategy.plans(record)
        return records

    def unload(self) -> None:
        """Nothing to release."""
