"""A word-change prior from human counterfactual pairs: how often people change a word to flip a label.

Gradient attribution on a small classifier lands on whatever carries gradient ("summer",
"movie", "beer"); the words people change to flip a review are few and typical ("bad",
"boring", "waste", "loved"). Given pairs (``explain.prior.pairs``, e.g. Kaushik et al.'s train
pairs), the prior counts, per source label, how often each word of an original lies in a region
the human changed, over how often it occurs (smoothed toward the rate over all labels, then
toward the overall rate). Explain multiplies each word's attribution by ``rate ** weight``, so
the classifier still decides *where* in this text the label lives, and people's edits decide
which of those words are worth changing.

Examples:
    >>> prior = ChangePrior.from_counts({"Negative": {"bad": (9, 10), "film": (1, 20)}}, smoothing=0)
    >>> prior.rate("Bad", "Negative") > prior.rate("film", "Negative")
    True
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from cda.filter.tokens import tokens_with_offsets

if TYPE_CHECKING:
    from cda.cache import Cache
    from cda.config import Config

log = logging.getLogger(__name__)

Counts = dict[str, dict[str, tuple[int, int]]]  # label -> word -> (changed, seen)


class ChangePrior:
    """Per-label change rates of lower-cased words, smoothed (see the module docstring)."""

    def __init__(self, rates: dict[str, dict[str, float]], overall: dict[str, float], base: float) -> None:
        self.rates, self.overall, self.base = rates, overall, base

    @classmethod
    def from_counts(cls, counts: Counts, smoothing: float = 2.0) -> "ChangePrior":
        """Rates from ``(changed, seen)`` counts: ``(changed + m·r) / (seen + m)`` with ``m = smoothing``
        and ``r`` the word's rate over all labels (itself smoothed toward the rate of all words)."""
        changed_all: dict[str, int] = defaultdict(int)
        seen_all: dict[str, int] = defaultdict(int)
        for words in counts.values():
            for word, (c, s) in words.items():
                changed_all[word] += c
                seen_all[word] += s
        base = sum(changed_all.values()) / max(1, sum(seen_all.values()))
        overall = {w: (changed_all[w] + smoothing * base) / (seen_all[w] + smoothing) for w in seen_all}
        rates = {
            label: {w: (c + smoothing * overall[w]) / (s + smoothing) for w, (c, s) in words.items()}
            for label, words in counts.items()
        }
        return cls(rates, overall, base)

    def rate(self, word: str, label: str) -> float:
        """How often people changed ``word`` in a ``label`` text (the overall or base rate for a word
        not seen with that label)."""
        w = word.lower()
        return self.rates.get(label, {}).get(w, self.overall.get(w, self.base))

    def as_json(self) -> dict:
        return {"rates": self.rates, "overall": self.overall, "base": self.base}


def change_counts(pairs: list[tuple[str, str, str]]) -> Counts:
    """``(changed, seen)`` per source label and lower-cased word, from ``(original, revised, label)``.

    Examples:
        >>> change_counts([("a dull film", "a great film", "Negative")])["Negative"]["dull"]
        (1, 1)
    """
    from cda.generate.trained.alignment import changed_regions

    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for original, revised, label in pairs:
        regions = changed_regions(original, revised)
        for token in tokens_with_offsets(original):
            if not any(ch.isalnum() for ch in token.text):
                continue
            row = counts[label][token.text.lower()]
            row[1] += 1
            row[0] += any(r.start < token.end and token.start < r.end for r in regions)
    return {label: {w: (c, s) for w, (c, s) in words.items()} for label, words in counts.items()}


def prior_from_config(config: "Config", cache: "Cache") -> ChangePrior | None:
    """The prior ``explain.prior`` describes (counts cached by the pairs' content), or ``None``."""
    settings = config.explain.prior
    if settings is None:
        return None
    from cda.generate.pairs import read_pairs

    pairs = read_pairs(settings.pairs, config, "explain.prior.pairs")
    prior = prior_from_pairs([(o.segments[s], revised[s], o.label) for o, revised, _, s in pairs], cache, settings.smoothing)
    log.info("change prior: %d pairs from %s, base rate %.3f", len(pairs) // 2, settings.pairs.path, prior.base)
    return prior


def prior_from_pairs(triples: list[tuple[str, str, str]], cache: "Cache", smoothing: float = 2.0) -> ChangePrior:
    """The prior of ``(original, revised, label)`` pairs, its counts cached by the pairs' content
    (the Edit stage's lexicon and ``explain.prior`` share them when they read the same pairs)."""
    key = cache.key("change_prior", {"pairs": triples, "version": 1})
    counts = cache.get_json(key)
    if counts is None:
        counts = {label: {w: list(v) for w, v in words.items()} for label, words in change_counts(triples).items()}
        cache.put_json(key, counts)
    return ChangePrior.from_counts({l: {w: tuple(v) for w, v in ws.items()} for l, ws in counts.items()}, smoothing)
