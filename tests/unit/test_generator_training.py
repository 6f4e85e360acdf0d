"""The trained generator's data and loss: pair alignment, windows, examples, unlikelihood."""

from __future__ import annotations

import json

import pytest
import torch

from cda.config import ConfigError, config_from_dict
from cda.edit.plans import masked_window
from cda.generate.trained.alignment import changed_regions, sentence_pairs
from cda.generate.trained.examples import TrainingExample, pair_examples, rewrite_examples, self_supervised_examples
from cda.generate.trained.loss import generator_loss, token_unlikelihood
from cda.generate.trained.train import GeneratorTrainingError, check_generator_template, encode, human_pairs
from cda.records import Record, Span

TASK = {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]}


def make_config(**generator):
    generator.setdefault("train", {"self_supervised": True})
    return config_from_dict({"data": {"path": "x.tsv"}, "task": TASK, "generator": generator})


def regions(a: str, b: str) -> list[tuple[str, str]]:
    return [(r.old, r.new) for r in changed_regions(a, b)]


# ---------------------------------------------------------------------- alignment
def test_substitutions_in_several_regions():
    assert regions("The plot was dull and the acting was flat.", "The plot was gripping and the acting was superb.") == [
        ("dull", "gripping"),
        ("flat", "superb"),
    ]


def test_adjacent_edits_form_one_region_with_original_offsets():
    original = "I really hated this awful film."
    found = changed_regions(original, "I really loved this wonderful film.")
    assert [(r.old, r.new) for r in found] == [("hated", "loved"), ("awful", "wonderful")]
    assert all(original[r.start : r.end] == r.old for r in found)
    assert regions("a very bad movie", "a truly great movie") == [("very bad", "truly great")]


def test_insertion_takes_in_the_next_word():
    assert regions("I recommend it.", "I do not recommend it.") == [("recommend", "do not recommend")]


def test_insertion_at_the_end_takes_in_the_previous_word():
    assert regions("It was good", "It was good enough") == [("good", "good enough")]


def test_deletion_takes_in_the_next_word():
    assert regions("It was not good at all.", "It was good at all.") == [("not good", "good")]


def test_no_change_and_whitespace_only_change_give_no_region():
    assert regions("Same words here.", "Same words here.") == []
    assert regions("Same words  here.", "Same\nwords here.") == []


# ---------------------------------------------------------------------- windows
def test_sentence_pairs_pair_kept_and_rewritten_sentences_and_leave_out_merges_and_splits():
    original = "Great cast. I saw it twice. The plot was clever. It ends well. Go."
    revised = "Poor cast. I saw it twice. The plot was dumb, it ends badly. Go. Skip it."
    assert sentence_pairs(original, revised) == [
        ("Great cast.", "Poor cast."),
        ("I saw it twice.", "I saw it twice."),
        ("Go.", "Go."),  # two sentences merged into one are left out, and the added one
    ]
    assert sentence_pairs("", "New.") == [] and sentence_pairs("Same.", "Same.") == [("Same.", "Same.")]


def test_window_keeps_context_words_around_each_blank_and_global_numbers():
    text = "w1 w2 w3 bad w5 w6 w7 w8 w9 w10 w11 w12 dull w14"
    bad, dull = text.index("bad"), text.index("dull")
    spans = [Span(segment="t", start=bad, end=bad + 3), Span(segment="t", start=dull, end=dull + 4)]
    assert masked_window(text, spans, context_words=2) == "w2 w3 [BLANK1] w5 w6 … w11 w12 [BLANK2] w14"
    assert masked_window(text, spans, context_words=5).count("…") == 0  # windows that touch merge
    assert masked_window(text, spans, context_words=None) == text.replace("bad", "[BLANK1]").replace("dull", "[BLANK2]")


# ---------------------------------------------------------------------- examples
def test_pair_examples_mask_what_the_human_changed_and_answer_with_the_human_words():
    cfg = make_config(max_blanks=2, context_words=2)
    original = Record(index=0, segments={"text": "A dull start, a slow middle and a weak end."}, label="Negative")
    revised = {"text": "A lively start, a brisk middle and a strong end."}
    examples = pair_examples(original, revised, "Positive", "text", cfg)
    likely = [e for e in examples if not e.unlikely]
    assert [e.values for e in likely] == [("lively", "brisk"), ("strong",)]
    assert likely[0].prompt == "Text (Positive): A [BLANK1] start, a [BLANK2] middle and"
    unlikely = [e for e in examples if e.unlikely]  # the original words, when asked for the target label
    assert [(e.values, e.prompt.startswith("Text (Positive)")) for e in unlikely] == [(("dull", "slow"), True), (("weak",), True)]


