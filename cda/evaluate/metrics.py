"""Counterfactual quality metrics: validity, minimality, fluency, diversity, closeness.

Each metric is a small pure function over texts or judge outputs, so it can be
checked against hand-computed values; :func:`aggregate` turns per-counterfactual
rows into the overall and per source→target numbers the report shows.

* **validity** — :func:`judge_flips`: does a judge predict the target label?
* **minimality** — :func:`edit_distances`: normalized token Levenshtein (spaCy tokens,
  rapidfuzz; :func:`cda.filter.minimality.token_edit_distance`), as MiCE and CREST report it.
* **fluency** — :func:`perplexity_ratios`: counterfactual perplexity over the original's.
* **diversity** — :func:`self_bleu`: mean BLEU of each candidate against the other
  candidates of the same original (Polyjuice); lower is more diverse.
* **closeness** — :func:`bleu`: BLEU of one text against reference texts (sacrebleu,
  sentence level, 0–100); :func:`changed_word_overlap`: which of the original's words both
  cda and the human changed (does cda change the words people change, and all of them?).

Examples:
    >>> round(bleu("a b c d", ["a b c e"]), 2)
    59.46
    >>> round(self_bleu(["a b c d", "a b c e"]), 2)
    59.46
    >>> perplexity_ratios([20.0, None], [10.0, 5.0])
    [2.0, None]
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from cda.protocols import Classifier


@dataclass
class Judgement:
    """What one judge says about one counterfactual."""

    predicted: str
    target_prob: float
    flipped: bool


def judge_flips(probs: Sequence[Mapping[str, float]], targets: Sequence[str]) -> list[Judgement]:
    """Whether the judge's most probable label is the target label, per counterfactual.

    Args:
        probs: the judge's probabilities of every label, one mapping per counterfactual.
        targets: the label each counterfactual should have.

    Examples:
        >>> [j.flipped for j in judge_flips([{"Neg": 0.2, "Pos": 0.8}, {"Neg": 0.6, "Pos": 0.4}], ["Pos", "Pos"])]
        [True, False]
    """
    if len(probs) != len(targets):
        raise ValueError(f"judge_flips got {len(probs)} predictions for {len(targets)} targets")
    out = []
    for p, target in zip(probs, targets):
        if target not in p:
            raise ValueError(f"Target label {target!r} is not among the judge's labels {sorted(p)}")
        predicted = max(p, key=p.__getitem__)
        out.append(Judgement(predicted=predicted, target_prob=float(p[target]), flipped=predicted == target))
    return out


def judge(classifier: Classifier, inputs: Sequence[dict[str, str]], targets: Sequence[str], batch_size: int = 32) -> list[Judgement]:
    """Run ``classifier`` over ``inputs`` in batches and judge each against its target label."""
    probs: list[dict[str, float]] = []
    for start in range(0, len(inputs), batch_size):
        probs.extend(classifier.predict_proba(list(inputs[start : start + batch_size])))
    return judge_flips(probs, targets)


def flip_rate(judgements: Iterable[Judgement]) -> float | None:
    """Fraction of counterfactuals whose judged label is the target (``None`` for none).

    Examples:
        >>> flip_rate([Judgement("Pos", 0.8, True), Judgement("Neg", 0.4, False)])
        0.5
    """
    flags = [j.flipped for j in judgements]
    return sum(flags) / len(flags) if flags else None


def bleu(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence-level BLEU (sacrebleu defaults: 13a tokens, exponential smoothing), 0–100.

    Examples:
        >>> bleu("the film was good", ["the film was good"])
        100.0
    """
    import sacrebleu

    if not references:
        raise ValueError("bleu needs at least one reference text")
    # sacrebleu returns 100.00000000000004 for identical texts: round off the float noise.
    return round(sacrebleu.sentence_bleu(hypothesis, list(references)).score, 10)


def self_bleu(texts: Sequence[str]) -> float | None:
    """Mean BLEU of each text against all the others (``None`` with fewer than two texts).

    Examples:
        >>> self_bleu(["only one"]) is None
        True
    """
    texts = list(texts)
    if len(texts) < 2:
        return None
    scores = [bleu(text, texts[:i] + texts[i + 1 :]) for i, text in enumerate(texts)]
    return sum(scores) / len(scores)


