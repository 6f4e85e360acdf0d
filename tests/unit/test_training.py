"""cda.training: select, mix and pair an exported dataset; the pair collator."""

from __future__ import annotations

import logging

import datasets
import pytest

from cda.training import (
    CounterfactualPairCollator,
    NotCdaDatasetError,
    counterfactuals,
    mix,
    originals,
    pair_counterfactuals,
)

EXPORTED = {
    "Text": ["It was bad .", "A great film .", "Dull .", "It was good .", "A poor film .", "Fun ."],
    "Sentiment": ["Negative", "Positive", "Negative", "Positive", "Negative", "Positive"],
    "batch_id": ["10", "11", "12", "10", "11", "12"],
    "cda_is_counterfactual": [False, False, False, True, True, True],
    "cda_original_index": [0, 1, 2, 0, 1, 2],
    "cda_target_label": ["", "", "", "Positive", "Negative", "Positive"],
}


@pytest.fixture
def exported():
    return datasets.Dataset.from_dict(EXPORTED)


def test_select_originals_and_counterfactuals(exported):
    assert originals(exported)["Text"] == EXPORTED["Text"][:3]
    assert counterfactuals(exported)["Text"] == EXPORTED["Text"][3:]


def test_mix_at_a_ratio_is_seeded(exported):
    half = mix(exported, counterfactuals_per_original=2 / 3, seed=1)
    flags = half["cda_is_counterfactual"]
    assert len(half) == 5 and sum(flags) == 2 and flags.count(False) == 3
    assert half["Text"] == mix(exported, counterfactuals_per_original=2 / 3, seed=1)["Text"]
    only = mix(exported, counterfactuals_per_original=0, shuffle=False)
    assert only["Text"] == EXPORTED["Text"][:3]
    ordered = mix(exported, 1.0, shuffle=False)
    assert ordered["Text"] == EXPORTED["Text"]


def test_mix_more_than_available_warns(exported, caplog):
    with caplog.at_level(logging.WARNING):
        assert len(mix(exported, counterfactuals_per_original=5)) == 6
    assert "15 counterfactuals wanted" in caplog.text and "only 3 exist" in caplog.text
    with pytest.raises(ValueError, match=">= 0"):
        mix(exported, -1)


def test_pair_each_counterfactual_with_its_original(exported):
    pairs = pair_counterfactuals(exported)
    assert pairs["Text"] == EXPORTED["Text"][3:]
    assert pairs["original_Text"] == EXPORTED["Text"][:3]
    assert pairs["original_Sentiment"] == ["Negative", "Positive", "Negative"]
    assert pairs["original_batch_id"] == pairs["batch_id"]
    assert "original_cda_target_label" not in pairs.column_names


def test_pair_drops_orphans_with_a_count(exported, caplog):
    orphaned = exported.select([0, 1, 3, 4, 5])  # original 2 is gone
    with caplog.at_level(logging.WARNING):
        pairs = pair_counterfactuals(orphaned, columns=["Text"])
    assert pairs["original_Text"] == ["It was bad .", "A great film ."]
    assert "1 of 3 counterfactuals have no original" in caplog.text


def test_not_a_cda_dataset():
    plain = datasets.Dataset.from_dict({"Text": ["x"], "Sentiment": ["Negative"]})
    for fn in (originals, counterfactuals, pair_counterfactuals, mix):
        with pytest.raises(NotCdaDatasetError, match="cda build"):
            fn(plain)


class WordTokenizer:
    """Enough of an HF tokenizer for the collator: one id per word, right padding."""

    def __call__(self, first, second=None, truncation=True, max_length=8, padding=True, return_tensors="pt"):
        import torch

        texts = [f"{a} [SEP] {b}" if second else a for a, b in zip(first, second or [None] * len(first))]
        ids = [[len(w) for w in t.split()][:max_length] for t in texts]
        width = max(len(x) for x in ids)
        return {
            "input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
        }


def test_pair_collator_puts_each_original_next_to_its_counterfactual(exported):
    pairs = pair_counterfactuals(exported)
    collator = CounterfactualPairCollator(WordTokenizer(), ["Text"], "Sentiment", ["Negative", "Positive"], max_length=8)
    batch = collator([pairs[0], pairs[1]])
    assert batch["labels"].tolist() == [0, 1, 1, 0]
    assert batch["input_ids"].shape == (4, 4)
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1]  # "It was bad ."
    assert batch["attention_mask"][2].tolist() == [1, 1, 1, 1]  # "A great film ."


def test_pair_collator_text_pairs_and_bad_labels():
    rows = [{"p": "a b", "h": "c", "y": 2, "original_p": "a b", "original_h": "d", "original_y": 0}]
    collator = CounterfactualPairCollator(WordTokenizer(), ["p", "h"], "y", ["e", "n", "c"])
    batch = collator(rows)
    assert batch["labels"].tolist() == [0, 2]
    assert batch["input_ids"].shape[1] == 4  # "a b [SEP] d"
    with pytest.raises(ValueError, match="not one of"):
        CounterfactualPairCollator(WordTokenizer(), ["p"], "y", ["e"])([{"p": "x", "y": "zzz", "original_p": "x", "original_y": "e"}])
    with pytest.raises(ValueError, match="one or two"):
        CounterfactualPairCollator(WordTokenizer(), [], "y", ["e"])

