"""Search rounds and retrieved demonstrations, on fakes: what gets planned again, what the prompts show."""

import re

import datasets
import pytest

from cda import Components, build, config_from_dict
from cda.config import ConfigError
from cda.edit.strategies import make_strategy
from cda.generate.demonstrations import DemonstrationPool, WordOverlapEncoder, edits_of, retrieve_for
from cda.protocols import Generation, SamplingSettings
from cda.records import Demonstration, EditPlan, Record, Span
from tests.fakes import FakeClassifier, FakeGenerator

ROWS = {
    "Text": ["A bad , boring film .", "A great and wonderful cast .", "It was dull and poor ."],
    "Sentiment": ["Negative", "Positive", "Negative"],
}


class SeedGenerator(FakeGenerator):
    """Fills every blank with ``first`` in round 1 (seed 0) and ``later`` afterwards; counts calls."""

    def __init__(self, first: str, later: str) -> None:
        super().__init__()
        self.first, self.later = first, later
        self.calls: list[tuple[int, int]] = []  # (prompts, seed) per call

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        self.calls.append((len(prompts), sampling.seed))
        self.prompts.extend(prompts)
        word = self.first if sampling.seed == 0 else self.later
        out = []
        for prompt in prompts:
            now = prompt.split("Now you:")[-1]  # the blanks of the plan, not of the example
            blanks = sorted(set(re.findall(r"\[BLANK(\d+)\]", now)), key=int)
            out.append(Generation(["\n".join(f"[BLANK{b}]: {word}" for b in blanks)] * sampling.n))
        return out


def _config(tmp_path, **extra):
    section = {
        "data": {"path": "unused.tsv"},
        "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "explain": {"max_spans": 1, "top_fraction": 1.0, "min_score": 0.0},
        "generate": {"n": 2, "template": "infill.v2"},
        "filter": {"checks": {"fluency": None, "minimality": {"max_edit_distance": 0.9}}},
        "export": {"output_dir": str(tmp_path / "out")},
        "cache_dir": str(tmp_path / "cache"),
    }
    section.update(extra)
    return config_from_dict(section)


def test_a_second_round_replans_only_what_did_not_flip_with_a_wider_mask(tmp_path):
    # Round 1 answers "fine" (no sentiment: nothing flips); round 2 answers "great" (Negative ->
    # Positive flips; Positive -> Negative does not).
    generator = SeedGenerator("fine", "great")
    config = _config(tmp_path, search={"rounds": 2, "add_spans": 1})
    result = build(config, datasets.Dataset.from_dict(ROWS), components=Components(FakeClassifier(), generator))

    assert [n for n, _ in generator.calls] == [3, 3]  # each round's plans in one call
    assert [seed for _, seed in generator.calls] == [0, 7919]
    for record in result.records:
        assert [p.round for p in record.plans] == [1, 2]
        first, second = record.plans
        assert first.selected is None
        assert len(second.spans) == 2 and set(first.spans[0].text.split()) <= set(second.masked.split()) | {first.spans[0].text}
    flipped = {r.index for r in result.records if r.plans[1].selected is not None}
    assert flipped == {0, 2}
    s = result.summary
    assert s.rounds == {1: {"plans": 3, "candidates": 6, "accepted_candidates": 0, "counterfactuals": 0},
                        2: {"plans": 3, "candidates": 6, "accepted_candidates": 2, "counterfactuals": 2}}  # n=2 equal samples: 1 duplicate
    assert s.counterfactuals == 2 and s.originals_with_counterfactual == 2
    assert sorted(set(result.audit["round"])) == [1, 2]
    cfs = result.dataset.filter(lambda r: r["cda_is_counterfactual"])
    assert cfs["cda_round"] == [2, 2]
    assert set(result.dataset.filter(lambda r: not r["cda_is_counterfactual"])["cda_round"]) == {0}