def test_pair_regions_that_do_not_fit_the_answer_format_stay_unmasked():
    cfg = make_config()
    original = Record(index=0, segments={"text": "Bad. Boring film."}, label="Negative")
    examples = pair_examples(original, {"text": "Good! Boring film? No, a fun film."}, "Positive", "text", cfg)
    assert all("," not in v and "!" not in v for e in examples for v in e.values)


def test_self_supervised_examples_use_rationales_own_label_and_unlikely_twins():
    cfg = make_config()
    record = Record(index=0, segments={"text": "A dull film."}, label="Negative", spans=[Span(segment="text", start=2, end=6)])
    examples = self_supervised_examples(record, cfg)
    assert [(e.prompt, e.answer, e.unlikely, e.source) for e in examples] == [
        ("Text (Negative): A [BLANK1] film.", "[BLANK1]: dull", False, "self_supervised"),
        ("Text (Positive): A [BLANK1] film.", "[BLANK1]: dull", True, "self_supervised"),
    ]


def test_no_unlikely_twins_without_unlikelihood():
    cfg = make_config(train={"self_supervised": True, "unlikelihood": 0})
    record = Record(index=0, segments={"text": "A dull film."}, label="Negative", spans=[Span(segment="text", start=2, end=6)])
    assert [e.unlikely for e in self_supervised_examples(record, cfg)] == [False]


def test_human_pairs_by_key_in_both_directions(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Sentiment\tText\tbatch_id\nNegative\tA dull film.\t1\nPositive\tA fine film.\t1\nNegative\tLonely row.\t2\n")
    cfg = make_config(train={"pairs": {"path": str(path), "key": "batch_id"}})
    pairs = human_pairs(cfg)
    assert [(o.label, o.segments["text"], r["text"], t) for o, r, t, _ in pairs] == [
        ("Negative", "A dull film.", "A fine film.", "Positive"),
        ("Positive", "A fine film.", "A dull film.", "Negative"),
    ]


def test_generator_config_needs_a_source():
    with pytest.raises(ConfigError, match="generator needs path"):
        config_from_dict({"data": {"path": "x.tsv"}, "task": TASK, "generator": {}})
    with pytest.raises(ConfigError, match="pairs .* and/or self_supervised"):
        make_config(train={})
    with pytest.raises(ConfigError, match="either key"):
        make_config(train={"pairs": {"path": "p.tsv"}})


def test_trained_template_is_the_default_with_a_generator_section():
    from cda.generate.prompts import template_name

    assert template_name(make_config()) == "trained_infill.v1"
    assert template_name(make_config(train={"pairs": {"path": "p.tsv", "key": "id"}})) == "trained_infill.v2"


def test_the_edit_template_shows_each_blank_the_words_it_replaces():
    cfg = make_config(context_words=2, train={"pairs": {"path": "p.tsv", "key": "id"}, "unlikelihood": 0})
    cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"template": "trained_infill.v2"})})
    original = Record(index=0, segments={"text": "A dull start, a slow middle."}, label="Negative")
    (example,) = pair_examples(original, {"text": "A lively start, a brisk middle."}, "Positive", "text", cfg)
    assert example.prompt == "Text (Positive): A [BLANK1: dull] start, a [BLANK2: slow] middle."
    assert example.answer == "[BLANK1]: lively\n[BLANK2]: brisk"


def adapter_folder(tmp_path, template, **meta):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "cda_generator.json").write_text(json.dumps({"template": template, **meta}))
    return str(tmp_path)


def test_an_adapter_generates_with_the_template_it_was_trained_with(tmp_path):
    from cda.generate.prompts import template_name

    cfg = make_config(path=adapter_folder(tmp_path, "trained_infill.v2"), train=None)
    assert template_name(cfg) == "trained_infill.v2"
    check_generator_template(cfg)
    other = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"template": "trained_infill.v1"})})
    with pytest.raises(GeneratorTrainingError, match="trained with the prompt template 'trained_infill.v2'.*set generate.template: trained_infill.v2"):
        check_generator_template(other)


def test_an_adapter_generates_with_its_windows_and_at_most_its_blanks(tmp_path):
    folder = adapter_folder(tmp_path, "trained_infill.v2", context_words=6, max_blanks=3)
    check_generator_template(make_config(path=folder, train=None, context_words=6, max_blanks=2))
    with pytest.raises(GeneratorTrainingError, match="trained with generator.context_words: 6 .* the config has 4; set generator.context_words: 6"):
        check_generator_template(make_config(path=folder, train=None, context_words=4))
    with pytest.raises(GeneratorTrainingError, match="at most 3 blanks per prompt, but generator.max_blanks is 5"):
        check_generator_template(make_config(path=folder, train=None, max_blanks=5))


