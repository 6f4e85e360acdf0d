"""ExplainStage plumbing on the fake classifier (spaCy's blank English tokenizer, no models)."""

from __future__ import annotations

import pytest
import spacy

from cda.cache import Cache
from cda.config import config_from_dict
from cda.explain.spans import SpanSelector
from cda.explain.stage import ExplainStage
from cda.records import Record
from tests.fakes import FakeClassifier


def make_config(**explain):
    return config_from_dict(
        {
            "data": {"path": "demo/imdb_sample.tsv"},
            "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
            "explain": explain,
        }
    )


class CountingClassifier(FakeClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def attribute(self, inputs, targets, method):
        self.calls += len(inputs)
        return super().attribute(inputs, targets, method)


def run(stage: ExplainStage, records: list[Record]) -> list[Record]:
    stage.selector = SpanSelector(stage.config.explain, stage.config.task, nlp=spacy.blank("en"))
    stage.load()
    try:
        return stage.process(records)
    finally:
        stage.unload()


def records() -> list[Record]:
    return [
        Record(index=0, segments={"text": "A dull, boring film with a fine cast."}, label="Negative"),
        Record(index=1, segments={"text": "Great fun and a wonderful ending."}, label="Positive"),
        Record(index=2, segments={"text": "I saw it on a Tuesday."}, label="Positive"),
    ]


def test_selects_the_sentiment_words_toward_the_source_label(tmp_path):
    out = run(ExplainStage(make_config(), Cache(tmp_path), FakeClassifier()), records())
    # "dull" and "boring" are split by the comma; "wonderful" is outside the top 30 % (2 of 6 words).
    assert [[s.text for s in r.spans] for r in out[:2]] == [["dull", "boring"], ["Great fun"]]
    assert [r.predicted_label for r in out[:2]] == ["Negative", "Positive"]
    assert out[0].probs == pytest.approx({"Negative": 0.9, "Positive": 0.1})
    assert out[0].seen_chars == {"text": len(out[0].segments["text"])}
    for r in out:
        for s in r.spans:
            assert r.span_text(s) == s.text and 0 < s.score <= 1


def test_neutral_text_has_no_strong_words(tmp_path):
    # Every word scores the same tiny 0.01: all normalise to 1, so the first 30 % of the content
    # words ("saw", "Tuesday": I, it, on, a are stop words) are picked: 1 of 2.
    out = run(ExplainStage(make_config(), Cache(tmp_path), FakeClassifier()), records()[2:])
    assert [s.text for s in out[0].spans] == ["saw"]
    every = run(ExplainStage(make_config(words="all"), Cache(tmp_path / "all"), FakeClassifier()), records()[2:])
    assert [s.text for s in every[0].spans] == ["I saw"]  # 2 of 6 words when function words compete too
    assert out[0].probs == {"Negative": 0.5, "Positive": 0.5}


def test_toward_prediction_uses_the_predicted_label(tmp_path):
    # Labelled Positive but the text is negative: toward the prediction, the negative words are picked.
    record = Record(index=0, segments={"text": "An awful, dull story."}, label="Positive")
    label = run(ExplainStage(make_config(top_fraction=0.7), Cache(tmp_path / "a"), FakeClassifier()), [record.model_copy(deep=True)])
    pred = run(ExplainStage(make_config(toward="prediction", top_fraction=0.7), Cache(tmp_path / "b"), FakeClassifier()), [record])
    assert [s.text for s in pred[0].spans] == ["awful", "dull"]
    assert [s.text for s in label[0].spans] == ["story"]  # the negative words score below 0; "An" is a stop word


def test_results_are_cached_per_record(tmp_path):
    clf = CountingClassifier()
    first = run(ExplainStage(make_config(), Cache(tmp_path), clf), records())
    again = run(ExplainStage(make_config(), Cache(tmp_path), clf), records() + [
        Record(index=3, segments={"text": "The worst."}, label="Negative")
    ])  # fmt: skip
    assert clf.calls == 4  # 3 the first time, only the new record the second
    assert [r.spans for r in again[:3]] == [r.spans for r in first]
    # Another setting is another entry.
    run(ExplainStage(make_config(top_fraction=0.5), Cache(tmp_path), clf), records()[:1])
    assert clf.calls == 5


def test_classifier_without_the_task_labels_is_refused(tmp_path):
    stage = ExplainStage(make_config(), Cache(tmp_path), FakeClassifier(labels=("neg", "pos")))
    with pytest.raises(ValueError, match=r"not the task's \['Negative', 'Positive'\]"):
        stage.load()
