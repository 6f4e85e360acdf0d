"""Edit strategies: how an edit is planned, which prompt asks for it, and how the answer is read.

A strategy is registered in :data:`cda.registry.edit_strategies` and chosen by
``edit.strategy`` (a name, or ``{name: ..., <its settings>}``). It owns the four things
that change together when the kind of edit changes:

* :meth:`EditStrategy.plans` -- the edit plans of a record (Edit stage);
* :attr:`EditStrategy.template` -- its default prompt template (``generate.template`` overrides);
* :meth:`EditStrategy.answer_regex` -- the shape a structured-output backend decodes under;
* :meth:`EditStrategy.parse` -- the generator's raw answer -> the record's segments after the edit.

Built in: ``infill`` (blank the rationale spans, ask for one replacement per blank),
``rewrite`` (show the spans, ask for the whole edited segment) and ``entity_swap`` (RACE, for
claim + evidence: :mod:`cda.edit.entity_swap`). A strategy may also make candidates by rule
(:meth:`EditStrategy.rule_candidates`), which skips the generator for that plan.

Examples:
    >>> from cda.config import config_from_dict
    >>> from cda.records import Record, Span
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
    ...     "label_column": "y", "labels": ["Negative", "Positive"]}})
    >>> strategy = make_strategy(cfg)
    >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative",
    ...            spans=[Span(segment="text", start=2, end=6)])
    >>> plan = strategy.plans(r)[0]
    >>> plan.masked, strategy.parse("[BLANK1]: lively", r, plan)
    ('A [BLANK1] film.', ({'text': 'A lively film.'}, None))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from cda.edit.plans import fill_blanks, make_plans, mask_segment, merge_spans
from cda.records import Candidate, EditPlan, Record
from cda.registry import ComponentSettings, edit_strategies

if TYPE_CHECKING:
    from cda.config import Config

#: The error a strategy that needs spans gives a plan without any (no LLM call is made).
NO_SPANS_ERROR = "no rationale spans to edit"


class EditStrategy:
    """Base class of edit strategies (subclass it, set the class attributes, implement :meth:`parse`).

    Args:
        settings: the validated ``edit.strategy`` section.
        config: the run config (``task``, ``edit.blank``, ``edit.merge_gap``).
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type[ComponentSettings]] = ComponentSettings
    #: Default prompt template: a name in ``prompts/`` without ``.jinja``.
    template: ClassVar[str] = ""
    #: A plan without rationale spans cannot be carried out (it becomes an error candidate).
    needs_spans: ClassVar[bool] = True
    #: What a generator trained by ``cda train-generator`` answers for this strategy: ``"infill"`` (one
    #: replacement per blank) or ``"rewrite"`` (the whole segment); ``None``: it cannot use one.
    trained_answers: ClassVar[str | None] = None

    def __init__(self, settings: ComponentSettings, config: "Config") -> None:
        self.settings = settings
        self.config = config

    def plans(self, record: Record) -> list[EditPlan]:
        """The edit plans of ``record``: by default one per target label and editable segment
        with spans (:func:`~cda.edit.plans.make_plans`)."""
        return make_plans(record, self.config.task, self.config.edit)

    def widen(self, record: Record, plan: EditPlan, round: int, add_spans: int) -> EditPlan | None:
        """The plan for search round ``round`` after ``plan`` got no accepted candidate, or ``None``
        when the strategy does not search (the (record, target) is then given up).

        By default the mask grows by the ``add_spans`` best of Explain's spare spans of the same
        segment that the plan does not cover yet (MiCE's wider masks); with none left, the same
        spans are asked for again (the round samples with another seed).

        Examples:
            >>> from cda.records import Span
            >>> r = Record(index=0, segments={"text": "A dull, slow film."}, label="Negative",
            ...            spare_spans=[Span(segment="text", start=8, end=12, text="slow")])
            >>> plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6)])
            >>> wider = make_strategy(cfg).widen(r, plan, round=2, add_spans=1)
            >>> wider.masked, wider.round
            ('A [BLANK1], [BLANK2] film.', 2)
        """
        if self.needs_spans and not plan.spans:
            return None
        text = record.segments[plan.segment]
        taken = list(plan.spans)
        for spare in record.spare_spans:
            if len(taken) - len(plan.spans) >= add_spans:
                break
            if spare.segment == plan.segment and not any(s.start < spare.end and spare.start < s.end for s in taken):
                taken.append(spare)
        spans = merge_spans(text, taken, self.config.edit.merge_gap)
        return EditPlan(
            target_label=plan.target_label,
            segment=plan.segment,
            spans=spans,
            masked=mask_segment(text, spans, self.config.edit.blank),
            round=round,
        )

    def rule_candidates(self, record: Record, plan: EditPlan) -> list[Candidate] | None:
        """Candidates the strategy makes itself, without the generator (an edit by rule, or the
        error of a plan that cannot be carried out), or ``None`` to ask the generator."""
        return None

    def answer_regex(self, plan: EditPlan) -> str | None:
        """A regular expression the whole answer must match on a structured-output backend, or ``None``."""
        return None

    def parse(self, raw: str, record: Record, plan: EditPlan) -> tuple[dict[str, str] | None, str | None]:
        """``(all segments after the edit, None)`` or ``(None, why the answer could not be read)``."""
        raise NotImplementedError