def test_self_supervised_training_refuses_a_template_that_shows_the_answers():
    cfg = make_config()
    check_generator_template(cfg)
    shown = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"template": "trained_infill.v2"})})
    with pytest.raises(GeneratorTrainingError, match="shows the words each blank replaces"):
        check_generator_template(shown)


# ---------------------------------------------------------------------- rewrite format
NLI = {"name": "nli", "segments": {"premise": "sentence1", "hypothesis": "sentence2"}, "label_column": "gold_label",
       "labels": ["entailment", "neutral", "contradiction"], "editable": ["hypothesis"]}  # fmt: skip
FREE_REWRITE = {"name": "rewrite", "anchor": False}


def rewrite_config(path=None, unlikelihood=0.0, strategy=FREE_REWRITE, **train):
    train = None if path else {"pairs": {"path": "p.tsv", "key": "id"}, "unlikelihood": unlikelihood, **train}
    return config_from_dict({"data": {"path": "x.tsv"}, "task": NLI, "edit": {"strategy": strategy},
                             "generator": {"path": path, "train": train}})  # fmt: skip


def test_rewrite_examples_answer_with_the_whole_human_segment_after_both_labels():
    from cda.generate.prompts import template_name

    cfg = rewrite_config()
    assert template_name(cfg) == "trained_rewrite.v1"
    original = Record(index=0, segments={"premise": "A man sleeps on a bench.", "hypothesis": "A man rests."}, label="entailment")
    (example,) = rewrite_examples(original, {"hypothesis": "A woman rests."}, "contradiction", "hypothesis", cfg)
    assert example.prompt == "Premise: A man sleeps on a bench.\nHypothesis (entailment -> contradiction): A man rests."
    assert example.answer == "A woman rests." and example.pieces() == [("A woman rests.", True)]
    assert rewrite_examples(original, {"hypothesis": "A man  rests."}, "contradiction", "hypothesis", cfg) == []


def test_sentence_rewrite_examples_show_one_sentence_and_keep_the_ones_people_left_alone():
    cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": TASK, "generator": {"train": {"pairs": {"path": "p.tsv", "key": "id"}}},
                            "edit": {"strategy": {"name": "rewrite", "unit": "sentence", "anchor": False, "max_sentence_words": 4}}})  # fmt: skip
    original = Record(index=0, segments={"text": "A dull film. I saw it. It is one long slow mess."}, label="Negative")
    examples = rewrite_examples(original, {"text": "A fun film. I saw it. It is one long fun romp."}, "Positive", "text", cfg)
    assert [(e.prompt, e.answer, e.unlikely) for e in examples] == [
        ("Text (Negative -> Positive): A dull film.", "A fun film.", False),
        ("Text (Negative -> Positive): A dull film.", "A dull film.", True),  # the unlikely twin (unlikelihood 0.5)
        ("Text (Negative -> Positive): I saw it.", "I saw it.", False),  # left alone: no twin
    ]  # the third sentence has more than 4 words


def test_a_rewrite_unlikely_twin_penalises_only_the_words_the_human_changed():
    cfg = rewrite_config(unlikelihood=0.5)
    original = Record(index=0, segments={"premise": "P.", "hypothesis": "A man rests on a bench."}, label="entailment")
    likely, twin = rewrite_examples(original, {"hypothesis": "A woman runs on a bench."}, "contradiction", "hypothesis", cfg)
    assert twin.unlikely and twin.prompt == likely.prompt and twin.answer == "A man rests on a bench."
    assert "".join(text for text, _ in twin.pieces()) == twin.answer
    assert [text for text, penalised in twin.pieces() if penalised] == [" man rests"]


