"""Readers for fact-verification data: a claim, its evidence as a list of sentences, a verdict.

Two formats, chosen with ``data.format`` (and in ``classifier.train``, experiment sets):

* ``feverous`` -- the FEVEROUS-S claims of ProgramFC (``feverous-s/dev.json``): a JSON list of
  ``{id, claim, label, challenge, evidence}`` where ``evidence`` holds one
  ``Page title<TAB>sentence`` per line, with ``[[target|anchor]]`` wiki links. Links become
  their anchor text (``[[target]]`` its target, underscores as spaces). Only a dev file is
  public here, so the reader splits it, seeded and by claim, into :data:`FEVEROUS_SPLITS`:
  ``train`` (50 %: the verifier), ``build`` (25 %: the claims cda augments) and ``test``
  (25 %: held out for the downstream experiment). ``data.split`` picks one.
* ``scifact`` -- SciFact-oracle JSON lines ``{id, claim, evidence, label}``, the gold rationale
  sentences inline as one text, split into sentences by spaCy's rule-based sentencizer.

Both give the columns ``id``, ``claim``, ``evidence`` (list of sentences), ``titles`` (the page
of each sentence; SciFact: empty strings), ``label`` (upper case: ``SUPPORTS``, ``REFUTES``,
``NOT_ENOUGH_INFO``) and, for FEVEROUS, ``challenge``.

Examples:
    >>> strip_links("A [[Plantation_house|plantation house]] near [[Pittsview,_Alabama]].")
    'A plantation house near Pittsview, Alabama.'
    >>> split_feverous(10, seed=0)["build"]
    [2, 4]
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

import datasets

from cda.errors import CdaError

#: FEVEROUS-S's split of its one public file: share of claims per part (seeded by ``FEVEROUS_SPLIT_SEED``).
FEVEROUS_SPLITS = {"train": 0.5, "build": 0.25, "test": 0.25}
FEVEROUS_SPLIT_SEED = 13
_LINK = re.compile(r"\[\[([^\]|]*)(?:\|([^\]]*))?\]\]")


class FactDataError(CdaError, ValueError):
    """A fact-verification file is not in the shape its format promises."""


def strip_links(text: str) -> str:
    """Wiki-link markup replaced by what a reader sees: the anchor, else the target."""
    return _LINK.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(1).replace("_", " "), text)


def split_feverous(n: int, seed: int = FEVEROUS_SPLIT_SEED) -> dict[str, list[int]]:
    """Row positions of each part of :data:`FEVEROUS_SPLITS`, each in file order."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    parts, start = {}, 0
    for k, (name, share) in enumerate(FEVEROUS_SPLITS.items()):
        end = n if k == len(FEVEROUS_SPLITS) - 1 else start + round(share * n)
        parts[name] = sorted(order[start:end])
        start = end
    return parts


def read_feverous(path: str | Path) -> datasets.DatasetDict:
    """FEVEROUS-S claims with link-free evidence sentences, split into train / build / test.

    Raises:
        FactDataError: not a JSON list of claims, or a claim without evidence lines.
    """
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FactDataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); the feverous format is a JSON list of claims") from None
    if not isinstance(items, list):
        raise FactDataError(f"{path}: the feverous format is a JSON list of claims, got a {type(items).__name__}")
    rows = []
    for number, item in enumerate(items):
        missing = [k for k in ("claim", "label", "evidence") if not isinstance(item, dict) or k not in item]
        if missing:
            raise FactDataError(f"{path}: claim {number} lacks {missing}; each needs claim, label and evidence")
        titles, sentences = [], []
        for line in str(item["evidence"]).splitlines():
            if not line.strip():
                continue
            title, tab, sentence = line.partition("\t")
            if not tab:
                raise FactDataError(f"{path}: claim {number} (id {item.get('id')}): evidence line {line[:60]!r} "
                                    "is not 'Page title<TAB>sentence'")
            titles.append(strip_links(title).strip())
            sentences.append(strip_links(sentence).strip())
        if not sentences:
            raise FactDataError(f"{path}: claim {number} (id {item.get('id')}) has no evidence sentences")
        rows.append({"id": str(item.get("id", number)), "claim": str(item["claim"]), "evidence": sentences,
                     "titles": titles, "label": str(item["label"]).upper(), "challenge": str(item.get("challenge", ""))})
    table = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict({name: table.select(rows) for name, rows in split_feverous(len(table)).items()})


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` character offsets of the sentences of a text, in order, none empty
    (spaCy's rule-based sentencizer; runs of spaces count as breaks).

    Examples:
        >>> text = "A dull film.  It drags. Avoid."
        >>> [text[s:e] for s, e in sentence_spans(text)]
        ['A dull film.', 'It drags.', 'Avoid.']
    """
    out = []
    for block in re.finditer(r"\S+(?:\s\S+)*", text):
        for sent in _sentencizer()(block.group()).sents:
            stripped = sent.text.strip()
            if stripped:
                start = block.start() + sent.start_char + (len(sent.text) - len(sent.text.lstrip()))
                out.append((start, start + len(stripped)))
    return out


def sentences_of(text: str) -> list[str]:
    """The sentences of a text (:func:`sentence_spans`).

    Examples:
        >>> sentences_of("NO is reduced.    All 8 monkeys developed vasospasm. P < .001.")
        ['NO is reduced.', 'All 8 monkeys developed vasospasm.', 'P < .001.']
    """
    return [text[start:end] for start, end in sentence_spans(text)]


def read_scifact(path: str | Path) -> datasets.Dataset:
    """SciFact-oracle claims with their rationale text split into sentences.

    Raises:
        FactDataError: a line that is not a JSON object with claim, evidence and label.
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise FactDataError(f"{path}:{number}: not valid JSON ({e.msg}); the scifact format is one claim per line") from None
        missing = [k for k in ("claim", "evidence", "label") if not isinstance(item, dict) or k not in item]
        if missing:
            raise FactDataError(f"{path}:{number}: lacks {missing}; each line needs claim, evidence and label")
        sentences = sentences_of(str(item["evidence"]))
        if not sentences:
            raise FactDataError(f"{path}:{number}: empty evidence")
        rows.append({"id": str(item.get("id", number - 1)), "claim": str(item["claim"]), "evidence": sentences,
                     "titles": [""] * len(sentences), "label": str(item["label"]).upper()})
    if not rows:
        raise FactDataError(f"{path} has no claims")
    return datasets.Dataset.from_list(rows)
