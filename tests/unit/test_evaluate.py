"""`cda evaluate` on a tiny hand-made build output: every number hand-computed, the report
written, and each kind of bad input a clear error or a counted warning."""

from __future__ import annotations

import json
import logging

import datasets
import pytest

from cda.config import TaskConfig
from cda.evaluate import EvalComponents, JudgeError, NotCdaDatasetError, ReferencePairingError, evaluate, load_build_output
from cda.evaluate.judges import judge_from_path
from cda.evaluate.reference import guess_key, pair_reference
from cda.records import Record
from tests.build_outputs import write_reference, write_tiny_build
from tests.fakes import FakeClassifier

BLEU_REALLY_GOOD_VS_GREAT = 100 * (3 / 5 * 1 / 4 * 1 / 6 * 1 / 8) ** 0.25  # 23.64: also vs "It was bad ."
BLEU_GOOD_FILM_VS_TERRIBLE = 100 * (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25  # 35.36: also vs "A great film ."


class LeansNegative:
    """An 'independent' judge that always gives Negative 0.6."""

    name = "leans-negative"
    labels = ["Negative", "Positive"]

    def predict_proba(self, inputs):
        return [{"Negative": 0.6, "Positive": 0.4} for _ in inputs]


class WordCountLM:
    """Perplexity = 10 x the number of whitespace tokens."""

    name = "word-count-lm"

    def perplexity(self, texts):
        return [10.0 * len(t.split()) for t in texts]


def _components():
    return EvalComponents(task_judge=FakeClassifier(), independent_judge=LeansNegative(), language_model=WordCountLM())


@pytest.fixture
def build_dir(tmp_path):
    return write_tiny_build(tmp_path / "build")


def test_metrics_match_hand_computed_values(build_dir, tmp_path):
    reference = write_reference(tmp_path / "ref.tsv")
    result = evaluate(build_dir, reference=reference, components=_components(), output_dir=tmp_path / "eval")
    m = result.metrics
    assert (m["originals"], m["counterfactuals"], m["originals_with_counterfactual"]) == (3, 2, 2)

    cda = m["cda"]["overall"]
    # "It was really good ." flips to Positive (0.9); "A good film ." does not flip to Negative (0.1).
    assert cda["flip_task"]["mean"] == 0.5 and cda["prob_task"]["mean"] == 0.5
    assert m["cda"]["by_pair"]["Negative→Positive"]["flip_task"]["mean"] == 1.0
    assert m["cda"]["by_pair"]["Positive→Negative"]["flip_task"]["mean"] == 0.0
    # The independent judge always says Negative.
    assert m["cda"]["by_pair"]["Negative→Positive"]["flip_independent"]["mean"] == 0.0
    assert m["cda"]["by_pair"]["Positive→Negative"]["prob_independent"]["mean"] == 0.6
    # Token edit distances 2/5 and 1/4.
    assert cda["edit_distance"]["mean"] == pytest.approx(0.325)
    assert cda["bleu_to_original"]["mean"] == pytest.approx((BLEU_REALLY_GOOD_VS_GREAT + BLEU_GOOD_FILM_VS_TERRIBLE) / 2, abs=1e-3)
    # Perplexity ratios 50/40 and 40/40.
    assert cda["perplexity_ratio"]["median"] == pytest.approx(1.125)
    # Only original 0 has two parsed candidates: self-BLEU of "It was really good ." and "It was good .".
    a = 100 * (4 / 5 * 2 / 4 * 1 / 6 * 1 / 8) ** 0.25
    b = 100 * 2.718281828459045 ** (1 - 5 / 4) * (2 / 3 * 1 / 4 * 1 / 4) ** 0.25
    assert cda["self_bleu"]["n"] == 1 and cda["self_bleu"]["mean"] == pytest.approx((a + b) / 2, abs=1e-3)
    assert m["diversity"]["plans"] == 1 and m["diversity"]["plans_with_fewer_than_2_parsed"] == 2

    human = m["human"]["overall"]
    assert human["count"] == 3 and human["flip_task"]["mean"] == 1.0
    assert human["edit_distance"]["mean"] == pytest.approx((0.25 + 0.25 + 0.5) / 3, abs=1e-4)
    assert human["perplexity_ratio"]["mean"] == 1.0
    assert m["reference"]["paired"] == 3 and m["reference"]["method"] == "key:batch_id"
    # cda edited originals 0 and 1; their human counterfactuals change 1 of 4 tokens each.
    same = m["human_same_originals"]["overall"]
    assert same["count"] == 2 and same["edit_distance"]["mean"] == pytest.approx(0.25)

    close = m["closeness"]
    assert close["pairs"] == 2
    assert close["edit_distance_to_human"]["mean"] == pytest.approx((0.4 + 0.25) / 2)
    assert close["bleu_to_human"]["mean"] == pytest.approx((BLEU_REALLY_GOOD_VS_GREAT + BLEU_GOOD_FILM_VS_TERRIBLE) / 2, abs=1e-3)
    # bad -> "really good" (human: great), great -> good (human: terrible): the same words changed
    assert close["words_changed_by_human_too"]["mean"] == 1.0 and close["human_words_changed"]["mean"] == 1.0

    assert m["judges"]["task"]["accuracy_on_originals"] == 1.0
    assert m["judges"]["independent"]["accuracy_on_originals"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["candidates"] == {
        "Negative→Positive": {"selected": 1, "dropped: label": 1, "dropped: parse": 1, "dropped: minimality": 1},
        "Positive→Negative": {"selected": 1},
    }


def test_report_files_and_highlighted_examples(build_dir, tmp_path):
    result = evaluate(build_dir, reference=write_reference(tmp_path / "ref.tsv"), components=_components())
    out = build_dir / "evaluation"
    assert result.output_dir == out
    for name in ("metrics.json", "examples.jsonl", "report.md", "report.html", "edit_distance.png",
                 "judge_confidence.png", "candidates.png"):  # fmt: skip
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["counterfactuals"] == 2
    lines = (out / "examples.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == ["cda", "cda", "human", "human", "human"]
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "**really good**" in md and "**bad**" in md
    assert "<mark>really good</mark>" in html and "<mark>terrible</mark>" in html
    assert "| metric | cda | human | human, same originals |" in md
    assert "<img src=\"edit_distance.png\"" in html


def test_without_reference_or_fluency(build_dir):
    result = evaluate(build_dir, components=EvalComponents(task_judge=FakeClassifier()), judge=None, fluency=False)
    m = result.metrics
    assert "human" not in m and "closeness" not in m
    assert list(m["judges"]) == ["task"]
    assert m["cda"]["overall"]["perplexity"]["n"] == 0
    assert "| metric | cda |" in (result.output_dir / "report.md").read_text()


def test_accepts_the_dataset_folder_itself(build_dir):
    out = load_build_output(build_dir / "dataset")
    assert out.root == build_dir and out.audit is not None
    assert [r.index for r in out.originals()] == [0, 1, 2]
    assert [(c.original_index, c.target) for c in out.counterfactuals()] == [(0, "Positive"), (1, "Negative")]


def test_dataset_without_cda_columns(tmp_path):
    datasets.Dataset.from_dict({"Text": ["a"], "Sentiment": ["Negative"]}).save_to_disk(str(tmp_path / "plain"))
    with pytest.raises(NotCdaDatasetError, match="cda_is_counterfactual"):
        evaluate(tmp_path / "plain", components=_components())


def test_missing_config_says_where(tmp_path, build_dir):
    (build_dir / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        evaluate(build_dir, components=_components())


def test_reference_that_does_not_pair(build_dir, tmp_path):
    ref = tmp_path / "other.tsv"
    ref.write_text("Sentiment\tText\tbatch_id\nPositive\tSomething else .\t500\nNegative\tAnother .\t500\n")
    with pytest.raises(ReferencePairingError, match="None of the 3 originals paired"):
        evaluate(build_dir, reference=ref, components=_components())


def test_reference_that_pairs_partly_warns_with_counts(build_dir, tmp_path, caplog):
    ref = tmp_path / "partial.tsv"
    ref.write_text("Sentiment\tText\tbatch_id\nNegative\tIt was bad .\t10\nPositive\tIt was great .\t10\n")
    with caplog.at_level(logging.WARNING):
        result = evaluate(build_dir, reference=ref, components=_components())
    assert result.metrics["reference"]["paired"] == 1 and result.metrics["reference"]["unpaired"] == 2
    assert result.metrics["reference"]["problems"] == {"batch_id not in the reference": 2}
    assert "1 of 3 originals paired" in caplog.text


def test_reference_without_task_columns(build_dir, tmp_path):
    ref = tmp_path / "bad.tsv"
    ref.write_text("label\tsentence\nPositive\tx\n")
    with pytest.raises(ReferencePairingError, match="lacks column"):
        evaluate(build_dir, reference=ref, components=_components())


def _hf_folder(path, config: dict):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_judge_path_that_is_not_a_classifier(tmp_path, build_dir):
    cfg = load_build_output(build_dir).config
    folder = _hf_folder(tmp_path / "encoder", {"architectures": ["BertModel"], "model_type": "bert"})
    with pytest.raises(JudgeError, match="not a sequence classifier"):
        judge_from_path(folder, cfg)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(JudgeError, match="holds no model"):
        judge_from_path(empty, cfg)
    with pytest.raises(FileNotFoundError):
        judge_from_path(tmp_path / "missing", cfg)


def test_judge_with_other_label_names(tmp_path, build_dir):
    cfg = load_build_output(build_dir).config
    arch = {"architectures": ["BertForSequenceClassification"], "model_type": "bert"}
    other = _hf_folder(tmp_path / "other", {**arch, "id2label": {"0": "neg", "1": "pos"}})
    with pytest.raises(JudgeError, match="differ from task.labels"):
        judge_from_path(other, cfg)
    unnamed = _hf_folder(tmp_path / "unnamed", {**arch, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}})
    with pytest.raises(JudgeError, match="unnamed labels"):
        judge_from_path(unnamed, cfg)


def test_judge_labels_must_cover_targets(build_dir):
    class ThreeWay(LeansNegative):
        labels = ["entailment", "neutral", "contradiction"]

        def predict_proba(self, inputs):
            return [dict.fromkeys(self.labels, 1 / 3) for _ in inputs]

    with pytest.raises(JudgeError, match="has labels"):
        evaluate(build_dir, components=EvalComponents(task_judge=ThreeWay()), judge=None, fluency=False)


NLI = TaskConfig(
    segments={"premise": "sentence1", "hypothesis": "sentence2"}, label_column="gold_label",
    labels=["entailment", "neutral", "contradiction"],
)  # fmt: skip


def test_nli_reference_pairs_by_position_checked_by_overlap():
    originals = [
        Record(index=0, segments={"premise": "A boy kicks a ball.", "hypothesis": "A boy plays soccer outside."}, label="neutral"),
        Record(index=1, segments={"premise": "Friends run a race.", "hypothesis": "People run because they are in love."},
               label="neutral"),
    ]  # fmt: skip
    reference = datasets.Dataset.from_dict({
        "sentence1": ["A boy kicks a ball.", "A boy kicks a ball.", "Two cats sleep on a sofa.", "Friends run a race."],
        "sentence2": ["A boy plays cricket.", "A boy plays soccer.", "Nothing alike here at all.", "People run."],
        "gold_label": ["contradiction", "entailment", "contradiction", "entailment"],
    })  # fmt: skip
    pairing = pair_reference(originals, None, reference, NLI, key=None, per_original=2)
    assert pairing.method == "position:2"
    assert [(c.original_index, c.target, c.segment) for c in pairing.counterfactuals] == [
        (0, "contradiction", "hypothesis"), (0, "entailment", "hypothesis"), (1, "entailment", "hypothesis"),
    ]  # fmt: skip
    assert pairing.paired == 2 and pairing.problems == {"texts do not overlap (position pairing)": 1}


def test_guess_key_ignores_task_and_cda_columns():
    task = TaskConfig(segments={"text": "Text"}, label_column="Sentiment", labels=["Negative", "Positive"])
    assert guess_key(["Text", "Sentiment", "batch_id", "cda_original_index"], ["Sentiment", "Text", "batch_id"], task) == "batch_id"
    assert guess_key(["Text", "Sentiment"], ["Text", "Sentiment"], task) is None
    with pytest.raises(ReferencePairingError, match="several key columns"):
        guess_key(["Text", "Sentiment", "a", "b"], ["Text", "Sentiment", "a", "b"], task)


def test_nli_build_with_revised_premise_reference(tmp_path):
    """Position pairing end to end; a human who revised the premise is no closeness reference
    for a generated hypothesis."""
    import yaml

    from cda.config import config_from_dict
    from cda.export.dataset import to_audit_dataset, to_dataset
    from cda.records import Candidate, Check, EditPlan

    class Uniform:
        name = "uniform"
        labels = ["entailment", "neutral", "contradiction"]

        def predict_proba(self, inputs):
            return [{"entailment": 0.2, "neutral": 0.3, "contradiction": 0.5} for _ in inputs]

    cfg = config_from_dict({"data": {"path": "unused.tsv"}, "task": NLI.model_dump()})
    table = datasets.Dataset.from_dict({"sentence1": ["A boy kicks a ball."], "sentence2": ["A boy plays soccer outside."],
                                        "gold_label": ["neutral"]})  # fmt: skip
    record = Record(index=0, segments={"premise": "A boy kicks a ball.", "hypothesis": "A boy plays soccer outside."},
                    label="neutral")  # fmt: skip
    best = Candidate(segments={"premise": "A boy kicks a ball.", "hypothesis": "A boy plays chess inside."},
                     checks=[Check(name="label", passed=True)])  # fmt: skip
    record.plans = [EditPlan(target_label="contradiction", segment="hypothesis", candidates=[best], selected=0)]
    build = tmp_path / "nli"
    to_dataset(table, [record], cfg).save_to_disk(str(build / "dataset"))
    to_audit_dataset([record], cfg).save_to_disk(str(build / "audit"))
    (build / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    ref = tmp_path / "revised_premise.tsv"
    ref.write_text("sentence1\tsentence2\tgold_label\n"
                   "A boy kicks a ball in the garden.\tA boy plays soccer outside.\tentailment\n"
                   "A boy kicks a ball in the house.\tA boy plays soccer outside.\tcontradiction\n")  # fmt: skip
    result = evaluate(build, reference=ref, components=EvalComponents(task_judge=Uniform()), judge=None, fluency=False)
    m = result.metrics
    assert m["reference"]["method"] == "position:2" and m["reference"]["human_counterfactuals"] == 2
    assert m["cda"]["overall"]["flip_task"]["mean"] == 1.0 and m["human"]["overall"]["flip_task"]["mean"] == 0.5
    assert [r["segment"] for r in result.rows] == ["hypothesis", "premise", "premise"]
    assert m["closeness"]["pairs"] == 0
    assert m["cda"]["by_pair"]["neutral→contradiction"]["edit_distance"]["mean"] == pytest.approx(2 / 6, abs=1e-4)  # soccer->chess, outside->inside


def test_a_counterfactual_of_several_segments_is_compared_on_their_joined_texts():
    from cda.evaluate.build_output import Counterfactual
    from cda.evaluate.evaluation import _base_row

    original = Record(index=0, label="SUPPORTS", segments={"claim": "A is B.", "evidence": "A is B.\nC is D."})
    cf = Counterfactual(original_index=0, segments={"claim": "X is B.", "evidence": "X is B.\nC is D."},
                        source="SUPPORTS", target="SUPPORTS", segment="claim,evidence")
    row = _base_row(cf, original)
    assert (row["original"], row["counterfactual"]) == ("A is B.\nA is B.\nC is D.", "X is B.\nX is B.\nC is D.")


# ------------------------------------------------------------------ the search funnel per round
# A hand-made audit of three search rounds over the tiny build's three (original, target) pairs:
#   (0, Positive): round 1 drops all 3 (label, parse, minimality); round 2 selects 1 of 2 (other: label)
#   (1, Negative): round 1 selects its only candidate
#   (2, Positive): round 1 minimality, round 2 label, round 3 parse: never a counterfactual
FUNNEL_AUDIT = [  # (original_index, source, target, round, parsed, accepted, selected, drop_reason)
    (0, "Negative", "Positive", 1, "It was good .", False, False, "label"),
    (0, "Negative", "Positive", 1, None, False, False, "parse"),
    (0, "Negative", "Positive", 1, "It was very very very good .", False, False, "minimality"),
    (0, "Negative", "Positive", 2, "It was really good .", True, True, None),
    (0, "Negative", "Positive", 2, "It was fine .", False, False, "label"),
    (1, "Positive", "Negative", 1, "A good film .", True, True, None),
    (2, "Negative", "Positive", 1, "Great fun and a wonderful time .", False, False, "minimality"),
    (2, "Negative", "Positive", 2, "Dull and fun .", False, False, "label"),
    (2, "Negative", "Positive", 3, None, False, False, "parse"),
]  # fmt: skip


def _build_with_rounds(tmp_path, with_round: bool = True):
    """The tiny build with the hand-made audit (without its ``round`` column: a build from before search rounds)."""
    import shutil

    source = write_tiny_build(tmp_path / "tiny")
    folder = tmp_path / "rounds"
    folder.mkdir()
    for name in ("config.yaml", "summary.json"):
        shutil.copy(source / name, folder / name)
    dataset = datasets.load_from_disk(str(source / "dataset"))
    if "cda_round" in dataset.column_names:
        dataset = dataset.remove_columns("cda_round")
    if with_round:  # originals 0; the counterfactual of original 0 came in round 2, of original 1 in round 1
        dataset = dataset.add_column("cda_round", [0, 0, 0, 2, 1])
    dataset.save_to_disk(str(folder / "dataset"))
    names = ("original_index", "source_label", "target_label", "round", "parsed", "accepted", "selected", "drop_reason")
    columns = {name: [row[k] for row in FUNNEL_AUDIT] for k, name in enumerate(names)}
    if not with_round:
        del columns["round"]
    datasets.Dataset.from_dict(columns).save_to_disk(str(folder / "audit"))
    return folder


def test_funnel_per_round_from_a_hand_made_audit(tmp_path):
    result = evaluate(_build_with_rounds(tmp_path), components=_components(), fluency=False)
    funnel = result.metrics["funnel"]
    assert [step["round"] for step in funnel] == [1, 2, 3]
    assert [(s["plans"], s["candidates"], s["accepted"], s["counterfactuals"]) for s in funnel] == [
        (3, 5, 1, 1), (2, 3, 1, 1), (1, 1, 0, 0)]  # fmt: skip
    assert [s["dropped"] for s in funnel] == [{"minimality": 2, "label": 1, "parse": 1}, {"label": 2}, {"parse": 1}]
    assert [s["plans_with_counterfactual"] for s in funnel] == [1, 1, 0]
    assert [s["cumulative_with_counterfactual"] for s in funnel] == [1, 2, 2]
    assert [s["cumulative_share"] for s in funnel] == [0.3333, 0.6667, 0.6667]
    assert {s["pairs"] for s in funnel} == {3}
    # Round 1's counterfactual "A good film ." (→ Negative): the fake task judge says Positive, the
    # independent one (always Negative) confirms it; round 2's "It was really good ." the other way round.
    assert [(s["confirmed_task"], s["confirmed_independent"]) for s in funnel] == [(0, 1), (1, 0), (0, 0)]
    assert json.loads((result.output_dir / "metrics.json").read_text())["funnel"] == funnel

    md = (result.output_dir / "report.md").read_text()
    assert "## Search funnel per round" in md
    # Drop reasons by their count over all rounds (label 3, minimality 2, parse 2).
    assert ("| round | plans | candidates | accepted | dropped: label | dropped: minimality | dropped: parse | "
            "counterfactuals | plans with a counterfactual | cumulative with a counterfactual | cumulative share | "
            "confirmed by the task judge | confirmed by the independent judge |") in md
    assert "| 2 | 2 | 3 | 1 | 2 | 0 | 0 | 1 | 1 | 2 | 0.667 | 1 | 0 |" in md
    html = (result.output_dir / "report.html").read_text()
    assert "<h2>Search funnel per round</h2>" in html and "<th>cumulative share</th>" in html


def test_funnel_of_an_audit_without_rounds_is_all_round_1(tmp_path):
    result = evaluate(_build_with_rounds(tmp_path, with_round=False), components=EvalComponents(task_judge=FakeClassifier()),
                      judge=None, fluency=False)  # fmt: skip
    (step,) = result.metrics["funnel"]
    assert (step["round"], step["plans"], step["candidates"], step["accepted"], step["counterfactuals"]) == (1, 3, 9, 2, 2)
    assert step["dropped"] == {"label": 3, "parse": 2, "minimality": 2}
    assert (step["plans_with_counterfactual"], step["cumulative_share"]) == (2, 0.6667)
    assert step["confirmed_task"] == 1 and "confirmed_independent" not in step
    assert all(r["round"] == 1 for r in result.rows if r["kind"] == "cda")


def test_funnel_of_the_tiny_build(build_dir):
    result = evaluate(build_dir, components=EvalComponents(task_judge=FakeClassifier()), judge=None, fluency=False)
    (step,) = result.metrics["funnel"]
    assert (step["plans"], step["candidates"], step["plans_with_counterfactual"], step["cumulative_share"]) == (3, 5, 2, 0.6667)


def test_changed_word_overlap_counts_the_originals_words_both_changed():
    from cda.evaluate.metrics import changed_word_overlap

    original = "The plot is dull and the acting is wooden ."
    human = "The plot is gripping and the acting is superb ."
    assert changed_word_overlap(original, "The plot is gripping and the acting is wooden .", human) == (1.0, 0.5)
    assert changed_word_overlap(original, "The story is gripping and the acting is wooden .", human) == (0.5, 0.5)
    assert changed_word_overlap(original, original, human) == (None, 0.0)