def test_rounds_stop_once_every_target_has_a_counterfactual_and_resume_from_the_cache(tmp_path):
    rows = {"Text": ["It was boring ."], "Sentiment": ["Negative"]}
    generator = SeedGenerator("great", "great")
    config = _config(tmp_path, search={"rounds": 3})
    result = build(config, datasets.Dataset.from_dict(rows), components=Components(FakeClassifier(), generator))
    assert len(generator.calls) == 1 and [p.round for p in result.records[0].plans] == [1]

    slow = SeedGenerator("fine", "fine")  # never flips: three rounds (in a cache of its own)
    build(_config(tmp_path / "b", search={"rounds": 3}), datasets.Dataset.from_dict(rows), components=Components(FakeClassifier(), slow))
    assert len(slow.calls) == 3
    again = SeedGenerator("fine", "fine")
    rerun = build(_config(tmp_path / "b", search={"rounds": 3}), datasets.Dataset.from_dict(rows),
                  components=Components(FakeClassifier(), again))  # fmt: skip
    assert again.calls == []  # every round's outputs come from the cache
    assert [p.round for p in rerun.records[0].plans] == [1, 2, 3]


class RewriteGenerator(FakeGenerator):
    """Rewrites the whole text: a neutral word in round 1 (seed 0), a flip afterwards; counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        self.calls.append((len(prompts), sampling.seed))
        self.prompts.extend(prompts)
        return [Generation(["It was a fine and long film ." if sampling.seed == 0 else "What a great film ."] * sampling.n)
                for _ in prompts]  # fmt: skip


def test_a_free_rewrite_is_asked_again_unanchored_and_may_change_any_words(tmp_path):
    # edit.strategy {rewrite, anchor: false}: no spans to hold the edit to, so a rewrite that
    # changes every word passes the logic check; round 2 asks the same prompt with another seed.
    rows = {"Text": ["It was dull and poor ."], "Sentiment": ["Negative"]}
    generator = RewriteGenerator()
    config = _config(tmp_path, search={"rounds": 2}, edit={"strategy": {"name": "rewrite", "anchor": False}},
                     generate={"n": 1, "template": "rewrite.v1"})  # fmt: skip
    result = build(config, datasets.Dataset.from_dict(rows), components=Components(FakeClassifier(), generator))
    assert [seed for _, seed in generator.calls] == [0, 7919] and generator.prompts[0] == generator.prompts[1]
    first, second = result.records[0].plans
    assert first.spans == second.spans == [] and second.round == 2 and first.selected is None
    assert second.candidates[second.selected].segments == {"text": "What a great film ."}


def test_widen_adds_spare_spans_that_do_not_overlap(tmp_path):
    record = Record(index=0, segments={"text": "A dull, slow and long film."}, label="Negative",
                    spare_spans=[Span(segment="text", start=2, end=6, text="dull"),
                                 Span(segment="text", start=17, end=21, text="long"),
                                 Span(segment="text", start=8, end=12, text="slow")])  # fmt: skip
    plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6, text="dull")])
    strategy = make_strategy(_config(tmp_path))
    wider = strategy.widen(record, plan, round=2, add_spans=1)
    assert [s.text for s in wider.spans] == ["dull", "long"] and wider.round == 2
    assert [s.text for s in strategy.widen(record, plan, 3, add_spans=5).spans] == ["dull", "slow", "long"]
    assert strategy.widen(record, EditPlan(target_label="Positive", segment="text"), 2, 1) is None  # nothing to edit
    same = strategy.widen(record.model_copy(update={"spare_spans": []}), plan, 2, add_spans=2)
    assert same.spans == plan.spans  # no spare span left: the same mask, sampled again with another seed


def test_edits_of_keeps_word_edits_and_their_context():
    demos = edits_of("I loved this movie , it was touching .", "I hated this movie , it was dull .",
                     "Positive", "Negative", "pairs", max_words=4)  # fmt: skip
    assert [(d.old, d.new) for d in demos] == [("loved", "hated"), ("touching", "dull")]
    assert demos[0].context == "I [BLANK1] this movie , it was touching"
    assert edits_of("Good film .", "Good film !", "Positive", "Negative", "pairs", 4) == []  # no word changed
    assert edits_of("a b c d e f", "v w x y z q", "Negative", "Positive", "pairs", max_words=4) == []


def test_retrieval_keeps_to_the_direction_and_skips_the_plans_own_words():
    pool = DemonstrationPool(WordOverlapEncoder())

    def demo(source, target, old, new):
        return Demonstration(source_label=source, target_label=target, old=old, new=new)

    assert pool.add([demo("Negative", "Positive", "dull", "dull"), demo("Negative", "Positive", "dull", "lively"),
                     demo("Positive", "Negative", "dull", "great"), demo("Negative", "Positive", "poor", "rich"),
                     demo("Negative", "Positive", "dull", "lively")]) == 4  # fmt: skip  # the repeat is left out
    found = pool.retrieve("Negative", "Positive", ["dull", "poor"], k=3)
    assert [(d.old, d.new) for d in found] == [("dull", "lively"), ("poor", "rich")]  # never "dull" -> "dull"
    record = Record(index=0, segments={"text": "A dull film."}, label="Negative")
    assert retrieve_for(pool, record, EditPlan(target_label="Positive", segment="text"), k=2) == []  # no spans


def _run_with_pool(tmp_path, generator, pool, texts, n):
    """Three rounds on Negative ``texts``, demonstrations from ``pool`` (and the run's own)."""
    config = _config(tmp_path, search={"rounds": 3, "add_spans": 0},
                     generate={"n": n, "template": "infill.v2", "demonstrations": {"from_run": True, "k": 2}})
    rows = {"Text": texts, "Sentiment": ["Negative"] * len(texts)}
    return build(config, datasets.Dataset.from_dict(rows),
                 components=Components(FakeClassifier(), generator, demonstrations=pool))  # fmt: skip


def test_prompts_show_retrieved_demonstrations(tmp_path):
    pool = DemonstrationPool(WordOverlapEncoder())
    pool.add([Demonstration(source_label="Negative", target_label="Positive", old="boring", new="gripping",
                            context="A bad , [BLANK1] plot")])  # fmt: skip
    result = _run_with_pool(tmp_path, SeedGenerator("fine", "great"), pool, ["It was boring .", "So dull here ."], n=2)
    first = result.records[0].plans[0]
    assert [(d.old, d.new) for d in first.demonstrations] == [("boring", "gripping")]
    assert '"boring" -> "gripping"' in first.candidates[0].prompt
    assert "Text: A bad , [BLANK1] plot" in first.candidates[0].prompt  # the worked example is the demonstration
    assert [p.round for p in result.records[1].plans] == [1, 2]  # round 2 flipped it ("great"): no round 3


def test_round_three_sees_the_edits_accepted_in_round_two(tmp_path):
    class PerRecord(SeedGenerator):
        def generate(self, prompts, sampling):
            out = super().generate(prompts, sampling)
            if sampling.seed != 0 and len(self.calls) == 2:  # round 2: only the first prompt flips
                out = [out[0]] + [Generation([g.texts[0].replace("great", "fine")] * sampling.n) for g in out[1:]]
            return out

    pool = DemonstrationPool(WordOverlapEncoder())
    result = _run_with_pool(tmp_path, PerRecord("fine", "great"), pool, ["It was dull .", "So dull here ."], n=1)
    third = next(p for p in result.records[1].plans if p.round == 3)
    assert [(d.old, d.new, d.origin) for d in third.demonstrations] == [("dull", "great", "run")]
    assert '"dull" -> "great"' in third.candidates[0].prompt


def test_demonstrations_and_search_settings_are_checked():
    base = {"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"}, "label_column": "y", "labels": ["a", "b"]}}
    with pytest.raises(ConfigError, match="needs pairs and/or from_run"):
        config_from_dict({**base, "generate": {"demonstrations": {"from_run": False}}})
    with pytest.raises(ConfigError, match="search.rounds"):
        config_from_dict({**base, "search": {"rounds": 0}})
    with pytest.raises(ConfigError, match="pairs needs either key"):
        config_from_dict({**base, "generate": {"demonstrations": {"pairs": {"path": "p.tsv"}}}})


