"""What `cda build` prints at its end."""

from __future__ import annotations

from cda.cli import print_pairs
from cda.records import Candidate, EditPlan, Record


def _record(index: int, text: str, edited: str, **measures: float) -> Record:
    plan = EditPlan(target_label="Negative", segment="text", selected=0,
                    candidates=[Candidate(segments={"text": edited}, measures=measures)])
    return Record(index=index, segments={"text": text}, label="Positive", plans=[plan])


def test_the_showcase_shows_counterfactuals_every_sentence_of_which_reads_as_the_target(capsys):
    records = [
        _record(0, "A great film. Funny too.", "A dull film. Funny too.", label_prob=0.95, weakest_sentence_prob=0.3),
        _record(1, "A great film.", "A bad film.", label_prob=0.8, weakest_sentence_prob=0.8),
        _record(2, "I loved it. Great cast.", "I hated it. Weak cast.", label_prob=0.9, weakest_sentence_prob=0.9),
        _record(3, "Loved it.", "Hated it.", label_prob=0.7, weakest_sentence_prob=0.7),
    ]
    print_pairs(records, config=None, k=2)  # type: ignore[arg-type]
    out = capsys.readouterr().err  # rich writes to stderr
    assert "#2: Positive → Negative  (p=0.90) (weakest sentence p=0.90)" in out and "#1:" in out
    assert out.index("#2:") < out.index("#1:") and "#0:" not in out and "#3:" not in out
    assert "loved → hated" in out and "I hated it. Weak cast." in out
    assert "1 of 4 counterfactuals keep a sentence the classifier reads as another label" in out


def test_the_showcase_ranks_by_label_probability_where_no_sentence_was_read(capsys):
    records = [_record(0, "A great film.", "A bad film.", label_prob=0.7),
               _record(1, "I loved it.", "I hated it.", label_prob=0.9)]
    print_pairs(records, config=None, k=3)  # type: ignore[arg-type]
    out = capsys.readouterr().err
    assert out.index("#1:") < out.index("#0:") and "keep a sentence" not in out
