"""The whole pipeline on fakes: plumbing, accounting, provenance, caching."""

import datasets
import pytest

from cda import Components, build, config_from_dict
from cda.data import DataError
from tests.fakes import FakeClassifier, FakeGenerator

ROWS = {
    "Text": ["A bad , boring film .", "A great and wonderful cast .", "It was dull .", "Nothing to say ."],
    "Sentiment": ["Negative", "Positive", "Negative", "Positive"],
    "batch_id": ["1", "2", "3", "4"],
}


def _config(tmp_path, **checks):
    return config_from_dict({
        "data": {"path": "unused.tsv"},
        "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "generate": {"n": 4},
        "filter": {"checks": {"fluency": None, "minimality": {"max_edit_distance": 0.6}, **checks}},
        "export": {"output_dir": str(tmp_path / "out")},
    })


def test_build_on_fakes_accounts_for_every_row_and_candidate(tmp_path):
    table = datasets.Dataset.from_dict(ROWS)
    generator = FakeGenerator()
    result = build(_config(tmp_path), table, components=Components(FakeClassifier(), generator))
    s = result.summary
    assert s.rows == s.originals == 4
    assert s.plans == 4
    # every candidate is either accepted or carries a drop reason
    assert s.accepted_candidates + sum(s.drops.values()) == s.candidates
    ds = result.dataset
    assert ds[:4]["Text"] == ROWS["Text"]  # originals unchanged, first
    cfs = ds.filter(lambda r: r["cda_is_counterfactual"])
    assert len(cfs) == s.counterfactuals >= 2
    for row in cfs:
        source = ROWS["Sentiment"][row["cda_original_index"]]
        assert row["Sentiment"] != source and row["cda_source_label"] == source
        assert row["batch_id"] == ROWS["batch_id"][row["cda_original_index"]]
        assert row["cda_generator"] == "fake:generator"
    assert len(result.audit) == s.candidates


def test_second_build_uses_the_generation_cache(tmp_path):
    table = datasets.Dataset.from_dict(ROWS)
    first = FakeGenerator()
    build(_config(tmp_path), table, components=Components(FakeClassifier(), first))
    second = FakeGenerator()
    again = build(_config(tmp_path), table, components=Components(FakeClassifier(), second))
    assert first.prompts and not second.prompts
    assert first.loads == 1 and second.loads == 0  # a generator whose outputs are all cached is never loaded
    assert again.summary.counterfactuals >= 2


def test_no_cache_regenerates(tmp_path):
    table = datasets.Dataset.from_dict(ROWS)
    build(_config(tmp_path), table, components=Components(FakeClassifier(), FakeGenerator()))
    gen = FakeGenerator()
    build(_config(tmp_path), table, use_cache=False, components=Components(FakeClassifier(), gen))
    assert gen.prompts


def test_empty_input_is_an_error(tmp_path):
    table = datasets.Dataset.from_dict({"Text": [], "Sentiment": []})
    with pytest.raises(DataError, match="nothing to augment"):
        build(_config(tmp_path), table, components=Components(FakeClassifier(), FakeGenerator()))