def test_substitute_adds_the_pools_most_common_replacement_as_a_candidate(tmp_path):
    pool = DemonstrationPool(WordOverlapEncoder())
    pool.add([Demonstration(source_label="Negative", target_label="Positive", old="boring", new=new)
              for new in ("fine", "great", "great")])  # fmt: skip
    generator = SeedGenerator("fine", "fine")
    config = _config(tmp_path, generate={"n": 2, "template": "infill.v2",
                                         "demonstrations": {"from_run": True, "substitute": True}})  # fmt: skip
    rows = {"Text": ["It was boring .", "Nothing much here ."], "Sentiment": ["Negative", "Positive"]}
    result = build(config, datasets.Dataset.from_dict(rows),
                   components=Components(FakeClassifier(), generator, demonstrations=pool))  # fmt: skip
    plan = result.records[0].plans[0]
    retrieved = [c for c in plan.candidates if c.generator == "retrieved:demonstrations"]
    assert [c.segments["text"] for c in retrieved] == ["It was great ."] and retrieved[0].sample_index == 2
    assert plan.best is retrieved[0]  # the LLM's "fine" does not flip; people's "great" does
    assert not [c for c in result.records[1].plans[0].candidates if c.generator.startswith("retrieved")]  # no match


def test_the_change_prior_moves_rationales_to_words_people_change():
    from cda.explain.prior import ChangePrior, change_counts

    counts = change_counts([("a dull film", "a great film", "Negative"), ("a dull plot", "a tight plot", "Negative"),
                            ("the film was good", "the film was bad", "Positive")])  # fmt: skip
    assert counts["Negative"]["dull"] == (2, 2) and counts["Negative"]["film"] == (0, 1)
    prior = ChangePrior.from_counts(counts)
    assert prior.rate("dull", "Negative") > prior.rate("film", "Negative") > 0
    assert prior.rate("unseen", "Negative") == prior.base


