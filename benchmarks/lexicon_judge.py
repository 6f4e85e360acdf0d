"""A sentiment judge of another kind: VADER (Hutto & Gilbert 2014), a rule-based lexicon, no training.

``cda evaluate``'s independent judge is a classifier like the filter's (another seed, another
sample): both read a review by a few strong words, and may share a blind spot. VADER sums the
valence of every sentiment word of the review, with negation and intensifier rules. This script
reads an evaluation folder (``examples.jsonl``, written by ``cda evaluate --reference``) and
prints, for cda's counterfactuals and for the human ones of the same originals, how often VADER
gives the target label (compound ≥ 0: positive), and its accuracy on those originals.

    pip install vaderSentiment==3.3.2
    cda evaluate outputs/imdb-dev --reference ../shared/data/kaushik-cad/sentiment/dev_paired.tsv --output outputs/imdb-dev-eval
    python benchmarks/lexicon_judge.py outputs/imdb-dev-eval

Sentiment tasks only; labels are matched by name (a label containing "pos" is positive).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluation", type=Path, help="a `cda evaluate` output folder (with examples.jsonl)")
    args = parser.parse_args()
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def positive(text: str) -> bool:
        return analyzer.polarity_scores(text.replace("<br />", " "))["compound"] >= 0

    rows = [json.loads(line) for line in (args.evaluation / "examples.jsonl").open(encoding="utf-8")]
    cda = [r for r in rows if r["kind"] == "cda"]
    edited = {(r["original_index"], r["target"], r["segment"]) for r in cda}
    human = [r for r in rows if r["kind"] == "human" and (r["original_index"], r["target"], r["segment"]) in edited]

    def flips(group: list[dict]) -> float:
        return sum(positive(r["counterfactual"]) == ("pos" in r["target"].lower()) for r in group) / max(1, len(group))

    def accuracy(group: list[dict]) -> float:
        return sum(positive(r["original"]) == ("pos" in r["source"].lower()) for r in group) / max(1, len(group))

    print(json.dumps({
        "cda": {"counterfactuals": len(cda), "vader_flip": round(flips(cda), 3)},
        "human_same_originals": {"counterfactuals": len(human), "vader_flip": round(flips(human), 3)},
        "vader_accuracy_on_the_originals": round(accuracy(cda), 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