def edit_distances(
    pairs: Iterable[tuple[str, str]], distance: Callable[[str, str], float] | None = None
) -> list[float]:
    """Normalized token edit distance of each ``(original, counterfactual)`` pair.

    ``distance`` defaults to :func:`cda.filter.minimality.token_edit_distance` (spaCy
    tokens, rapidfuzz Levenshtein, normalized to 0–1), the same measure the filter used.
    """
    if distance is None:
        from cda.filter.minimality import token_edit_distance

        distance = token_edit_distance
    return [float(distance(a, b)) for a, b in pairs]


def changed_words(original: str, edited: str) -> set[int]:
    """Indices of the original's word tokens (spaCy tokens with a letter or digit) that the edit
    replaced or deleted; an insertion counts the word after it (as
    :func:`cda.generate.trained.alignment.changed_regions` aligns them).

    Examples:
        >>> sorted(changed_words("A dull , slow film .", "A great , slow film !"))
        [1]
    """
    from cda.filter.tokens import tokens_with_offsets
    from cda.generate.trained.alignment import changed_regions

    regions = changed_regions(original, edited)
    return {
        i for i, t in enumerate(tokens_with_offsets(original))
        if any(ch.isalnum() for ch in t.text) and any(t.start < r.end and r.start < t.end for r in regions)
    }  # fmt: skip


def changed_word_overlap(original: str, edited: str, reference: str) -> tuple[float | None, float | None]:
    """``(precision, recall)`` of the words ``edited`` changed against those ``reference`` (the
    human counterfactual of the same original) changed: precision, the share of cda's changed
    words the human changed too; recall, the share of the human's that cda changed. ``None``
    where a side changed no word.

    Examples:
        >>> changed_word_overlap("A dull , slow film .", "A great , slow film .", "A great , quick film .")
        (1.0, 0.5)
    """
    ours, theirs = changed_words(original, edited), changed_words(original, reference)
    both = len(ours & theirs)
    return (both / len(ours) if ours else None, both / len(theirs) if theirs else None)


def perplexity_ratios(counterfactual: Sequence[float | None], original: Sequence[float | None]) -> list[float | None]:
    """``counterfactual / original`` perplexity, pairwise; ``None`` where either is missing or 0."""
    if len(counterfactual) != len(original):
        raise ValueError(f"perplexity_ratios got {len(counterfactual)} counterfactual and {len(original)} original values")
    return [c / o if c is not None and o else None for c, o in zip(counterfactual, original)]


def summarize(values: Iterable[float | bool | None]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``median`` and ``std`` (sample) of the values that are not ``None``.

    Booleans count as 0/1, so the mean of flip flags is the flip rate.

    Examples:
        >>> summarize([1.0, 2.0, None, 6.0])
        {'n': 3, 'mean': 3.0, 'median': 2.0, 'std': 2.6458}
    """
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not xs:
        return {"n": 0, "mean": None, "median": None, "std": None}
    std = round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0
    return {"n": len(xs), "mean": round(statistics.fmean(xs), 4), "median": round(statistics.median(xs), 4), "std": std}


def pair_name(source: str, target: str) -> str:
    """The label-pair key used in reports: ``"Negative→Positive"``."""
    return f"{source}→{target}"


def aggregate(rows: Sequence[Mapping[str, object]], fields: Sequence[str]) -> dict[str, object]:
    """Summaries of ``fields`` over all rows and per ``source→target`` label pair.

    Each row needs ``source`` and ``target`` keys; a field missing from a row counts as
    missing (``None``), not as zero.

    Examples:
        >>> rows = [{"source": "Neg", "target": "Pos", "flipped": True},
        ...         {"source": "Pos", "target": "Neg", "flipped": False}]
        >>> agg = aggregate(rows, ["flipped"])
        >>> agg["overall"]["flipped"]["mean"], agg["by_pair"]["Neg→Pos"]["flipped"]["mean"]
        (0.5, 1.0)
    """
    groups: dict[str, list[Mapping[str, object]]] = {}
    for row in rows:
        groups.setdefault(pair_name(str(row["source"]), str(row["target"])), []).append(row)

    def block(members: Sequence[Mapping[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {"count": len(members)}
        for name in fields:
            out[name] = summarize(m.get(name) for m in members)  # type: ignore[misc]
        return out

    return {"overall": block(rows), "by_pair": {name: block(groups[name]) for name in sorted(groups)}}
