"""Rationales per sentence: the sentences that carry the label on their own, and their words.

Explain attributes the whole text once and keeps its best ``max_spans`` spans. A review keeps
its sentiment in many sentences ("Highly, hugely recommended!" at the end, "The acting is
superb." in the middle), and past ``classifier.max_length`` the classifier sees none of them:
an edit of the text's rationale alone leaves them as they were, and the "counterfactual" still
reads as the original's label to a person. With ``explain.sentences`` each sentence of an
editable segment is classified alone; one that reads as the record's label with
``P >= threshold`` *carries* it, and its own best ``spans`` rationale spans (attributed on the
sentence alone) are kept. Edit blanks them where a plan leaves the sentence untouched
(:func:`cda.edit.plans.cover_sentences`).

On the Kaushik IMDb dev pairs, with the MiniLM task classifier: people left 12 % of the
sentences that read as the original's label (``P >= 0.9``) untouched; the trained generator,
blanking only the words people change, left 38 % (session 12).

Examples:
    >>> from tests.fakes import FakeClassifier  # sentiment by word lists
    >>> from cda.explain.spans import SpanSelector
    >>> selector = SpanSelector(cfg.explain, cfg.task)
    >>> r = Record(index=0, segments={"text": "It is a film. The plot is dull and slow. I saw it in May."}, label="Negative")
    >>> settings = SentencesConfig(threshold=0.8)
    >>> explain_sentences([r], FakeClassifier(), selector, settings, "grad_x_input", editable=["text"])
    >>> [(s.text, s.score) for s in r.label_sentences], [s.text for s in r.sentence_spans]
    ([('The plot is dull and slow.', 0.9)], ['dull'])
"""

from __future__ import annotations

from functools import lru_cache

from cda.config import SentencesConfig
from cda.explain.spans import SpanSelector, split_best
from cda.protocols import Classifier
from cda.records import Record, Span


@lru_cache(maxsize=1)
def sentencizer():
    """spaCy's rule-based sentence splitter (a blank English pipeline; no model to load)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, without surrounding whitespace.

    Examples:
        >>> text = "A dull film.  The end was fine! Why?"
        >>> [text[s:e] for s, e in sentence_bounds(text)]
        ['A dull film.', 'The end was fine!', 'Why?']
    """
    out = []
    for sent in sentencizer()(text).sents:
        start, end = sent.start_char, sent.end_char
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            out.append((start, end))
    return out


def explain_sentences(
    records: list[Record],
    classifier: Classifier,
    selector: SpanSelector,
    settings: SentencesConfig,
    method: str,
    editable: list[str],
) -> None:
    """Fill ``label_sentences`` and ``sentence_spans`` of ``records`` (in place).

    A sentence is classified with the record's other segments as they are (the premise stays
    beside a hypothesis sentence); attribution is toward the record's label, and spans are
    picked by ``selector`` as for the whole text, then moved to the segment's offsets.
    """
    items: list[tuple[Record, str, int, int]] = []  # (record, segment, start, end)
    for record in records:
        record.label_sentences, record.sentence_spans = [], []
        for name in editable:
            text = record.segments.get(name, "")
            items += [(record, name, s, e) for s, e in sentence_bounds(text) if len(text[s:e].split()) >= settings.min_words]
    if not items:
        return
    inputs = [{**r.segments, name: r.segments[name][s:e]} for r, name, s, e in items]
    probs = classifier.predict_proba(inputs)
    carrying = [k for k, ((r, _, _, _), p) in enumerate(zip(items, probs)) if p.get(r.label, 0.0) >= settings.threshold]
    if not carrying:
        return
    attributions = classifier.attribute([inputs[k] for k in carrying], [items[k][0].label for k in carrying], method)
    for k, attribution in zip(carrying, attributions):
        record, name, start, end = items[k]
        text = record.segments[name]
        record.label_sentences.append(Span(segment=name, start=start, end=end, score=float(probs[k][record.label]), text=text[start:end]))
        ranked, spare = selector.ranked(inputs[k], attribution)
        best = split_best([s for s in ranked + spare if s.segment == name], settings.spans)[0]
        record.sentence_spans += [
            s.model_copy(update={"start": s.start + start, "end": s.end + start, "text": text[s.start + start : s.end + start]})
            for s in best
        ]
