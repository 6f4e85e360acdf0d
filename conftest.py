"""Names the docstring examples use, for ``pytest --doctest-modules cda``.

An example may use these without defining them (each is built only for the examples
that name it, in examples that are not skipped):

* ``cfg`` -- ``configs/imdb.yaml``
* ``records`` -- the 200 demo reviews of ``demo/imdb_sample.tsv`` as records
* ``clf`` -- a MiniLM classifier (the default backbone) after one LoRA training step on 8
  demo reviews: real tokenizer and offsets, untrained predictions
* ``tokenizer`` -- MiniLM's tokenizer
* ``augmented`` -- a tiny dataset as ``cda build`` exports it: two originals (``Text``,
  ``Sentiment``) and one counterfactual of each
* ``build_dir`` -- a tiny ``cda build`` output folder (``tests/build_outputs.py``)
* ``tmp_dir`` -- an empty folder (pytest's ``tmp_path``)

The cache (``$CDA_CACHE_DIR``) and the datasets cache point at a temporary folder, as
in the tests. Nothing here runs for the tests in ``tests/``.
"""

from __future__ import annotations

import doctest
import functools
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@functools.cache
def _cfg():
    from cda.config import load_config

    return load_config("configs/imdb.yaml")


@functools.cache
def _records():
    from cda.data import load_table, to_records

    cfg = _cfg()
    return to_records(load_table(cfg.data), cfg.task)


@functools.cache
def _clf():
    from cda.explain.classifier import train_classifier

    cfg = _cfg().model_copy(deep=True)
    cfg.classifier.train.max_steps = 1
    return train_classifier(_records()[:8], cfg)


@functools.cache
def _tokenizer():
    from transformers import AutoTokenizer

    from cda.models import default_backbone

    return AutoTokenizer.from_pretrained(default_backbone())


def _augmented():
    import datasets

    return datasets.Dataset.from_dict({
        "Text": ["A dull film.", "Loved it.", "A great film.", "Hated it."],
        "Sentiment": ["Negative", "Positive", "Positive", "Negative"],
        "cda_is_counterfactual": [False, False, True, True],
        "cda_original_index": [0, 1, 0, 1],
        "cda_target_label": [None, None, "Positive", "Negative"],
    })  # fmt: skip


def _build_dir(request: pytest.FixtureRequest):
    from tests.build_outputs import write_tiny_build

    return write_tiny_build(request.getfixturevalue("tmp_path") / "build")


_NAMES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "cfg": lambda request: _cfg(),
    "records": lambda request: _records(),
    "clf": lambda request: _clf(),
    "tokenizer": lambda request: _tokenizer(),
    "augmented": lambda request: _augmented(),
    "build_dir": _build_dir,
    "tmp_dir": lambda request: request.getfixturevalue("tmp_path"),
}


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    test = getattr(request.node, "dtest", None)
    if test is None:  # not a docstring example
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    tmp_path = request.getfixturevalue("tmp_path")
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cda-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    source = "\n".join(ex.source for ex in test.examples if not ex.options.get(doctest.SKIP))
    for name, make in _NAMES.items():
        if name not in test.globs and re.search(rf"(?<![.\w]){name}\b", source):
            test.globs[name] = make(request)