def test_explain_weighs_attribution_by_the_prior():
    from cda.config import ExplainConfig, PairsConfig, PriorConfig, TaskConfig
    from cda.explain.prior import ChangePrior
    from cda.explain.spans import SpanSelector
    from cda.protocols import Attribution, TokenScore

    task = TaskConfig(segments={"text": "Text"}, label_column="y", labels=["Negative", "Positive"])
    text = "The summer movie was dull"
    # The classifier's gradient favours "summer"; people change "dull".
    scores = [TokenScore("text", 4, 10, 1.0), TokenScore("text", 11, 16, 0.2), TokenScore("text", 21, 25, 0.6)]
    attribution = Attribution("Negative", scores, {"text": len(text)})
    settings = dict(words="all", top_fraction=1.0, min_score=0.5, max_spans=1)
    plain = SpanSelector(ExplainConfig(**settings), task)
    assert [s.text for s in plain.spans({"text": text}, attribution)] == ["summer"]
    prior = ChangePrior.from_counts({"Negative": {"dull": (8, 10), "summer": (0, 10), "movie": (0, 40)}})
    config = ExplainConfig(**settings, prior=PriorConfig(pairs=PairsConfig(path="p.tsv", key="id")))
    spans, spare = SpanSelector(config, task, prior=prior).ranked({"text": text}, attribution)
    assert [s.text for s in spans] == ["dull"] and [s.text for s in spare] == []  # "summer" now scores too low


def test_edit_select_is_refused_with_the_ray_executor():
    base = {"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"}, "label_column": "y", "labels": ["a", "b"]}}
    with pytest.raises(ConfigError, match="edit.select needs the local executor"):
        config_from_dict({**base, "edit": {"select": {"limit": 3}}, "executor": "ray"})
    assert config_from_dict({**base, "executor": "ray"}).edit.select.order == "all"


@pytest.mark.parametrize("override, message", [
    ("generate.demonstrations={pairs: {path: demo/nope.tsv, key: batch_id}}", "generate.demonstrations.pairs.path 'demo/nope.tsv' does not exist"),
    ("explain.prior={pairs: {path: demo/imdb_pairs.tsv, key: pair}}", "lacks column(s) ['pair']"),
])  # fmt: skip
def test_a_bad_pairs_file_is_a_one_line_error_before_any_model(root, monkeypatch, override, message):
    from typer.testing import CliRunner

    from cda.cli import app

    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["build", "--config", "configs/imdb.yaml", "--dry-run", override])
    assert result.exit_code == 2 and message in result.output


def test_a_plan_never_gets_the_human_edit_of_its_own_text():
    from cda.generate.demonstrations import text_id
    from cda.generate.stage import substitution_candidates

    own = "It was dull ."
    pool = DemonstrationPool(WordOverlapEncoder())
    pool.add(edits_of(own, "It was gripping .", "Negative", "Positive", "pairs", 4)
             + edits_of("A dull plot .", "A tight plot .", "Negative", "Positive", "pairs", 4))  # fmt: skip
    record = Record(index=0, segments={"text": own}, label="Negative")
    plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=7, end=11, text="dull")])
    assert [d.new for d in retrieve_for(pool, record, plan, k=4)] == ["tight"]
    assert [c.segments["text"] for c in substitution_candidates(pool, record, plan, "[BLANK{i}]", 2)] == ["It was tight ."]
    assert pool.replacement("Negative", "Positive", "dull", exclude=text_id("A dull plot .")).new == "gripping"