def test_a_trained_rewrite_generator_needs_free_plans_pairs_and_its_own_strategy(tmp_path):
    check_generator_template(rewrite_config())
    with pytest.raises(GeneratorTrainingError, match=r"set edit.strategy: \{name: rewrite, anchor: false\}"):
        check_generator_template(rewrite_config(strategy="rewrite"))
    with pytest.raises(GeneratorTrainingError, match="learns from human pairs only"):
        check_generator_template(rewrite_config(self_supervised=True))
    folder = adapter_folder(tmp_path, "trained_rewrite.v1", answers="rewrite")
    check_generator_template(rewrite_config(path=folder))
    with pytest.raises(GeneratorTrainingError, match="trained to answer with the whole edited segment, but edit.strategy 'infill' asks"):
        check_generator_template(rewrite_config(path=folder, strategy="infill"))
    with pytest.raises(GeneratorTrainingError, match=r"asks for one rewritten sentence; set edit.strategy: \{name: rewrite, anchor: false\}"):
        check_generator_template(rewrite_config(path=folder, strategy={"name": "rewrite", "unit": "sentence"}))
    (tmp_path / "s").mkdir()
    sentences = adapter_folder(tmp_path / "s", "trained_rewrite.v1", answers="sentences")
    check_generator_template(rewrite_config(path=sentences, strategy={"name": "rewrite", "unit": "sentence", "anchor": True}))
    with pytest.raises(GeneratorTrainingError, match=r"answer with one rewritten sentence, .* \{name: rewrite, unit: sentence, anchor: false\}"):
        check_generator_template(rewrite_config(path=sentences))
    with pytest.raises(GeneratorTrainingError, match="edit.strategy 'entity_swap' cannot use a trained generator"):
        check_generator_template(rewrite_config(strategy={"name": "entity_swap", "claim_segment": "hypothesis",
            "evidence_segment": "premise", "supports_label": "entailment", "refutes_label": "contradiction"}))  # fmt: skip


@pytest.mark.parametrize("name", ["imdb_trained", "snli_trained"])
def test_the_shipped_trained_configs_pass_the_generator_checks(name):
    from cda import load_config
    from cda.generate.prompts import template_name

    config = load_config(f"configs/{name}.yaml")
    check_generator_template(config)
    assert template_name(config) == {"imdb_trained": "trained_infill.v2", "snli_trained": "trained_rewrite.v1"}[name]


def test_encode_trains_every_token_of_a_rewrite_and_penalises_the_marked_pieces():
    tok = CharTokenizer()
    ids, lk, ul = encode(tok, TrainingExample("P", "A b.", ("A b.",), answer_pieces=(("A b.", True),)))
    assert "".join(chr(i) for i in ids[:-1]) == "PA b." and lk == [0, 1, 1, 1, 1, 1] and not any(ul)
    twin = TrainingExample("P", "A c.", ("c",), unlikely=True, answer_pieces=(("A", False), (" c", True), (".", False)))
    ids, lk, ul = encode(tok, twin)
    assert not any(lk) and "".join(chr(i) for i, m in zip(ids, ul) if m) == " c"


# ---------------------------------------------------------------------- encoding and loss
class CharTokenizer:
    """One token per character; id 0 ends the turn."""

    chat_template = None
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def test_encode_masks_answer_tokens_for_each_loss():
    tok = CharTokenizer()
    likely = encode(tok, TrainingExample("P", "[B1]: ok", ("ok",), blank="[B{i}]"))
    ids, lk, ul = likely
    assert "".join(chr(i) for i in ids[:-1]) == "P[B1]: ok" and ids[-1] == 0
    assert lk == [0] + [1] * (len(ids) - 1) and not any(ul)  # every answer token and the end of turn
    ids, lk, ul = encode(tok, TrainingExample("P", "[B1]: ok", ("ok",), blank="[B{i}]", unlikely=True))
    assert not any(lk)
    assert "".join(chr(i) for i, m in zip(ids, ul) if m) == " ok"  # only the replacement, not the marker


def test_unlikelihood_gradient_lowers_the_probability_of_the_unlikely_token():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 10, requires_grad=True)
    targets = torch.tensor([[4, 5, 6]])
    mask = torch.tensor([[0.0, 1.0, 0.0]])
    before = torch.softmax(logits.detach(), -1)[0, 1, 5].item()
    token_unlikelihood(logits, targets, mask).backward()
    assert logits.grad[0, 1, 5] > 0  # descending the gradient lowers that logit
    assert torch.all(logits.grad[0, 0] == 0) and torch.all(logits.grad[0, 2] == 0)
    with torch.no_grad():
        after = torch.softmax(logits - 1.0 * logits.grad, -1)[0, 1, 5].item()
    assert after < before


def test_generator_loss_adds_weighted_unlikelihood():
    logits = torch.zeros(1, 2, 4)
    targets = torch.tensor([[1, 2]])
    likely, unlikely = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    loss, nll, ul = generator_loss(logits, targets, likely, unlikely, alpha=0.5)
    assert nll == pytest.approx(1.3863, abs=1e-4) and ul == pytest.approx(0.2877, abs=1e-4)
    assert float(loss) == pytest.approx(nll + 0.5 * ul, abs=1e-5)
