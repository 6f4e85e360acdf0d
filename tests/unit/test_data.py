import datasets
import pytest

from cda.config import DataConfig, TaskConfig
from cda.data import DataError, load_table, to_records
from cda.tasks import editable_segments, target_labels

SENTIMENT = TaskConfig(segments={"text": "Text"}, label_column="Sentiment", labels=["Negative", "Positive"],
                       replace={"<br />": " "})
NLI = TaskConfig(segments={"premise": "sentence1", "hypothesis": "sentence2"}, label_column="gold_label",
                 labels=["entailment", "neutral", "contradiction"])


def test_demo_tsv_loads_all_columns_unchanged(root):
    table = load_table(DataConfig(path=str(root / "demo/imdb_sample.tsv")))
    assert table.column_names == ["Sentiment", "Text", "batch_id"]
    assert len(table) == 200
    records = to_records(table, SENTIMENT)
    assert [r.index for r in records] == list(range(200))
    assert {r.label for r in records} == {"Negative", "Positive"}


def test_replace_applies_to_records_not_table(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"Text": "Bad.<br />Very bad.", "Sentiment": "Negative"}\n')
    table = load_table(DataConfig(path=str(path)))
    assert table[0]["Text"] == "Bad.<br />Very bad."
    assert to_records(table, SENTIMENT)[0].segments["text"] == "Bad. Very bad."


def test_limit_and_dedupe(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("Text,Sentiment,batch_id\na,Negative,1\nb,Positive,1\nc,Positive,2\nd,Negative,3\n")
    table = load_table(DataConfig(path=str(path), dedupe_on="batch_id", limit=2))
    assert table["Text"] == ["a", "c"]


def test_sample_is_seeded_and_keeps_file_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("Text,Sentiment\n" + "".join(f"t{i},{'Negative' if i < 50 else 'Positive'}\n" for i in range(100)))
    first = load_table(DataConfig(path=str(path), sample=10, sample_seed=1))["Text"]
    assert first == load_table(DataConfig(path=str(path), sample=10, sample_seed=1))["Text"]
    assert first != load_table(DataConfig(path=str(path), sample=10, sample_seed=2))["Text"]
    assert first == sorted(first, key=lambda t: int(t[1:])) and len(set(first)) == 10
    labels = load_table(DataConfig(path=str(path), sample=10, sample_seed=1))["Sentiment"]
    assert {"Negative", "Positive"} == set(labels)  # a sorted file still gives both labels
    assert len(load_table(DataConfig(path=str(path), sample=10, limit=3))) == 3
    assert len(load_table(DataConfig(path=str(path), sample=500))) == 100


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        load_table(DataConfig(path=str(tmp_path / "nope.tsv")))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="Cannot tell the format"):
        load_table(DataConfig(path=str(tmp_path / "x.txt")))


def test_missing_column_names_it_and_the_available_ones():
    table = datasets.Dataset.from_dict({"review": ["x"], "Sentiment": ["Negative"]})
    with pytest.raises(DataError, match=r"task.segments.text='Text'.*\['review', 'Sentiment'\]"):
        to_records(table, SENTIMENT)


def test_unknown_label_and_empty_text_are_errors_or_skipped():
    table = datasets.Dataset.from_dict({"Text": ["good", "  ", "fine"], "Sentiment": ["Positive", "Negative", "Meh"]})
    with pytest.raises(DataError) as e:
        to_records(table, SENTIMENT)
    assert "row 1: empty text" in str(e.value) and "row 2: label 'Meh'" in str(e.value)
    kept = to_records(table, SENTIMENT, on_invalid="skip")
    assert [r.index for r in kept] == [0]


def test_classlabel_and_int_labels():
    features = datasets.Features({"Text": datasets.Value("string"),
                                  "Sentiment": datasets.ClassLabel(names=["Negative", "Positive"])})
    table = datasets.Dataset.from_dict({"Text": ["a", "b"], "Sentiment": [1, 0]}, features=features)
    assert [r.label for r in to_records(table, SENTIMENT)] == ["Positive", "Negative"]
    plain = datasets.Dataset.from_dict({"Text": ["a"], "Sentiment": [1]})
    assert to_records(plain, SENTIMENT)[0].label == "Positive"


def test_save_to_disk_folder(tmp_path):
    datasets.Dataset.from_dict({"Text": ["a"], "Sentiment": ["Positive"]}).save_to_disk(str(tmp_path / "ds"))
    assert load_table(DataConfig(path=str(tmp_path / "ds")))["Text"] == ["a"]


def test_nli_pairs_and_targets(root):
    table = load_table(DataConfig(path=str(root / "demo/snli_sample.tsv")))
    records = to_records(table, NLI)
    assert set(records[0].segments) == {"premise", "hypothesis"}
    assert target_labels(NLI, "neutral") == ["entailment", "contradiction"]
    assert editable_segments(NLI) == ["hypothesis"]
    explicit = NLI.model_copy(update={"targets": {"entailment": ["contradiction"]}})
    assert target_labels(explicit, "entailment") == ["contradiction"]
    assert target_labels(explicit, "neutral") == []
