"""Explain on the real models: MiniLM + LoRA trained for a few steps, spaCy words and noun chunks."""

from __future__ import annotations

import logging
import time

import pytest

from cda.cache import Cache
from cda.config import DataConfig, config_from_dict
from cda.data import load_table, to_records
from cda.explain import classifier as clf_module
from cda.explain.attribution import forward_backward_seconds
from cda.explain.classifier import load_classifier, load_or_train_classifier
from cda.explain.spans import load_spacy
from cda.explain.stage import ExplainStage

pytestmark = pytest.mark.integration

SENTIMENT = {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]}


def make_config(root, cache_dir, **overrides):
    data = {
        "data": {"path": str(root / "demo" / "imdb_sample.tsv"), "limit": 40},
        "task": {**SENTIMENT, "replace": {"<br />": " "}},
        "classifier": {"max_length": 128, "train": {"max_steps": 4, "batch_size": 8}},
        "cache_dir": str(cache_dir),
    }
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return config_from_dict(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import ROOT

    cache_dir = tmp_path_factory.mktemp("explain-cache")
    cfg = make_config(ROOT, cache_dir)
    records = to_records(load_table(cfg.data), cfg.task)
    start = time.perf_counter()
    clf = load_or_train_classifier(cfg, Cache(cache_dir), records)
    return cfg, records, clf, time.perf_counter() - start


def test_trains_predicts_and_names_its_weights(trained):
    cfg, records, clf, _ = trained
    assert clf.origin == "trained" and clf.train_seconds is not None
    assert clf.name.startswith("lora-minilm@") and clf.labels == ["Negative", "Positive"]
    probs = clf.predict_proba([r.segments for r in records[:5]])
    assert len(probs) == 5
    assert all(set(p) == {"Negative", "Positive"} and abs(sum(p.values()) - 1) < 1e-5 for p in probs)


def test_second_call_loads_from_the_cache(trained, monkeypatch):
    cfg, records, clf, _ = trained

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train_classifier trained again instead of using the cache")

    monkeypatch.setattr(clf_module, "train_classifier", no_training)
    again = load_or_train_classifier(cfg, Cache(cfg.cache_dir), records)
    assert again.origin == "cache" and again.name == clf.name
    x = [records[0].segments]
    assert again.predict_proba(x)[0]["Positive"] == pytest.approx(clf.predict_proba(x)[0]["Positive"], abs=1e-5)


@pytest.mark.parametrize("method", ["grad_x_input", "integrated_gradients", "occlusion"])
def test_attribution_methods(trained, method):
    _, _, clf, _ = trained
    inputs = [{"text": "A dull, lifeless film."}, {"text": "Wonderful acting and a great story."}]
    out = clf.attribute(inputs, ["Negative", "Positive"], method)
    for attribution, segments in zip(out, inputs):
        text = segments["text"]
        words = [text[t.start : t.end] for t in attribution.tokens]
        assert words[:2] in (["A", "dull"], ["Wonderful", "acting"])  # special tokens left out
        assert any(t.score != 0 for t in attribution.tokens)
        assert attribution.seen_chars == {"text": len(text)}


def test_forward_backward_reference_time(trained):
    _, records, clf, _ = trained
    assert forward_backward_seconds(clf, [r.segments for r in records[:8]]) > 0


def test_explain_stage_end_to_end(trained, tmp_path):
    cfg, records, clf, _ = trained
    stage = ExplainStage(cfg, Cache(tmp_path), clf)
    stage.load()
    out = stage.process([r.model_copy(deep=True) for r in records[:3]])
    stage.unload()
    for r in out:
        assert r.predicted_label in cfg.task.labels and set(r.probs) == set(cfg.task.labels)
        assert r.spans and len(r.spans) <= cfg.explain.max_spans
        assert [(s.start) for s in r.spans] == sorted(s.start for s in r.spans)
        for s in r.spans:
            assert r.span_text(s) == s.text and s.text.strip() and 0 < s.score <= 1
        # max_length 128: a long review is cut, and its spans stay in what the classifier saw.
        assert 0 < r.seen_chars["text"] <= len(r.segments["text"])
        assert all(s.end <= r.seen_chars["text"] for s in r.spans)


def test_long_text_is_truncated_and_spans_stay_inside(trained, tmp_path, caplog):
    cfg, records, clf, _ = trained
    short = cfg.model_copy(update={"classifier": cfg.classifier.model_copy(update={"max_length": 24})})
    small = load_classifier(clf.save(tmp_path / "clf"), short)
    record = records[0].model_copy(deep=True)
    record.segments = {"text": " ".join(r.segments["text"] for r in records[:3])}
    stage = ExplainStage(short, Cache(tmp_path / "cache"), small)
    stage.load()
    with caplog.at_level(logging.WARNING, logger="cda.explain.classifier"):
        (out,) = stage.process([record])
    seen = out.seen_chars["text"]
    assert 0 < seen < len(record.segments["text"])
    assert out.spans and all(s.end <= seen for s in out.spans)
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_noun_chunks_and_pairs_on_nli(root, tmp_path):
    cfg = config_from_dict(
        {
            "data": {"path": str(root / "demo/snli_sample.tsv"), "limit": 16},
            "task": {
                "segments": {"premise": "sentence1", "hypothesis": "sentence2"},
                "label_column": "gold_label",
                "labels": ["entailment", "neutral", "contradiction"],
            },
            "classifier": {"max_length": 64, "train": {"max_steps": 2, "batch_size": 8}},
            "explain": {"granularity": "noun_chunk", "top_fraction": 0.5, "min_score": 0.0},
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    records = to_records(load_table(DataConfig(path=cfg.data.path, limit=16)), cfg.task)
    clf = load_or_train_classifier(cfg, Cache(cfg.cache_dir), records)
    stage = ExplainStage(cfg, Cache(cfg.cache_dir), clf)
    stage.load()
    out = stage.process(records[:2])
    for r in out:
        assert r.spans and all(s.segment == "hypothesis" for s in r.spans)
    # A picked word inside a noun chunk brings the whole chunk into its span.
    nlp = load_spacy(cfg.explain.spacy_model, parser=True)
    expanded = 0
    for r in out:
        doc = nlp(r.segments["hypothesis"])
        for chunk in doc.noun_chunks:
            start, end = chunk.start_char, chunk.end_char
            touching = [s for s in r.spans if s.start < end and start < s.end]
            assert all(s.start <= start and end <= s.end for s in touching), (chunk.text, r.spans)
            expanded += bool(touching) and len(chunk) > 1
    assert expanded, [s.text for r in out for s in r.spans]
