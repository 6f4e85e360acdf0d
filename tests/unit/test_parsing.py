"""Parsing raw LLM output: the format drift and junk small models produce."""

from __future__ import annotations

import pytest

from cda.config import ConfigError, config_from_dict
from cda.edit.strategies import make_strategy
from cda.generate.parsing import clean_output, parse_infill, parse_rewrite, strip_quotes
from cda.records import EditPlan, Record, Span


@pytest.mark.parametrize(
    ("raw", "n", "expected"),
    [
        ("[BLANK1]: awful\n[BLANK2]: rude", 2, ["awful", "rude"]),
        ("BLANK1: awful\nBLANK2: rude", 2, ["awful", "rude"]),
        ("[blank1]: awful\n[Blank2]: rude", 2, ["awful", "rude"]),
        ("Blank 1: awful\nBlank 2 = rude", 2, ["awful", "rude"]),
        ("[BLANK_1]: awful\n[BLANK_2]: rude", 2, ["awful", "rude"]),
        ("[BLANK1] = awful, [BLANK2] = rude", 2, ["awful", "rude"]),
        ("[BLANK1]: sunny, [BLANK2] = angry, [BLANK3] = unbelievable", 3, ["sunny", "angry", "unbelievable"]),
        ("[BLANK1] -> awful\n[BLANK2] → rude", 2, ["awful", "rude"]),
        ("[BLANK1]: great -> awful", 1, ["awful"]),
        ('[BLANK1]: "awful"\n[BLANK2]: \'rude\'', 2, ["awful", "rude"]),
        ("[BLANK1]: \u201cawful\u201d", 1, ["awful"]),
        ("- [BLANK1]: awful\n* [BLANK2]: rude", 2, ["awful", "rude"]),
        ("**[BLANK1]**: **awful**\n**[BLANK2]:** rude", 2, ["awful", "rude"]),
        ("1. [BLANK1]: awful\n2. [BLANK2]: rude", 2, ["awful", "rude"]),
        ("Sure! Here are the words:\n\n[BLANK1]: awful\n[BLANK2]: rude\n\nI hope this helps!", 2, ["awful", "rude"]),
        ("Answer:\n[BLANK1]: awful", 1, ["awful"]),
        ("Answer: [BLANK1]: awful", 1, ["awful"]),
        ("[BLANK1]: awful.\n[BLANK2]: rude;", 2, ["awful", "rude"]),
        ("[BLANK1]: awful (the opposite of great)\n[BLANK2]: rude - because friendly is positive", 2, ["awful", "rude"]),
        ("[BLANK1]: not very good", 1, ["not very good"]),
        ("[BLANK1]: dull, lifeless", 1, ["dull, lifeless"]),
        # Chat-template leftovers and code fences.
        ("<|im_start|>assistant\n[BLANK1]: awful<|im_end|>\n<|im_start|>user", 1, ["awful"]),
        ("```\n[BLANK1]: awful\n[BLANK2]: rude\n```", 2, ["awful", "rude"]),
        ("[BLANK1]: awful</s>", 1, ["awful"]),
        # The first answer per blank wins; rambling repeats and extra blanks are ignored.
        ("[BLANK1]: awful\n[BLANK2]: rude\n[BLANK3]: cold\n[BLANK1]: fine", 2, ["awful", "rude"]),
        ("[BLANK2]: rude\n[BLANK1]: awful", 2, ["awful", "rude"]),
        # An echoed hint line ("Old words: [BLANK1] = great") does not start with a marker.
        ("Old words: [BLANK1] = great\n[BLANK1]: awful", 1, ["awful"]),
        # Numbered lists, bullets, JSON, a bare word.
        ("1. awful\n2) rude", 2, ["awful", "rude"]),
        ("(1) awful\n(2) rude", 2, ["awful", "rude"]),
        ("- awful\n- rude", 2, ["awful", "rude"]),
        ('{"BLANK1": "awful", "BLANK2": "rude"}', 2, ["awful", "rude"]),
        ('```json\n{"[BLANK1]": "awful", "2": "rude"}\n```', 2, ["awful", "rude"]),
        ("awful", 1, ["awful"]),
        ("Here is the word:\n'awful'.", 1, ["awful"]),
    ],
)
def test_parse_infill_accepts(raw, n, expected):
    assert parse_infill(raw, n) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "n", "error"),
    [
        ("", 1, "empty output"),
        ("<|im_end|>", 1, "empty output"),
        ("[BLANK1]: awful", 2, "missing replacement for [BLANK2] (found [BLANK1])"),
        ("[BLANK1]:\n[BLANK2]: rude", 2, "missing replacement for [BLANK1]"),
        ("[BLANK1]: [BLANK2]", 1, "no replacement found for [BLANK1]"),
        ("The little boy is playing soccer in a foreign land.", 1, "no replacement found"),
        ("I cannot help with that request.", 2, "no replacement found for [BLANK1], [BLANK2]"),
        ("The movie was [[IMPOSSIBEL10] = bad, [BLANK", 2, "no replacement found"),
        ('{"BLANK1": ', 1, "no replacement found"),
        ("[BLANK3]: cold", 2, "no replacement found"),
    ],
)
def test_parse_infill_failures(raw, n, error):
    values, message = parse_infill(raw, n)
    assert values is None
    assert error in message


def test_parse_infill_other_blank_format():
    assert parse_infill("<mask1>: awful\nmask 2: rude", 2, blank="<mask{i}>") == (["awful", "rude"], None)
    assert parse_infill("[BLANK1]: awful\n[BLANK2]: rude", 2, blank="<mask{i}>")[0] is None


