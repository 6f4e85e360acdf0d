"""A tiny, hand-made `cda build` output folder (dataset/, audit/, config.yaml, summary.json)
written with the real export functions, so evaluation and experiment tests know every value.

Originals (Kaushik-style, with batch_id) and what cda made of them:
    0  "It was bad ."       Negative  -> "It was really good ."  (selected; 2 more candidates: one
                                          dropped by the label check, one unparseable)
    1  "A great film ."     Positive  -> "A good film ."         (selected, the only candidate)
    2  "Dull and boring ."  Negative  -> nothing (its one candidate was dropped by minimality)
The reference (REFERENCE_ROWS) holds each original and a human counterfactual, plus a
batch_id the dataset does not have.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import yaml

from cda.config import config_from_dict
from cda.export.dataset import to_audit_dataset, to_dataset
from cda.records import Candidate, Check, EditPlan, Record, Span

ROWS = {
    "Text": ["It was bad .", "A great film .", "Dull and boring ."],
    "Sentiment": ["Negative", "Positive", "Negative"],
    "batch_id": ["10", "11", "12"],
}
REFERENCE_ROWS = [
    ("Negative", "It was bad .", "10"),
    ("Positive", "It was great .", "10"),
    ("Positive", "A great film .", "11"),
    ("Negative", "A terrible film .", "11"),
    ("Negative", "Dull and boring .", "12"),
    ("Positive", "Fun and exciting .", "12"),
    ("Positive", "Not in the dataset .", "99"),
    ("Negative", "Not in the dataset either .", "99"),
]


def config_dict(data_path: str = "unused.tsv") -> dict:
    # A tiny classifier recipe, so integration tests that retrain the task judge stay fast.
    return {
        "data": {"path": data_path},
        "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "classifier": {"max_length": 32, "train": {"max_steps": 2, "batch_size": 4}},
        "filter": {"checks": {"fluency": None}},
    }


def write_input(path: Path) -> Path:
    """The build's input rows as a TSV (what `data.path` points to)."""
    lines = ["Text\tSentiment\tbatch_id"] + ["\t".join(row) for row in zip(*ROWS.values())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _passed(*names: str) -> list[Check]:
    return [Check(name=n, passed=True) for n in names]


def records() -> list[Record]:
    r0 = Record(index=0, segments={"text": ROWS["Text"][0]}, label="Negative")
    r0.plans = [EditPlan(
        target_label="Positive", segment="text", spans=[Span(segment="text", start=7, end=10, score=1.0)],
        masked="It was [BLANK1] .",
        candidates=[
            Candidate(segments={"text": "It was really good ."}, generator="fake:generator", checks=_passed("logic", "label"),
                      label_prob=0.9, edit_distance=0.4),
            Candidate(segments={"text": "It was good ."}, generator="fake:generator", sample_index=1,
                      checks=[Check(name="logic", passed=True), Check(name="label", passed=False, reason="p=0.4")]),
            Candidate(segments=None, raw="no blanks here", generator="fake:generator", sample_index=2,
                      error="could not parse"),
        ],
        selected=0,
    )]  # fmt: skip
    r1 = Record(index=1, segments={"text": ROWS["Text"][1]}, label="Positive")
    r1.plans = [EditPlan(
        target_label="Negative", segment="text", spans=[Span(segment="text", start=2, end=7, score=1.0)],
        masked="A [BLANK1] film .",
        candidates=[Candidate(segments={"text": "A good film ."}, generator="fake:generator",
                              checks=_passed("logic", "label"), label_prob=0.6, edit_distance=0.25)],
        selected=0,
    )]  # fmt: skip
    r2 = Record(index=2, segments={"text": ROWS["Text"][2]}, label="Negative")
    r2.plans = [EditPlan(
        target_label="Positive", segment="text", masked="[BLANK1] and [BLANK2] .",
        candidates=[Candidate(segments={"text": "Great fun and a wonderful time ."}, generator="fake:generator",
                              checks=[Check(name="minimality", passed=False, reason="too far")])],
    )]  # fmt: skip
    return [r0, r1, r2]


def write_tiny_build(folder: Path, data_path: str = "unused.tsv") -> Path:
    """Write the build output into ``folder`` and return it."""
    config = config_from_dict(config_dict(data_path))
    table = datasets.Dataset.from_dict(ROWS)
    recs = records()
    to_dataset(table, recs, config).save_to_disk(str(folder / "dataset"))
    to_audit_dataset(recs, config).save_to_disk(str(folder / "audit"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    (folder / "summary.json").write_text('{"counterfactuals": 2}', encoding="utf-8")
    return folder


def write_reference(path: Path) -> Path:
    lines = ["Sentiment\tText\tbatch_id"] + ["\t".join(row) for row in REFERENCE_ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
