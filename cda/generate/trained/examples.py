"""Training examples for the counterfactual generator, in the format it generates with.

Every example is a prompt rendered by the same template and variables the Generate stage
uses (``trained_infill.v1``: the other segments, then a window of the edited segment around
numbered blanks, after the label to reach) and the answer lines the stage parses
(``[BLANK1]: words``). Two sources:

* **human pairs** (:func:`pair_examples`): the regions a human changed to flip the label
  (:func:`~cda.generate.trained.alignment.changed_regions`) are the blanks, the target label
  is the counterfactual's, the answer is what the human wrote there;
* **self-supervised** (:func:`self_supervised_examples`, AutoCAD / MiCE): the rationale spans
  Explain found are the blanks, the label is the example's own, the answer the original words;
* **human rewrites** (:func:`rewrite_examples`, ``edit.strategy: rewrite``, ``trained_rewrite.v1``):
  the prompt shows the whole segment (or one sentence of it) and both labels, the answer is the
  human's version, so the generator learns where to edit as well as what to write.

Each likely example has an *unlikely* twin (AutoCAD's unlikelihood term): the original words
for the blanks when the prompt asks for another label, which training makes improbable so
the generator does not copy what it should change.

Examples:
    >>> from cda.config import config_from_dict
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"name": "sentiment", "segments": {"text": "Text"},
    ...     "label_column": "y", "labels": ["Negative", "Positive"]},
    ...     "generator": {"context_words": 3, "train": {"self_supervised": True}}})
    >>> original = Record(index=0, segments={"text": "A dull and slow film."}, label="Negative")
    >>> likely, unlikely = pair_examples(original, {"text": "A lively and fast film."}, "Positive", "text", cfg)[:2]
    >>> print(likely.prompt)
    Text (Positive): A [BLANK1] and [BLANK2] film.
    >>> likely.answer, unlikely.answer, unlikely.unlikely
    ('[BLANK1]: lively\\n[BLANK2]: fast', '[BLANK1]: dull\\n[BLANK2]: slow', True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cda.config import Config
from cda.edit.plans import mask_segment, merge_spans
from cda.generate.parsing import MAX_ANSWER_CHARS
from cda.generate.prompts import PromptTemplate, load_template, prompt_variables, render_with
from cda.generate.trained.alignment import changed_regions, sentence_pairs
from cda.records import EditPlan, Record, Span
from cda.tasks import target_labels

# What the structured-answer regex lets a replacement be (see parsing.infill_answer_regex).
_VALID_ANSWER = re.compile(r"[^\s\[\],;.!?][^\n\[\],;.!?]{0,%d}" % (MAX_ANSWER_CHARS - 1))


@dataclass(frozen=True)
class TrainingExample:
    """One training sequence: the prompt (user message), the answer, the words it replaces.

    An infill answer is one ``[BLANKk]: words`` line per blank, its ``values`` the words; a
    rewrite answer is the whole edited segment, split into ``answer_pieces``. ``unlikely``
    examples are trained with the unlikelihood loss on their ``values`` (the pieces marked True).
    """

    prompt: str
    answer: str
    values: tuple[str, ...]
    blank: str = "[BLANK{i}]"
    unlikely: bool = False
    source: str = "pairs"
    # A rewrite's answer as ``(text, is_value)`` pieces (empty: infill lines from ``values``).
    answer_pieces: tuple[tuple[str, bool], ...] = ()

    def pieces(self) -> list[tuple[str, bool]]:
        """The answer as ``(text, is_value)`` pieces: markers and newlines, and the replacements.

        Examples:
            >>> TrainingExample("p", "[BLANK1]: great", ("great",)).pieces()
            [('[BLANK1]:', False), (' great', True)]
        """
        if self.answer_pieces:
            return list(self.answer_pieces)
        out: list[tuple[str, bool]] = []
        for k, value in enumerate(self.values, start=1):
            if k > 1:
                out.append(("\n", False))
            out += [(self.blank.format(i=k) + ":", False), (" " + value, True)]
        return out


def valid_value(text: str) -> bool:
    """Whether a replacement fits the answer format (one short phrase, no sentence punctuation).

    Examples:
        >>> valid_value("really great"), valid_value("great!"), valid_value("")
        (True, False, False)
    """
    return bool(_VALID_ANSWER.fullmatch(text)) and any(ch.isalnum() for ch in text)


def _answer(values: list[str], blank: str) -> str:
    return "\n".join(f"{blank.format(i=k)}: {v}" for k, v in enumerate(values, start=1))


def _examples(
    record: Record, spans: list[Span], answers: list[str], target: str, config: Config, source: str
) -> list[TrainingExample]:
    """The likely example for ``target`` and, with unlikelihood on, its unlikely twins for the
    labels that are not ``target`` when the answers are the original words, else for ``target``."""
    template = load_template(config)
    blank = config.edit.blank
    segment = spans[0].segment
    plan = EditPlan(target_label=target, segment=segment, spans=spans, masked=mask_segment(record.segments[segment], spans, blank))
    likely = TrainingExample(render_with(template, prompt_variables(config, record, plan)), _answer(answers, blank),
                             tuple(answers), blank, False, source)  # fmt: skip
    out = [likely]
    train = config.generator.train if config.generator is not None else None
    if train is None or train.unlikelihood <= 0:
        return out
    originals = [s.text for s in spans]
    if originals == answers:  # self-supervised: the original words are wrong for every other label
        wrong_for = [label for label in target_labels(config.task, target) if label != target]
    else:  # a human pair: the original words are wrong for the target label
        wrong_for = [target]
    for label in wrong_for:
        twin = plan.model_copy(update={"target_label": label})
        out.append(TrainingExample(render_with(template, prompt_variables(config, record, twin)),
                                   _answer(originals, blank), tuple(originals), blank, True, source))  # fmt: skip
    return out


def pair_examples(original: Record, revised: dict[str, str], target: str, segment: str, config: Config) -> list[TrainingExample]:
    """Examples from one human counterfactual: its changed regions, ``generator.max_blanks`` at a time.

    Regions whose old or new words do not fit the answer format (sentence punctuation, more
    than 40 characters, no letters) are left unmasked, as they were in the original.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "generator": {"max_blanks": 1,
        ...     "train": {"self_supervised": True, "unlikelihood": 0}}})
        >>> r = Record(index=0, segments={"text": "Dull and slow."}, label="Negative")
        >>> [e.answer for e in pair_examples(r, {"text": "Fun and fast."}, "Positive", "text", cfg)]
        ['[BLANK1]: Fun', '[BLANK1]: fast']
    """
    assert config.generator is not None
    text = original.segments[segment]
    regions = [r for r in changed_regions(text, revised[segment]) if valid_value(r.old) and valid_value(r.new)]
    k = config.generator.max_blanks
    out: list[TrainingExample] = []
    for start in range(0, len(regions), k):
        group = regions[start : start + k]
        spans = [Span(segment=segment, start=r.start, end=r.end, text=r.old) for r in group]
        out += _examples(original, spans, [r.new for r in group], target, config, "pairs")
    return out


def self_supervised_examples(record: Record, config: Config) -> list[TrainingExample]:
    """Examples from a record's own rationale spans (``record.spans``, from Explain): the blanks'
    original words for its own label, and (unlikely) for every other label.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "generator": {"train": {"self_supervised": True}}})
        >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative",
        ...            spans=[Span(segment="text", start=2, end=6)])
        >>> [(e.prompt, e.answer, e.unlikely) for e in self_supervised_examples(r, cfg)]
        [('Text (Negative): A [BLANK1] film.', '[BLANK1]: dull', False), ('Text (Positive): A [BLANK1] film.', '[BLANK1]: dull', True)]
    """
    assert config.generator is not None
    out: list[TrainingExample] = []
    for segment in {s.segment for s in record.spans}:
        text = record.segments[segment]
        spans = merge_spans(text, [s for s in record.spans if s.segment == segment], config.edit.merge_gap)
        spans = [s for s in spans if valid_value(s.text)][: config.generator.max_blanks]
        if spans:
            out += _examples(record, spans, [s.text for s in spans], record.label, config, "self_supervised")
    return out


def rewrite_examples(original: Record, revised: dict[str, str], target: str, segment: str, config: Config) -> list[TrainingExample]:
    """Examples from one human counterfactual for a generator that rewrites (``edit.strategy: rewrite``):
    the prompt shows the whole segment, the answer is the human's whole edited segment.

    With ``unit: sentence``, one example per sentence (:func:`~cda.generate.trained.alignment.sentence_pairs`),
    shown as if it were the whole segment: the answer is the human's version of it, the sentence
    itself where the human left it alone (so the generator learns which sentences to leave), and
    sentences longer than ``max_sentence_words`` are left out.

    With unlikelihood on, the twin answers with the original segment and penalises only the words
    the human changed (the rest is right for the target label too).

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "edit": {"strategy": "rewrite"},
        ...     "generator": {"train": {"pairs": {"path": "p.tsv", "key": "id"}, "unlikelihood": 0.5}}})
        >>> r = Record(index=0, segments={"text": "A dull and slow film. I saw it."}, label="Negative")
        >>> likely, unlikely = rewrite_examples(r, {"text": "A fun and fast film. I saw it."}, "Positive", "text", cfg)
        >>> print(likely.prompt)
        Text (Negative -> Positive): A dull and slow film. I saw it.
        >>> likely.pieces(), unlikely.pieces()[:3]
        ([('A fun and fast film. I saw it.', True)], [('A', False), (' dull', True), (' and', False)])
        >>> cfg.edit.strategy.unit = "sentence"
        >>> [(e.prompt, e.answer, e.unlikely) for e in rewrite_examples(r, {"text": "A fun and fast film. I saw it."}, "Positive", "text", cfg)]
        ... # doctest: +NORMALIZE_WHITESPACE
        [('Text (Negative -> Positive): A dull and slow film.', 'A fun and fast film.', False),
         ('Text (Negative -> Positive): A dull and slow film.', 'A dull and slow film.', True),
         ('Text (Negative -> Positive): I saw it.', 'I saw it.', False)]
    """
    template = load_template(config)
    settings = config.edit.strategy
    if getattr(settings, "unit", "segment") != "sentence":
        return _rewrite_examples(template, original, revised[segment].strip(), target, segment, config)
    limit = settings.max_sentence_words  # type: ignore[attr-defined]
    out: list[TrainingExample] = []
    for old, new in sentence_pairs(original.segments[segment], revised[segment]):
        if len(old.split()) <= limit and len(new.split()) <= limit:
            sentence = original.model_copy(update={"segments": {**original.segments, segment: old}})
            out += _rewrite_examples(template, sentence, new, target, segment, config, unchanged=True)
    return out


def _rewrite_examples(
    template: PromptTemplate, original: Record, new: str, target: str, segment: str, config: Config, unchanged: bool = False
) -> list[TrainingExample]:
    """The rewrite example of ``original``'s segment into ``new`` and its unlikely twin; an unchanged
    segment gives one example answering with itself when ``unchanged``, else none."""
    text = original.segments[segment]
    regions = changed_regions(text, new)
    if not new or not (regions or unchanged):
        return []
    plan = EditPlan(target_label=target, segment=segment, spans=[], masked=text)
    prompt = render_with(template, prompt_variables(config, original, plan))
    out = [TrainingExample(prompt, new, (new,), unlikely=False, answer_pieces=((new, True),))]
    train = config.generator.train if config.generator is not None else None
    if train is None or train.unlikelihood <= 0 or not regions:
        return out
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for region in regions:
        # A changed word takes the space before it, as the tokenizer reads it (" dull").
        start = region.start - 1 if region.start > 0 and text[region.start - 1] == " " else region.start
        if start > pos:
            pieces.append((text[pos:start], False))
        pieces.append((text[start : region.end], True))
        pos = region.end
    if pos < len(text):
        pieces.append((text[pos:], False))
    out.append(TrainingExample(prompt, text, tuple(r.old for r in regions), unlikely=True, answer_pieces=tuple(pieces)))
    return out
