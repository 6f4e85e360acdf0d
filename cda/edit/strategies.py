"""Edit strategies: how an edit is planned, which prompt asks for it, and how the answer is read.

A strategy is registered in :data:`cda.registry.edit_strategies` and chosen by
``edit.strategy`` (a name, or ``{name: ..., <its settings>}``). It owns the four things
that change together when the kind of edit changes:

* :meth:`EditStrategy.plans` -- the edit plans of a record (Edit stage);
* :attr:`EditStrategy.template` -- its default prompt template (``generate.template`` overrides);
* :meth:`EditStrategy.answer_regex` -- the shape a structured-output backend decodes under;
* :meth:`EditStrategy.parse` -- the generator's raw answer -> the record's segments after the edit;
* :meth:`EditStrategy.parts` / :meth:`EditStrategy.join` -- the prompts a plan is asked in, when
  more than one (a trained generator's blanks a few at a time, a review a sentence at a time).

Built in: ``infill`` (blank the rationale spans, ask for one replacement per blank),
``rewrite`` (show the spans, ask for the whole edited segment, or for each sentence) and ``entity_swap`` (RACE, for
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

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from cda.edit.plans import fill_blanks, make_plans, mask_segment, merge_spans
from cda.records import Candidate, EditPlan, Record, Span
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

    def parts(self, record: Record, plan: EditPlan) -> list[tuple[Record, EditPlan]]:
        """The prompts ``plan`` is asked in, each as the ``(record, plan)`` it is rendered from: by
        default one, the plan itself. The ``k``-th samples of all parts make the plan's ``k``-th
        candidate, their answers joined by :meth:`join`."""
        return [(record, plan)]

    def join(self, raws: list[str], record: Record, plan: EditPlan, parts: list[tuple[Record, EditPlan]]) -> tuple[str, str | None]:
        """One answer for ``plan`` from one sample of each of its :meth:`parts`, or ``(the raw
        answers, why they cannot be joined)``; :meth:`parse` reads the joined answer."""
        return raws[0], None

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

    def parts(self, record: Record, plan: EditPlan) -> list[tuple[Record, EditPlan]]:
        """``plan`` itself, or, for a trained generator (``generator`` section) and a plan with more blanks
        than ``generator.max_blanks`` (the most a training example had), its spans in text order,
        ``max_blanks`` at a time, each part with the other spans left as they were (as a training
        example leaves a pair's other changed regions).

        Examples:
            >>> from cda.config import config_from_dict
            >>> from cda.records import Span
            >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
            ...     "label_column": "y", "labels": ["Negative", "Positive"]},
            ...     "generator": {"path": "adapter", "max_blanks": 2}})
            >>> r = Record(index=0, segments={"text": "Dull, slow and long."}, label="Negative")
            >>> spans = [Span(segment="text", start=0, end=4), Span(segment="text", start=6, end=10),
            ...          Span(segment="text", start=15, end=19)]
            >>> plan = EditPlan(target_label="Positive", segment="text", spans=spans, masked=mask_segment("Dull, slow and long.", spans))
            >>> [part.masked for _, part in make_strategy(cfg).parts(r, plan)]
            ['[BLANK1], [BLANK2] and long.', 'Dull, slow and [BLANK1].']
        """
        k = self.config.generator.max_blanks if self.config.generator is not None else None
        if k is None or len(plan.spans) <= k:
            return [(record, plan)]
        text = record.segments[plan.segment]
        return [
            (record, plan.model_copy(update={"spans": group, "masked": mask_segment(text, group, self.config.edit.blank)}))
            for group in (plan.spans[i : i + k] for i in range(0, len(plan.spans), k))
        ]

    def join(self, raws: list[str], record: Record, plan: EditPlan, parts: list[tuple[Record, EditPlan]]) -> tuple[str, str | None]:
        """The parts' answers as one, the blanks renumbered in text order.

        Examples:
            >>> from cda.config import config_from_dict
            >>> from cda.records import Span
            >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"t": "T"},
            ...     "label_column": "y", "labels": ["N", "P"]}})
            >>> r = Record(index=0, segments={"t": "a b c"}, label="N")
            >>> plan = EditPlan(target_label="P", segment="t")
            >>> parts = [(r, EditPlan(target_label="P", segment="t", spans=[Span(segment="t", start=0, end=1)] * 2)),
            ...          (r, EditPlan(target_label="P", segment="t", spans=[Span(segment="t", start=2, end=3)]))]
            >>> strategy = make_strategy(cfg)
            >>> strategy.join(["[BLANK1]: fun\\n[BLANK2]: fast", "[BLANK1]: short"], r, plan, parts)
            ('[BLANK1]: fun\\n[BLANK2]: fast\\n[BLANK3]: short', None)
            >>> strategy.join(["[BLANK1]: fun\\n[BLANK2]: fast", ""], r, plan, parts)[1]
            'part 2 of 2: empty output'
        """
        from cda.generate.parsing import parse_infill

        if len(parts) == 1:
            return raws[0], None
        blank = self.config.edit.blank
        values: list[str] = []
        for p, (raw, (_, part)) in enumerate(zip(raws, parts), start=1):
            found, error = parse_infill(raw, len(part.spans), blank, masked=part.masked)
            if found is None:
                return "\n\n".join(raws), f"part {p} of {len(parts)}: {error}"
            values += found
        return "\n".join(f"{blank.format(i=k)}: {v}" for k, v in enumerate(values, start=1)), None

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

    With ``unit: sentence`` a plan's spans are sentences (all of the segment's, or with ``anchor``
    those holding Explain's spans), each asked in a prompt of its own (:meth:`parts`) as if it were
    the whole segment, and the answers put back in place (:meth:`join`): a long review is rewritten
    sentence by sentence, as a generator trained on people's sentence pairs learnt to (it leaves a
    sentence that holds no sentiment as it was).

    Examples:
        >>> from cda.config import config_from_dict
        >>> from cda.records import Span
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "edit": {"strategy": {"name": "rewrite", "anchor": False}}})
        >>> r = Record(index=0, segments={"text": "A dull film. I saw it."}, label="Negative", spans=[Span(segment="text", start=2, end=6)])
        >>> plan = make_strategy(cfg).plans(r)[0]
        >>> plan.spans, plan.masked, make_strategy(cfg).widen(r, plan, round=2, add_spans=1).round
        ([], 'A dull film. I saw it.', 2)
        >>> cfg.edit.strategy.unit = "sentence"
        >>> strategy = make_strategy(cfg)
        >>> plan = strategy.plans(r)[0]
        >>> [part.segments["text"] for part, _ in strategy.parts(r, plan)]
        ['A dull film.', 'I saw it.']
        >>> raw, _ = strategy.join(["A fun film.", "I saw it."], r, plan, strategy.parts(r, plan))
        >>> strategy.parse(raw, r, plan)
        ({'text': 'A fun film. I saw it.'}, None)
    """

    template = "rewrite.v1"
    needs_spans = False

    class Settings(ComponentSettings):
        # Hold the edit to Explain's spans (false: the generator chooses what to change).
        anchor: bool = True
        # What one prompt rewrites: the whole segment, or one sentence (the answers are put back in
        # place; with anchor, only the sentences that hold Explain's spans are asked).
        unit: Literal["segment", "sentence"] = "segment"
        # unit: sentence: longer sentences are left as they were (a trained generator learnt from none longer).
        max_sentence_words: int = Field(default=40, ge=1)

    settings: Settings

    @property
    def trained_answers(self) -> str:  # type: ignore[override]
        """``"sentences"`` with ``unit: sentence``, else ``"rewrite"`` (see :attr:`EditStrategy.trained_answers`)."""
        return "sentences" if self.settings.unit == "sentence" else "rewrite"

    def plans(self, record: Record) -> list[EditPlan]:
        plans = super().plans(record)
        if self.settings.unit == "sentence":
            return [self.sentence_plan(record, p) for p in plans]
        if self.settings.anchor:
            return plans
        return [p.model_copy(update={"spans": [], "masked": record.segments[p.segment]}) for p in plans]

    def sentence_plan(self, record: Record, plan: EditPlan) -> EditPlan:
        """``plan`` with its segment's sentences as its spans: those of at most ``max_sentence_words``
        words, and with ``anchor`` only those that overlap one of ``plan``'s spans."""
        from cda.fact_data import sentence_spans

        text = record.segments[plan.segment]
        sentences = [
            Span(segment=plan.segment, start=start, end=end, text=text[start:end])
            for start, end in sentence_spans(text)
            if len(text[start:end].split()) <= self.settings.max_sentence_words
        ]
        if self.settings.anchor:
            sentences = [s for s in sentences if any(s.start < span.end and span.start < s.end for span in plan.spans)]
        return plan.model_copy(update={"spans": sentences, "masked": text})

    def widen(self, record: Record, plan: EditPlan, round: int, add_spans: int) -> EditPlan | None:
        if self.settings.unit == "sentence":
            return EditPlan(target_label=plan.target_label, segment=plan.segment, spans=plan.spans, masked=plan.masked, round=round)
        if self.settings.anchor:
            return super().widen(record, plan, round, add_spans)
        return EditPlan(target_label=plan.target_label, segment=plan.segment, masked=record.segments[plan.segment], round=round)

    def rule_candidates(self, record: Record, plan: EditPlan) -> list[Candidate] | None:
        if self.settings.unit == "sentence" and not plan.spans:
            words = self.settings.max_sentence_words
            held = " that holds a rationale span" if self.settings.anchor else ""
            return [Candidate(error=f"no sentence of at most {words} words{held} to rewrite")]
        return None

    def parts(self, record: Record, plan: EditPlan) -> list[tuple[Record, EditPlan]]:
        """Per sentence (``unit: sentence``): the record with that sentence as the whole segment."""
        if self.settings.unit != "sentence":
            return [(record, plan)]
        return [
            (
                record.model_copy(update={"segments": {**record.segments, plan.segment: span.text}}),
                EditPlan(target_label=plan.target_label, segment=plan.segment, masked=span.text, round=plan.round),
            )
            for span in plan.spans
        ]

    def join(self, raws: list[str], record: Record, plan: EditPlan, parts: list[tuple[Record, EditPlan]]) -> tuple[str, str | None]:
        """Per sentence: the segment with every sentence replaced by its rewrite."""
        from cda.generate.parsing import parse_rewrite

        if self.settings.unit != "sentence":
            return raws[0], None
        rewrites = []
        for p, raw in enumerate(raws, start=1):
            rewrite, error = parse_rewrite(raw, plan.segment)
            if rewrite is None:
                return "\n\n".join(raws), f"sentence {p} of {len(raws)}: {error}"
            rewrites.append(" ".join(rewrite.split()))
        return fill_blanks(record.segments[plan.segment], plan.spans, rewrites), None

    def parse(self, raw: str, record: Record, plan: EditPlan) -> tuple[dict[str, str] | None, str | None]:
        from cda.generate.parsing import parse_rewrite

        if self.settings.unit == "sentence":
            return {**record.segments, plan.segment: raw}, None  # joined from the parsed sentences
        edited, error = parse_rewrite(raw, plan.segment)
        if edited is None:
            return None, error
        return {**record.segments, plan.segment: edited}, None


def make_strategy(config: "Config") -> EditStrategy:
    """The strategy ``edit.strategy`` names, with its settings."""
    settings = config.edit.strategy
    return edit_strategies.get(settings.name)(settings, config)
