"""Sentence consistency: every sentence of the edited segment must read as the target label.

The ``label`` check reads the whole counterfactual, and a classifier is sure of a review once its
strongest sentiment words changed, so it passes "this video is 100% wonderful. besides the brain
cell killing acting and plot, it's way too long. ... just absolutely great.": a row some of whose
sentences still say the original's label, which a reader does not take for a flip. This check
reads each sentence of the edited segment alone (spaCy's rule-based sentencizer; the other
segments as they are, so an NLI hypothesis is still read against its premise) and fails the
candidate when the sentence that reads least as the target has ``P(target) < min_prob``. Its
value, that weakest probability, is the ``weakest_sentence_prob`` column: sort by it to read the
doubtful rows first, or set ``min_prob: 0`` to measure without dropping anything.

A sentence read alone is short, and a neutral one ("I saw it in '93") can go either way: on the
Kaushik IMDb dev reviews half of people's counterfactuals have a sentence below 0.1, and read
blind, rows above and below that read alike (README, "Filter checks"). It is off by default.

Examples:
    >>> class Lexical:  # P(Positive) grows with the positive words of the text
    ...     labels, name = ["Negative", "Positive"], "lexical"
    ...     def predict_proba(self, inputs):
    ...         score = lambda t: 0.9 if "great" in t else 0.2 if "dull" in t else 0.5
    ...         return [{"Negative": 1 - score(i["text"]), "Positive": score(i["text"])} for i in inputs]
    >>> weakest_sentences(Lexical(), [({"text": "A great cast. A dull plot."}, ["text"], "Positive")])
    [(0.2, 'A dull plot.')]
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from pydantic import Field

from cda.fact_data import sentences_of
from cda.filter.checks import CheckItem, FilterCheck
from cda.protocols import Classifier
from cda.records import Check
from cda.registry import ComponentSettings, checks

NAME = "sentences"


def weakest_sentences(
    classifier: Classifier, items: Sequence[tuple[dict[str, str], Sequence[str], str]]
) -> list[tuple[float, str]]:
    """For each ``(segments, edited segment names, target label)``: the least ``P(target)`` over the
    sentences of the edited segments, each read alone with the other segments as they are, and
    that sentence. One classifier call for the distinct inputs of all items (the sentences an
    edit left alone recur across a plan's samples).

    An edited segment with no sentence (empty) is read whole.
    """
    inputs: list[dict[str, str]] = []
    owners: list[tuple[int, str]] = []
    for number, (segments, edited, _) in enumerate(items):
        for name in edited:
            for sentence in sentences_of(segments.get(name, "")) or [segments.get(name, "")]:
                inputs.append({**segments, name: sentence})
                owners.append((number, name))
    distinct = {tuple(sorted(given.items())): given for given in inputs}
    read = classifier.predict_proba(list(distinct.values())) if distinct else []
    if len(read) != len(distinct):
        raise RuntimeError(f"Classifier {classifier.name!r} returned {len(read)} predictions for {len(distinct)} inputs")
    by_input = dict(zip(distinct, read))
    probs = [by_input[tuple(sorted(given.items()))] for given in inputs]
    weakest: dict[int, tuple[float, str]] = {}
    for (number, name), given, prob in zip(owners, inputs, probs):
        p = float(prob[items[number][2]])
        if number not in weakest or p < weakest[number][0]:
            weakest[number] = (p, given[name])
    return [weakest.get(number, (1.0, "")) for number in range(len(items))]


@checks.register(NAME)
class SentencesCheck(FilterCheck):
    """The ``sentences`` check (off by default): see the module docstring.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]},
        ...     "filter": {"checks": {"label": {}, "sentences": {"min_prob": 0.6}}}})
        >>> cfg.filter.checks["sentences"].min_prob
        0.6
    """

    class Settings(ComponentSettings):
        #: The least P(target) the weakest sentence must reach (0: measure only, drop nothing).
        min_prob: float = Field(default=0.5, ge=0, le=1)

    cost = 11
    needs = frozenset({"classifier"})
    column = "weakest_sentence_prob"
    column_description = ("classifier probability of the target label for the edited segment's sentence that "
                          "reads least as the target, each sentence read alone")
    fails_when = "a sentence of the edited segment, read alone, is below the target probability (filter.checks.sentences.min_prob)"

    def run(self, items: list[CheckItem]) -> list[Check]:
        assert self.context.classifier is not None
        min_prob: float = self.settings.min_prob  # type: ignore[attr-defined]
        found = weakest_sentences(self.context.classifier, [
            (item.candidate.segments or {}, item.plan.edited_segments, item.plan.target_label) for item in items
        ])  # fmt: skip
        out = []
        for item, (p, sentence) in zip(items, found):
            target = item.plan.target_label
            passed = p >= min_prob
            shown = textwrap.shorten(sentence, 80, placeholder=" …")
            reason = "" if passed else f"the sentence {shown!r} reads P({target})={p:.3f}, below {min_prob:.3f}"
            out.append(Check(name=self.name, passed=passed, reason=reason, value=p))
        return out
