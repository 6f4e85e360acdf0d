"""TransformersClassifier plumbing on a tiny random BERT (MiniLM's tokenizer, 1 layer of width 16).

Offsets, segments, truncation, the three attribution methods, saving, loading, label
checks and the training cache. The real MiniLM is exercised in tests/integration.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from cda.cache import Cache
from cda.config import config_from_dict
from cda.explain import classifier as clf_module
from cda.explain.attribution import forward_backward_seconds
from cda.explain.classifier import (
    ClassifierError,
    TransformersClassifier,
    load_classifier,
    load_or_train_classifier,
    train_classifier,
)
from cda.explain.classifier_loading import _match_labels
from cda.records import Record

transformers = pytest.importorskip("transformers")

LABELS = ["Negative", "Positive"]


@pytest.fixture(scope="module")
def tokenizer():
    from cda.models import default_backbone

    return transformers.AutoTokenizer.from_pretrained(default_backbone())


def tiny_model(num_labels: int = 2, id2label: dict | None = None):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=num_labels,
        id2label=id2label or {i: f"LABEL_{i}" for i in range(num_labels)},
        label2id={v: k for k, v in (id2label or {i: f"LABEL_{i}" for i in range(num_labels)}).items()},
    )
    return transformers.BertForSequenceClassification(config).eval()


@pytest.fixture()
def clf(tokenizer) -> TransformersClassifier:
    return TransformersClassifier(tiny_model(), tokenizer, LABELS, "tiny@test", max_length=32, batch_size=2)


def make_config(tmp_path, **classifier):
    return config_from_dict(
        {
            "data": {"path": "demo/imdb_sample.tsv"},
            "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": LABELS},
            "classifier": classifier,
            "cache_dir": str(tmp_path / "cache"),
        }
    )


def located_text(segments, locations):
    return [(loc[0], segments[loc[0]][loc[1] : loc[2]]) for loc in locations if loc is not None]


# -------------------------------------------------------------------- encoding
def test_single_text_tokens_map_to_characters(clf):
    segments = {"text": "An unwatchable film."}
    enc = clf.encode([segments])
    assert enc.locations[0][0] is None and enc.locations[0][-1] is None  # [CLS], [SEP]
    pieces = located_text(segments, enc.locations[0])
    assert "".join(t for _, t in pieces) == "Anunwatchablefilm."
    assert enc.seen_chars == [{"text": 20}] and enc.truncated == [False]


def test_pair_offsets_are_relative_to_each_segment(clf):
    segments = {"premise": "A dog runs.", "hypothesis": "It sleeps."}
    enc = clf.encode([segments])
    assert located_text(segments, enc.locations[0]) == [
        ("premise", "A"), ("premise", "dog"), ("premise", "runs"), ("premise", "."),
        ("hypothesis", "It"), ("hypothesis", "sleeps"), ("hypothesis", "."),
    ]  # fmt: skip
    assert set(enc.token_type_ids[0]) == {0, 1}


def test_more_than_two_segments_join_the_rest_with_a_separator(clf):
    segments = {"claim": "Cats fly.", "evidence": "Cats are mammals.", "note": "True."}
    enc = clf.encode([segments])
    names = [loc[0] if loc else None for loc in enc.locations[0]]
    # [CLS] claim [SEP] evidence [SEP](the joiner) note [SEP]
    assert names.count(None) == 4
    assert located_text(segments, enc.locations[0])[-2:] == [("note", "True"), ("note", ".")]
    assert ("evidence", "mammals") in located_text(segments, enc.locations[0])


def test_truncation_sets_seen_chars_and_warns_once(clf, caplog):
    long = " ".join(["word"] * 60)
    with caplog.at_level(logging.WARNING, logger="cda.explain.classifier_model"):
        enc = clf.encode([{"text": long}, {"text": "short"}, {"text": long + " end"}])
    assert enc.truncated == [True, False, True]
    assert len(enc.input_ids[0]) == 32
    assert enc.seen_chars[0]["text"] == 30 * 5 - 1  # 30 "word"s kept, without the space after the last
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 of 3 inputs" in warnings[0].getMessage()
    # Explain predicts then attributes the same batch: one warning, not two.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cda.explain.classifier_model"):
        inputs = [{"text": long}, {"text": "short"}]
        clf.predict_proba(inputs)
        clf.attribute(inputs, ["Positive", "Negative"], "grad_x_input")
    assert ["1 of 2 inputs" in r.getMessage() for r in caplog.records] == [True]


def test_pair_truncation_cuts_the_longest_segment(clf):
    segments = {"premise": "A short premise.", "hypothesis": " ".join(["long"] * 50)}
    enc = clf.encode([segments])
    assert enc.seen_chars[0]["premise"] == len(segments["premise"])
    assert 0 < enc.seen_chars[0]["hypothesis"] < len(segments["hypothesis"])


def test_mixed_segment_counts_are_refused(clf):
    with pytest.raises(ValueError, match="different numbers of segments"):
        clf.encode([{"a": "x"}, {"a": "x", "b": "y"}])


# ------------------------------------------------------------------ prediction
def test_predict_proba_keeps_input_order_across_length_sorted_batches(clf):
    inputs = [{"text": "a b c d e f g"}, {"text": "x"}, {"text": "good film"}]
    together = clf.predict_proba(inputs)
    alone = [clf.predict_proba([x])[0] for x in inputs]
    for a, b in zip(together, alone):
        assert set(a) == set(LABELS) and math.isclose(sum(a.values()), 1.0, rel_tol=1e-5)
        assert a == pytest.approx(b, abs=1e-5)


def test_windows_cover_the_longest_segment_with_overlap(clf):
    words = [f"w{i}" for i in range(80)]  # "w12" is 2 tokens: 160 tokens, 30 fit a window of 32
    windows = clf.windows({"text": " ".join(words)})
    texts = [w["text"] for w in windows]
    assert texts[0].startswith("w0 ") and texts[-1].endswith("w79")
    assert all(len(clf.tokenizer(t)["input_ids"]) <= 32 for t in texts)
    for before, after in zip(texts, texts[1:]):  # consecutive windows share words
        assert set(before.split()) & set(after.split())
    assert set(" ".join(texts).split()) == set(words)


def test_windows_keep_the_other_segments_whole(clf):
    segments = {"premise": "A short premise.", "hypothesis": " ".join(["long"] * 50)}
    windows = clf.windows(segments)
    assert len(windows) > 1 and all(w["premise"] == segments["premise"] for w in windows)
    assert sum(len(w["hypothesis"].split()) for w in windows) > 50  # overlapping pieces
    crowded = {"premise": " ".join(["long"] * 40), "hypothesis": " ".join(["word"] * 29)}
    assert clf.windows(crowded) == [crowded]  # no room for a piece: read truncated
    assert clf.windows({"text": "fits"}) == [{"text": "fits"}]


class PraiseCounter(torch.nn.Module):
    """A stand-in classifier whose Positive logit is the number of "great" tokens it reads."""

    def __init__(self, great_id: int) -> None:
        super().__init__()
        self.great_id = great_id
        self.scale = torch.nn.Parameter(torch.ones(()))  # gives the model a device
        self.config = transformers.PretrainedConfig(max_position_embeddings=512)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        praise = ((input_ids == self.great_id) & attention_mask.bool()).sum(-1).float() * self.scale
        return transformers.modeling_outputs.SequenceClassifierOutput(logits=torch.stack([torch.zeros_like(praise), praise], -1))


def test_long_inputs_average_their_windows(tokenizer):
    model = PraiseCounter(tokenizer.convert_tokens_to_ids("great"))
    clf = TransformersClassifier(model, tokenizer, LABELS, "praise@test", max_length=32, batch_size=2)
    long = {"text": " ".join(["dull"] * 60 + ["great"] * 4)}  # the praise is past the first window
    windows = clf.windows(long)
    per_window = clf.predict_proba(windows)
    assert per_window[0]["Positive"] == 0.5 and per_window[-1]["Positive"] > 0.98
    expected = {label: sum(p[label] for p in per_window) / len(per_window) for label in LABELS}
    short = {"text": "great film"}
    together = clf.predict_proba([short, long])
    assert together[1] == pytest.approx(expected, abs=1e-9)
    assert together[0] == pytest.approx(clf.predict_proba([short])[0], abs=1e-9)
    first_only = TransformersClassifier(model, tokenizer, LABELS, "praise@test", max_length=32, long_inputs="truncate")
    assert first_only.predict_proba([long])[0] == {"Negative": 0.5, "Positive": 0.5}
    with pytest.raises(ClassifierError, match="long_inputs 'middle' is not one of"):
        TransformersClassifier(model, tokenizer, LABELS, "praise@test", long_inputs="middle")


# ----------------------------------------------------------------- attribution
@pytest.mark.parametrize("method", ["grad_x_input", "integrated_gradients", "occlusion"])
def test_attribute_scores_every_non_special_token(clf, method):
    inputs = [{"premise": "A dog runs.", "hypothesis": "It sleeps."}, {"premise": "Hi.", "hypothesis": "Bye."}]
    out = clf.attribute(inputs, ["Positive", "Negative"], method)
    enc = clf.encode(inputs)
    for attribution, segments, locations, target in zip(out, inputs, enc.locations, ["Positive", "Negative"]):
        assert attribution.label == target
        assert [(t.segment, t.start, t.end) for t in attribution.tokens] == [loc for loc in locations if loc]
        assert all(math.isfinite(t.score) for t in attribution.tokens)
        assert any(t.score != 0 for t in attribution.tokens)
        assert attribution.seen_chars == {k: len(v) for k, v in segments.items()}


def test_attribution_is_signed_toward_the_target(clf):
    x = [{"text": "A rather dull film."}]
    pos = clf.attribute(x, ["Positive"], "grad_x_input")[0].tokens
    neg = clf.attribute(x, ["Negative"], "grad_x_input")[0].tokens
    # Binary: d log p(pos) = -d log p(neg) * p(neg)/p(pos), so every token flips sign.
    assert all((a.score > 0) != (b.score > 0) for a, b in zip(pos, neg) if abs(a.score) > 1e-9)


def test_integrated_gradients_is_complete(clf, tokenizer):
    x = [{"text": "A rather dull film."}]
    method = {"name": "integrated_gradients", "steps": 128}
    total = sum(t.score for t in clf.attribute(x, ["Positive"], method)[0].tokens)
    ids = clf.encode(x).input_ids[0]
    base = [ids[0]] + [tokenizer.pad_token_id] * (len(ids) - 2) + [ids[-1]]
    with torch.no_grad():
        lp = clf.model(input_ids=torch.tensor([ids, base])).logits.log_softmax(-1)[:, 1]
    assert total == pytest.approx(float(lp[0] - lp[1]), abs=2e-3)


def test_occlusion_is_the_probability_drop(clf, tokenizer):
    x = [{"text": "dull film"}]
    tokens = clf.attribute(x, ["Negative"], "occlusion")[0].tokens
    ids = clf.encode(x).input_ids[0]
    masked = list(ids)
    masked[1] = tokenizer.mask_token_id  # "dull"
    with torch.no_grad():
        p = clf.model(input_ids=torch.tensor([ids, masked])).logits.softmax(-1)[:, 0]
    assert tokens[0].score == pytest.approx(float(p[0] - p[1]), abs=1e-5)


def test_attribute_rejects_bad_method_and_target(clf):
    with pytest.raises(ValueError, match="unknown attribution method 'lime'; registered: grad_x_input, integrated_gradients"):
        clf.attribute([{"text": "x"}], ["Positive"], "lime")
    with pytest.raises(ValueError, match="not labels of tiny@test"):
        clf.attribute([{"text": "x"}], ["Neutral"], "occlusion")


def test_forward_backward_seconds_times_and_leaves_no_gradients(clf):
    seconds = forward_backward_seconds(clf, [{"text": "A dull film."}, {"text": "Great."}])
    assert seconds > 0
    assert all(p.grad is None for p in clf.model.parameters())


# ------------------------------------------------------------ labels, loading
def test_match_labels():
    assert _match_labels(["LABEL_0", "LABEL_1"], LABELS, "m") == LABELS
    assert _match_labels(["positive", "negative"], LABELS, "m") == ["Positive", "Negative"]
    with pytest.raises(ClassifierError, match="predicts 3 labels"):
        _match_labels(["a", "b", "c"], LABELS, "m")
    with pytest.raises(ClassifierError, match=r"labels \['pos', 'neg'\] that do not match"):
        _match_labels(["pos", "neg"], LABELS, "m")


def test_load_full_hf_folder_maps_label_names(tmp_path, tokenizer):
    folder = tmp_path / "hf"
    tiny_model(id2label={0: "positive", 1: "negative"}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loaded = load_classifier(folder, make_config(tmp_path, max_length=16))
    assert loaded.labels == ["Positive", "Negative"]
    assert loaded.name.startswith("hf-hf@") and loaded.max_length == 16
    # The name is a content hash: same weights, same name.
    assert load_classifier(folder, make_config(tmp_path)).name == loaded.name


def test_load_refuses_wrong_labels_and_unknown_folders(tmp_path, tokenizer):
    folder = tmp_path / "nli"
    tiny_model(3, {0: "entailment", 1: "neutral", 2: "contradiction"}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ClassifierError, match="predicts 3 labels"):
        load_classifier(folder, make_config(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClassifierError, match="holds no model"):
        load_classifier(tmp_path / "empty", make_config(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_classifier(tmp_path / "missing", make_config(tmp_path))


@pytest.fixture()
def tiny_backbone(tmp_path, tokenizer):
    folder = tmp_path / "tiny-bert"
    tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def train_records() -> list[Record]:
    texts = ["great fun", "a wonderful film", "dull and boring", "the worst", "loved it", "awful acting"]
    labels = ["Positive", "Positive", "Negative", "Negative", "Positive", "Negative"]
    return [Record(index=i, segments={"text": t}, label=y) for i, (t, y) in enumerate(zip(texts, labels))]


def test_training_is_cached_and_reproducible(tmp_path, tiny_backbone, monkeypatch):
    cfg = make_config(tmp_path, backbone=str(tiny_backbone), train={"max_steps": 3, "batch_size": 2})
    cache = Cache(cfg.resolved_cache_dir())
    first = load_or_train_classifier(cfg, cache, train_records())
    assert first.origin == "trained" and first.name.startswith("lora-tiny-bert@")
    probs = first.predict_proba([{"text": "great"}])

    calls = []
    monkeypatch.setattr(clf_module, "train_classifier", lambda *a, **k: calls.append(1))
    again = load_or_train_classifier(cfg, cache, train_records())
    assert calls == [] and again.origin == "cache" and again.name == first.name
    assert again.predict_proba([{"text": "great"}])[0] == pytest.approx(probs[0], abs=1e-5)

    # Prediction batch size is not part of the key; the seed is.
    cfg_batch = make_config(tmp_path, backbone=str(tiny_backbone), batch_size=7, train={"max_steps": 3, "batch_size": 2})
    assert load_or_train_classifier(cfg_batch, cache, train_records()).origin == "cache"
    monkeypatch.undo()
    other = load_or_train_classifier(cfg.model_copy(update={"seed": 1}), cache, train_records())
    assert other.origin == "trained" and other.name != first.name


def test_training_is_deterministic_and_adapter_folders_load(tmp_path, tiny_backbone):
    cfg = make_config(tmp_path, backbone=str(tiny_backbone), train={"max_steps": 2, "batch_size": 4})
    a = train_classifier(train_records(), cfg, seed=3)
    b = train_classifier(train_records(), cfg, seed=3)
    x = [{"text": "boring"}]
    assert a.name == b.name and a.predict_proba(x)[0] == pytest.approx(b.predict_proba(x)[0], abs=1e-6)
    # A bare peft adapter folder (no cda metadata) loads on the configured backbone.
    a._peft.save_pretrained(tmp_path / "adapter")
    loaded = load_classifier(tmp_path / "adapter", cfg)
    assert loaded.labels == LABELS and loaded.name.startswith("lora-tiny-bert@")
    assert loaded.predict_proba(x)[0] == pytest.approx(a.predict_proba(x)[0], abs=1e-5)


def test_no_training_data_is_an_actionable_error(tmp_path):
    with pytest.raises(ValueError, match="set classifier.path"):
        load_or_train_classifier(make_config(tmp_path), Cache(tmp_path), None)