@edit_strategies.register("infill")
class InfillStrategy(EditStrategy):
    """Blank the rationale spans; the answer gives one replacement per blank, substituted into the
    *original* segment at the spans' offsets (text outside the spans is untouched by construction)."""

    template = "infill.v1"
    trained_answers = "infill"

    class Settings(ComponentSettings):
        # At most this many words per blank on a structured-output backend (None: up to 40 characters).
        max_words: int | None = Field(default=None, ge=1)

    def answer_regex(self, plan: EditPlan) -> str | None:
        from cda.generate.parsing import infill_answer_regex

        return infill_answer_regex(len(plan.spans), self.config.edit.blank, self.settings.max_words)  # type: ignore[attr-defined]

    def parse(self, raw: str, record: Record, plan: EditPlan) -> tuple[dict[str, str] | None, str | None]:
        from cda.generate.parsing import parse_infill

        if not plan.spans:
            return None, NO_SPANS_ERROR
        values, error = parse_infill(raw, len(plan.spans), self.config.edit.blank, masked=plan.masked)
        if values is not None:
            values, error = self.revise(record, plan, values)
        if values is None:
            return None, error
        return {**record.segments, plan.segment: fill_blanks(record.segments[plan.segment], plan.spans, values)}, None

    def revise(self, record: Record, plan: EditPlan, values: list[str]) -> tuple[list[str] | None, str | None]:
        """The generator's replacements as they go into the text (``(values, None)``), or ``(None,
        why they cannot)``: a subclass's hook between reading the answer and filling the blanks."""
        return values, None


@edit_strategies.register("rewrite")
class RewriteStrategy(EditStrategy):
    """Show the spans; the answer is the whole edited segment (the ``logic`` check keeps it local).

    With ``anchor: false`` the plans carry no spans: the generator chooses what to change (a
    generator trained on human rewrites, ``trained_rewrite.v1``), the ``logic`` check then holds
    only the other segments, and ``filter.checks.minimality`` bounds the edit; a search round
    asks the same plan again with another seed.

    Examples:
        >>> from cda.config import config_from_dict
        >>> from cda.records import Span
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "edit": {"strategy": {"name": "rewrite", "anchor": False}}})
        >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative", spans=[Span(segment="text", start=2, end=6)])
        >>> plan = make_strategy(cfg).plans(r)[0]
        >>> plan.spans, plan.masked, make_strategy(cfg).widen(r, plan, round=2, add_spans=1).round
        ([], 'A dull film.', 2)
    """

    template = "rewrite.v1"
    needs_spans = False
    trained_answers = "rewrite"

    class Settings(ComponentSettings):
        # Hold the edit to Explain's spans (false: the generator chooses what to change).
        anchor: bool = True

    def plans(self, record: Record) -> list[EditPlan]:
        plans = super().plans(record)
        if self.settings.anchor:  # type: ignore[attr-defined]
            return plans
        return [p.model_copy(update={"spans": [], "masked": record.segments[p.segment]}) for p in plans]

    def widen(self, record: Record, plan: EditPlan, round: int, add_spans: int) -> EditPlan | None:
        if self.settings.anchor:  # type: ignore[attr-defined]
            return super().widen(record, plan, round, add_spans)
        return EditPlan(target_label=plan.target_label, segment=plan.segment, masked=record.segments[plan.segment], round=round)

    def parse(self, raw: str, record: Record, plan: EditPlan) -> tuple[dict[str, str] | None, str | None]:
        from cda.generate.parsing import parse_rewrite

        edited, error = parse_rewrite(raw, plan.segment)
        if edited is None:
            return None, error
        return {**record.segments, plan.segment: edited}, None


def make_strategy(config: "Config") -> EditStrategy:
    """The strategy ``edit.strategy`` names, with its settings."""
    settings = config.edit.strategy
    return edit_strategies.get(settings.name)(settings, config)