class SentenceGenerator(FakeGenerator):
    """Rewrites the sentence of a trained_rewrite prompt word by word (``flips``); an empty answer for a
    sentence with ``fail`` in it. Records the sentence of every prompt."""

    def __init__(self, flips: dict[str, str], fail: str = "\0") -> None:
        super().__init__()
        self.flips, self.fail = flips, fail
        self.sentences: list[str] = []

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        out = []
        for prompt in prompts:
            sentence = prompt.split("): ", 1)[1]
            self.sentences.append(sentence)
            rewrite = "" if self.fail in sentence else " ".join(self.flips.get(w, w) for w in sentence.split())
            out.append(Generation([rewrite] * sampling.n))
        return out


def _sentence_config(tmp_path, anchor: bool, **strategy):
    return _config(tmp_path, edit={"strategy": {"name": "rewrite", "unit": "sentence", "anchor": anchor, **strategy}},
                   generate={"n": 1, "template": "trained_rewrite.v1"})  # fmt: skip


def test_a_sentence_rewrite_asks_each_sentence_alone_and_puts_the_answers_back(tmp_path):
    rows = {"Text": ["It was dull .  I saw it in May . The plot was poor ."], "Sentiment": ["Negative"]}
    generator = SentenceGenerator({"dull": "great", "poor": "fine"})
    result = build(_sentence_config(tmp_path, anchor=False), datasets.Dataset.from_dict(rows),
                   components=Components(FakeClassifier(), generator))  # fmt: skip
    assert generator.sentences == ["It was dull .", "I saw it in May .", "The plot was poor ."]
    plan = result.records[0].plans[0]
    assert [s.text for s in plan.spans] == generator.sentences
    chosen = plan.candidates[plan.selected]
    # The spacing between sentences is the original's (two spaces after the first).
    assert chosen.segments == {"text": "It was great .  I saw it in May . The plot was fine ."} == {"text": chosen.raw}
    assert "Text (Negative -> Positive): I saw it in May ." in chosen.prompt.split("\n\n")


def test_an_anchored_sentence_rewrite_asks_only_the_sentences_that_hold_spans(tmp_path):
    # explain.max_spans 1: the strongest word, "dull"; the other sentences are left as they are.
    rows = {"Text": ["I saw it in May . It was dull . The plot was long ."], "Sentiment": ["Negative"]}
    generator = SentenceGenerator({"dull": "great"})
    result = build(_sentence_config(tmp_path, anchor=True), datasets.Dataset.from_dict(rows),
                   components=Components(FakeClassifier(), generator))  # fmt: skip
    assert generator.sentences == ["It was dull ."]
    plan = result.records[0].plans[0]
    assert plan.candidates[plan.selected].segments == {"text": "I saw it in May . It was great . The plot was long ."}


def test_a_sentence_rewrite_fails_a_candidate_whose_sentence_cannot_be_read_and_skips_long_sentences(tmp_path):
    rows = {"Text": ["It was dull . The cast was poor . One two three four five six seven ."], "Sentiment": ["Negative"]}
    generator = SentenceGenerator({"dull": "great"}, fail="cast")
    result = build(_sentence_config(tmp_path, anchor=False, max_sentence_words=6), datasets.Dataset.from_dict(rows),
                   components=Components(FakeClassifier(), generator))  # fmt: skip
    assert generator.sentences == ["It was dull .", "The cast was poor ."]  # the 8-word sentence is not asked
    candidate = result.records[0].plans[0].candidates[0]
    assert candidate.segments is None and candidate.error == "sentence 2 of 2: empty output"

    nothing = {"Text": ["One two three four five six seven eight ."], "Sentiment": ["Negative"]}
    result = build(_sentence_config(tmp_path / "b", anchor=False, max_sentence_words=6), datasets.Dataset.from_dict(nothing),
                   components=Components(FakeClassifier(), SentenceGenerator({})))  # fmt: skip
    assert [c.error for c in result.records[0].plans[0].candidates] == ["no sentence of at most 6 words to rewrite"]