def test_parse_infill_needs_blanks():
    assert parse_infill("[BLANK1]: x", 0) == (None, "no blanks to fill")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A boy plays outside.", "A boy plays outside."),
        ('"A boy plays outside."', "A boy plays outside."),
        ("Here is the rewritten text:\nA boy plays outside.", "A boy plays outside."),
        ("Here's the edited hypothesis: A boy plays outside.", "A boy plays outside."),
        ("Sure! Here is the edited text:\n\nHypothesis: A boy plays outside.", "A boy plays outside."),
        ("Edited hypothesis: A boy plays outside.", "A boy plays outside."),
        ("**Edited hypothesis:** A boy plays outside.", "A boy plays outside."),
        ("Hypothesis: A boy plays outside.", "A boy plays outside."),
        ("```\nA boy plays outside.\n```", "A boy plays outside."),
        ("<|im_start|>assistant\nA boy plays outside.<|im_end|>", "A boy plays outside."),
        ("A boy plays outside.\n\nNote: I changed 'inside' to 'outside'.", "A boy plays outside."),
        ("A boy plays outside.\n(Changed one word.)", "A boy plays outside."),
        ("Certainly! \u201cA boy plays outside.\u201d", "A boy plays outside."),
        ("Okay. A boy plays outside.", "A boy plays outside."),
        # Text that merely looks like a preamble is kept.
        ("New York is great: the best city.", "New York is great: the best city."),
        ("Great film.\nThe ending works: really.", "Great film.\nThe ending works: really."),
        ("My verdict:\nA fine film.", "My verdict:\nA fine film."),
    ],
)
def test_parse_rewrite(raw, expected):
    assert parse_rewrite(raw, "hypothesis") == (expected, None)


@pytest.mark.parametrize("raw", ["", "   ", "```\n```", '""', "<|im_end|>", "Here is the rewritten text:"])
def test_parse_rewrite_empty(raw):
    assert parse_rewrite(raw) == (None, "empty output")


def test_clean_output_and_strip_quotes():
    assert clean_output("user\n<|im_start|>assistant\nok<|im_end|><|endoftext|>") == "ok"
    assert strip_quotes("`'awful'`") == "awful"
    assert strip_quotes('"unbalanced') == '"unbalanced'


RECORD = Record(index=0, segments={"premise": "A dog runs.", "hypothesis": "A dull, slow film."}, label="neutral")
PLAN = EditPlan(
    target_label="contradiction",
    segment="hypothesis",
    masked="A [BLANK1], [BLANK2] film.",
    spans=[Span(segment="hypothesis", start=2, end=6), Span(segment="hypothesis", start=8, end=12)],
)


def _strategy(name: str):
    cfg = config_from_dict({"data": {"path": "x.tsv"}, "edit": {"strategy": name},
                            "task": {"segments": {"premise": "p", "hypothesis": "h"}, "label_column": "y",
                                     "labels": ["entailment", "neutral", "contradiction"]}})  # fmt: skip
    return make_strategy(cfg)


def test_infill_strategy_substitutes_at_offsets_and_copies_other_segments():
    segments, error = _strategy("infill").parse("[BLANK2]: fast\n[BLANK1]: lively", RECORD, PLAN)
    assert error is None
    assert segments == {"premise": "A dog runs.", "hypothesis": "A lively, fast film."}


def test_infill_strategy_failures():
    infill = _strategy("infill")
    assert infill.parse("[BLANK1]: lively", RECORD, PLAN) == (None, "missing replacement for [BLANK2] (found [BLANK1])")
    empty = PLAN.model_copy(update={"spans": [], "masked": RECORD.segments["hypothesis"]})
    assert infill.parse("[BLANK1]: x", RECORD, empty) == (None, "no rationale spans to edit")


def test_rewrite_strategy():
    segments, error = _strategy("rewrite").parse("Edited hypothesis: A lively film.", RECORD, PLAN)
    assert (segments, error) == ({"premise": "A dog runs.", "hypothesis": "A lively film."}, None)
    with pytest.raises(ConfigError, match=r"edit.strategy: unknown edit strategy 'paraphrase'; registered: entity_swap, infill, lexicon, rewrite"):
        _strategy("paraphrase")


@pytest.mark.parametrize(
    ("raw", "masked", "expected"),
    [
        ("The acting was great and the plot was gripping.", "The acting was [BLANK1] and the plot was [BLANK2].", ["great", "gripping"]),
        ("Text: A terrible film with a moving story.", "A [BLANK1] film with a moving story.", ["terrible"]),
        ("the acting was  superb and  the plot was fine.", "The acting was [BLANK1] and the plot was [BLANK2].", ["superb", "fine"]),
        ("Great acting, fun plot.", "[BLANK1] acting, [BLANK2] plot.", ["Great", "fun"]),
    ],
)
def test_parse_infill_reads_an_echoed_sentence(raw, masked, expected):
    assert parse_infill(raw, len(expected), masked=masked) == (expected, None)


@pytest.mark.parametrize(
    "raw",
    [
        "Text: A [BLANK1] film with a moving story.",  # the prompt echoed, blank unfilled
        "The acting was hot, the plot was dull.",  # the context changed too: cannot align
    ],
)
def test_parse_infill_echo_that_cannot_be_aligned(raw):
    masked = "A [BLANK1] film with a moving story." if "film" in raw else "The acting was [BLANK1] and the plot was [BLANK2]."
    values, error = parse_infill(raw, masked.count("[BLANK"), masked=masked)
    assert values is None and "no replacement found" in error


def test_parse_infill_echo_stays_on_one_line():
    raw = "Premise: A boy plays soccer\nOld words."
    values, error = parse_infill(raw, 1, masked="A boy plays soccer [BLANK1].")
    assert values is None
