"""cda review without a server: candidates and ids, the review page, decisions read from a saved
Label Studio export, the reviewed dataset, training pairs, agreement and the evaluate report.

``test_review_export.json`` is a real snapshot export (Label Studio 1.23.2) of the tiny build of
``tests/build_outputs.py`` after a reviewer rejected the selected candidate of original 0,
accepted its dropped sibling, corrected the candidate of original 1 to "A bad film ." and
skipped the one of original 2. Its candidate ids are those of that build: if the tiny build
changes, export it again.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import datasets
import pytest

from cda.config import config_from_dict
from cda.evaluate.build_output import load_build_output
from cda.pipeline import Components
from cda.review.agreement import review_metrics, review_sections, review_summary
from cda.review.candidates import candidate_id, choose, diff_html, read_candidates, word_diff
from cda.review.decisions import decisions_from_export
from cda.review.errors import LabelStudioError, ReviewError
from cda.review.labeling import REJECT_REASONS, label_config, to_task
from cda.review.recheck import FilterRecheck
from cda.review.reviewed import PAIR_KEY, apply_review, review_columns
from cda.review.rounds import PAIRS_FILE, default_title, load_build, write_review
from cda.review.settings import Credentials, LabelStudioSettings, load_credentials, load_or_create_credentials
from tests.build_outputs import config_dict, write_tiny_build
from tests.fakes import FakeClassifier

EXPORT = Path(__file__).with_name("test_review_export.json")
REJECTED, RESCUED, CORRECTED, SKIPPED = (
    "0-Positive-text-s0-0b16d746", "0-Positive-text-s1-752efc64", "1-Negative-text-s0-6003edae", "2-Positive-text-s0-e627feea",
)  # fmt: skip


@pytest.fixture
def build(tmp_path):
    return load_build_output(write_tiny_build(tmp_path / "build"))


@pytest.fixture
def export() -> list[dict]:
    return json.loads(EXPORT.read_text(encoding="utf-8"))


def test_candidate_ids_are_stable_and_match_the_saved_export(build, export):
    ids = [c.candidate_id for c in read_candidates(build.audit)]
    assert ids == [c.candidate_id for c in read_candidates(load_build_output(build.root).audit)]
    assert [t["data"]["candidate_id"] for t in export] == [REJECTED, RESCUED, CORRECTED, SKIPPED]
    assert set(ids) >= {REJECTED, RESCUED, CORRECTED, SKIPPED}
    # Other text, other id: a rebuilt candidate is a new task.
    assert candidate_id(0, "Positive", "text", 0, "It was fine .", "") != candidate_id(0, "Positive", "text", 0, "It was ok .", "")


def test_which_chooses_candidates_with_text(build):
    candidates = read_candidates(build.audit)
    assert [c.candidate_id for c in choose(candidates, "accepted")] == [REJECTED, CORRECTED]
    assert [c.candidate_id for c in choose(candidates, "dropped")] == [RESCUED, SKIPPED]  # the parse failure has no text
    assert len(choose(candidates, "all")) == 4 and len(choose(candidates, "all", with_text=False)) == 5
    with pytest.raises(ReviewError, match="not allowed; use one of accepted, dropped, all"):
        choose(candidates, "selected")


def test_word_diff_and_html():
    assert [(op, t) for op, t in word_diff("It was bad .", "It was really good .") if op != "equal"] == [
        ("delete", "bad"), ("insert", "really good")]
    assert diff_html("a <i>b</i>", "a <i>c</i>") == "a &lt;i&gt;<del>b</del><ins>c</ins>&lt;/i&gt;"
    assert word_diff("same", "same") == [("equal", "same")]


def test_label_config_and_task(build):
    config = label_config()
    assert all(f'value="{r}"' in config for r in REJECT_REASONS)
    assert 'visibleWhen="choice-selected"' in config and "<TextArea" in config and "$diff_html" in config
    assert "$context" not in config and "$context" in label_config(context=True)
    task = to_task(read_candidates(build.audit)[1], build="b")
    assert task["data"]["filter"] == "dropped: label" and task["data"]["diff_html"] == "It was <del>bad</del><ins>good</ins> ."
    assert task["data"]["candidate_id"] == RESCUED
    assert task["data"]["checks"].startswith("✓ logic · ✗ label")
    assert task["predictions"][0]["result"][0]["value"]["text"] == ["It was good ."]


def test_decisions_from_the_saved_export(export):
    decisions = decisions_from_export(export)
    assert {cid: d.status for cid, d in decisions.items()} == {
        REJECTED: "rejected", RESCUED: "accepted", CORRECTED: "corrected", SKIPPED: "pending"}
    assert decisions[REJECTED].reasons == ["not minimal", "other"]
    assert decisions[CORRECTED].text == "A bad film ."
    assert decisions[RESCUED].reviewer == "cda@localhost" and decisions[RESCUED].time.startswith("20")
    assert decisions[SKIPPED].reviewer is None  # a skipped task is no decision


def test_reviewed_dataset(build, export):
    recheck = FilterRecheck(build.config, Components(classifier=FakeClassifier()))
    reviewed = apply_review(build, decisions_from_export(export), recheck=recheck)
    ds = reviewed.dataset
    # Same schema as the build, plus the review columns.
    assert ds.column_names == build.dataset.column_names + [c.name for c in review_columns()]
    assert ds.features["Sentiment"] == build.dataset.features["Sentiment"]
    rows = ds.to_list()
    assert [r["cda_review_status"] for r in rows] == ["", "", "", "accepted", "corrected"]
    rescued, corrected = rows[3], rows[4]
    # Original 0: the reviewer rejected the selected candidate and accepted the one the label check dropped.
    assert rescued["Text"] == "It was good ." and rescued["cda_review_rescued"] and rescued["cda_original_index"] == 0
    assert rescued["batch_id"] == "10" and rescued["Sentiment"] == "Positive"
    assert [c["name"] for c in json.loads(rescued["cda_checks"])] == ["logic", "label"]  # the build's verdict, kept
    # Original 1: corrected text replaces the generated one and is checked again.
    assert corrected["Text"] == "A bad film ." and corrected["cda_review_generated"] == "A good film ."
    assert corrected["cda_review_recheck_passed"] is True and corrected["cda_label_prob"] == pytest.approx(0.9)
    assert {c["name"] for c in json.loads(corrected["cda_checks"])} >= {"logic", "minimality", "label"}
    # Original 2 had no counterfactual; a skipped task stays pending and adds none.
    assert reviewed.summary["decisions"] == {"accepted": 1, "corrected": 1, "rejected": 1, "pending": 1}
    by_status = reviewed.summary["dataset"]["counterfactuals_by_status"]
    assert by_status == {"accepted": 1, "corrected": 1, "pending": 0, "unreviewed": 0}
    assert reviewed.summary["rescued"] == 1 and reviewed.summary["recheck_failed"] == 0
    audit = reviewed.audit.to_list()
    assert [r["review_status"] for r in audit] == ["rejected", "accepted", "unreviewed", "corrected", "pending"]
    assert json.loads(audit[0]["review_reasons"]) == ["not minimal", "other"]


def test_without_rescue_a_rejected_row_just_leaves(build, export):
    reviewed = apply_review(build, decisions_from_export(export), rescue=False)
    assert reviewed.dataset["cda_review_status"][3:] == ["corrected"]
    assert reviewed.dataset["cda_review_recheck_passed"][3:] == [None]  # no recheck asked for


def test_failed_recheck_keeps_the_correction_unless_asked(build, export):
    for task in export:  # the reviewer "corrects" original 1 into a text the label check fails
        for a in task["annotations"]:
            for item in a["result"]:
                if item["from_name"] == "correction" and item["value"]["text"] == ["A bad film ."]:
                    item["value"]["text"] = ["A great film !"]
    recheck = FilterRecheck(build.config, Components(classifier=FakeClassifier()))
    kept = apply_review(build, decisions_from_export(export), recheck=recheck)
    assert kept.dataset["cda_review_recheck_passed"][-1] is False and kept.summary["recheck_failed"] == 1
    assert kept.summary["recheck_failed_by"] == {"logic": 1}  # "." -> "!" lies outside the rationale span
    dropped = apply_review(build, decisions_from_export(export), recheck=recheck, drop_failed_recheck=True)
    assert dropped.dataset["cda_review_status"][3:] == ["accepted"]


def test_unreviewed_build_is_unchanged_but_labelled(build):
    reviewed = apply_review(build, {})
    assert reviewed.dataset["Text"] == build.dataset["Text"]
    assert reviewed.dataset["cda_review_status"] == ["", "", "", "unreviewed", "unreviewed"]


def test_reviewed_pairs_load_as_generator_training_pairs(build, export, tmp_path):
    from cda.generate.trained.train import human_pairs

    reviewed = apply_review(build, decisions_from_export(export))
    out = write_review(build, reviewed, tmp_path / "review")
    lines = (out / PAIRS_FILE).read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"Text\tSentiment\t{PAIR_KEY}"
    assert lines[1:] == [f"It was bad .\tNegative\t{RESCUED}", f"It was good .\tPositive\t{RESCUED}",
                         f"A great film .\tPositive\t{CORRECTED}", f"A bad film .\tNegative\t{CORRECTED}"]  # fmt: skip
    pairs_spec = {"path": str(out / PAIRS_FILE), "key": PAIR_KEY}
    config = config_from_dict({**config_dict(), "generator": {"train": {"pairs": pairs_spec}}})
    pairs = human_pairs(config)
    assert len(pairs) == 4  # two pairs, both directions
    assert {(o.segments["text"], target) for o, _, target, _ in pairs} >= {
        ("It was bad .", "Positive"), ("A great film .", "Negative")}


def test_reviewed_folder_reads_as_a_build_and_evaluates_with_the_review(build, export, tmp_path):
    from cda.evaluate import EvalComponents, evaluate

    reviewed = apply_review(build, decisions_from_export(export))
    out = write_review(build, reviewed, build.root / "review")
    again = load_build_output(out)
    assert len(again.counterfactuals()) == 2 and again.audit is not None and again.summary["review"]["rescued"] == 1
    for folder in (build.root, out):  # the build finds its review/ folder; the reviewed folder its own decisions
        result = evaluate(folder, judge=None, fluency=False, components=EvalComponents(task_judge=FakeClassifier()),
                          output_dir=tmp_path / f"eval-{folder.name}")  # fmt: skip
        review = result.metrics["review"]
        assert review["decisions"] == {"accepted": 1, "corrected": 1, "rejected": 1, "pending": 1}
        assert "Human review: the filter against reviewers" in (result.output_dir / "report.md").read_text(encoding="utf-8")


def test_agreement_counts():
    def line(status, accepted, checks, reason=None):
        return {"status": status, "reasons": [reason] if reason else [], "reviewer": "r",
                "filter": {"accepted": accepted, "selected": accepted, "drop_reason": None if accepted else checks[-1][0],
                           "checks": [{"name": n, "passed": p} for n, p in checks]}}  # fmt: skip

    records = [
        line("accepted", True, [("logic", True), ("label", True)]),
        line("accepted", False, [("logic", True), ("label", False)]),
        line("rejected", False, [("logic", True), ("label", False)], "label not flipped"),
        line("rejected", False, [("logic", False)], "not fluent"),
        line("rejected", True, [("logic", True), ("label", True)], "not minimal"),
        line("corrected", True, [("logic", True), ("label", True)]),
        {"status": "pending", "filter": {"accepted": True, "checks": []}},
    ]
    m = review_metrics(records)
    overall, logic, label = m["agreement"]
    assert (overall["pass_accept"], overall["pass_reject"], overall["fail_accept"], overall["fail_reject"]) == (1, 1, 1, 2)
    assert overall["agreement"] == 0.6 and overall["corrected_pass"] == 1 and overall["kappa"] == pytest.approx(0.1667, abs=1e-4)
    assert (logic["check"], logic["reviewed"], logic["fail_reject"]) == ("logic", 5, 1)
    assert (label["check"], label["reviewed"], label["fail_accept"]) == ("label", 4, 1)
    assert m["reject_reasons"]["label not flipped"] == {"dropped: label": 1}
    assert m["reject_reasons"]["not minimal"] == {"kept by the filter": 1}
    assert m["decisions"] == {"accepted": 2, "corrected": 1, "rejected": 3, "pending": 1}
    assert review_sections(None) == [] and review_sections({"path": "x", **m})[0].title.startswith("Human review")


def test_review_summary_needs_a_pull(tmp_path):
    assert review_summary(tmp_path) is None


def test_load_build_errors(tmp_path):
    with pytest.raises(ReviewError, match="No such folder"):
        load_build(tmp_path / "missing")
    build = write_tiny_build(tmp_path / "b")
    import shutil

    shutil.rmtree(build / "audit")
    with pytest.raises(ReviewError, match="has no audit/ split"):
        load_build(build)


def test_default_title_fits_label_studio(tmp_path):
    long = tmp_path / ("x" * 80)
    title = default_title(long)
    assert len(title) <= 50 and title.startswith("cda xxx") and title != default_title(tmp_path / ("x" * 79))


def test_credentials_are_private_and_never_printed(tmp_path):
    settings = LabelStudioSettings(home=tmp_path)
    created = load_or_create_credentials(settings)
    path = settings.credentials_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_credentials(settings).token.get_secret_value() == created.token.get_secret_value()
    token = created.token.get_secret_value()
    assert len(token) == 40 and token not in repr(created) and token not in str(created)
    path.chmod(0o644)
    assert load_credentials(path).username == created.username and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_database_without_credentials_is_refused(tmp_path):
    settings = LabelStudioSettings(home=tmp_path)
    settings.data.mkdir(parents=True)
    (settings.data / "label_studio.sqlite3").write_bytes(b"")
    with pytest.raises(LabelStudioError, match="its user's token is unknown"):
        load_or_create_credentials(settings)


def test_settings_defaults_follow_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path))
    settings = LabelStudioSettings()
    assert settings.venv == tmp_path / "label-studio" / "venv-1.23.2" and settings.url == "http://127.0.0.1:8080"
    assert Credentials.generate().token.get_secret_value() != Credentials.generate().token.get_secret_value()


def test_review_columns_describe_every_column():
    names = [c.name for c in review_columns()]
    assert all(n.startswith("cda_review_") for n in names) and len(set(names)) == len(names)
    assert all(c.meaning for c in review_columns())
    assert isinstance(review_columns()[0].feature, datasets.Value)
