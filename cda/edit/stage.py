"""The Edit stage: turns rationale spans into masked edit plans, one per target label."""

from __future__ import annotations

from cda.config import Config
from cda.edit.selection import select_records
from cda.edit.strategies import make_strategy
from cda.records import Record


class EditStage:
    """Builds :class:`~cda.records.EditPlan` objects from each record's spans, as the edit strategy
    (``edit.strategy``) plans them.

    Input columns: ``segments``, ``label``, ``spans`` (from Explain; may be empty).
    Output columns: ``plans`` (replaced, so rerunning the stage is idempotent). Only the records
    ``edit.select`` chooses get plans (:func:`cda.edit.selection.select_records`); the others get
    ``[]`` and stay in the dataset as originals.

    Args:
        config: the run config (``task`` for targets and editable segments, ``edit``
            for the blank format and span merging).

    Examples:
        >>> from cda.config import SelectConfig, config_from_dict
        >>> from cda.records import Record, Span
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}})
        >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative",
        ...            spans=[Span(segment="text", start=2, end=6)])
        >>> EditStage(cfg).process([r])[0].plans[0].masked
        'A [BLANK1] film.'

        Only the least confident record, with ``edit.select``:

        >>> cfg.edit.select = SelectConfig(order="least_confident", limit=1)
        >>> sure = Record(index=1, segments={"text": "A fine film."}, label="Positive", probs={"Positive": 0.9})
        >>> r.probs = {"Negative": 0.6}
        >>> [len(x.plans) for x in EditStage(cfg).process([r, sure])]
        [1, 0]
    """

    name = "edit"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.strategy = make_strategy(config)

    def load(self) -> None:
        """Nothing to load: editing is pure string work."""

    def process(self, records: list[Record]) -> list[Record]:
        """Replace each record's plans: the strategy's for a selected record, ``[]`` for the others."""
        chosen = {id(record) for record in select_records(records, self.config.edit.select, self.config.seed)}
        for record in records:
            record.plans = self.strategy.plans(record) if id(record) in chosen else []
        return records

    def unload(self) -> None:
        """Nothing to release."""
