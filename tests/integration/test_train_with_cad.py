"""The copyable training example and the pair collator, with the real MiniLM."""

from __future__ import annotations

import importlib.util

import pytest

from tests.build_outputs import write_tiny_build

pytestmark = pytest.mark.integration


def _script(root):
    spec = importlib.util.spec_from_file_location("train_with_cad", root / "pipelines" / "train_with_cad.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("paired", [False, True])
def test_example_script_trains_on_originals_and_counterfactuals(root, tmp_path, paired):
    import torch

    torch.set_num_threads(1)
    build = write_tiny_build(tmp_path / "build")
    out = tmp_path / "model"
    argv = [str(build / "dataset"), "--text", "Text", "--label", "Sentiment", "--max-steps", "2", "--batch-size", "2",
            "--max-length", "16", "--output", str(out)] + (["--paired"] if paired else [])  # fmt: skip
    _script(root).main(argv)
    assert (out / "adapter_config.json").is_file()


def test_pair_collator_batches_feed_minilm(tmp_path):
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cda.models import default_backbone
    from cda.training import CounterfactualPairCollator, pair_counterfactuals

    torch.set_num_threads(1)
    data = datasets.load_from_disk(str(write_tiny_build(tmp_path / "build") / "dataset"))
    tokenizer = AutoTokenizer.from_pretrained(default_backbone())
    model = AutoModelForSequenceClassification.from_pretrained(default_backbone(), num_labels=2)
    collator = CounterfactualPairCollator(tokenizer, ["Text"], "Sentiment", ["Negative", "Positive"], max_length=16)
    pairs = pair_counterfactuals(data)
    batch = collator([pairs[i] for i in range(len(pairs))])
    assert batch["labels"].tolist() == [0, 1, 1, 0]
    out = model(**batch)
    assert out.logits.shape == (4, 2) and out.loss is not None
