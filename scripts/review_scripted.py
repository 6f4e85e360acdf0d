"""A scripted reviewer for IMDb sentiment counterfactuals: posts annotations to a Label Studio
project through its API, as a person clicking accept / reject / correct would.

It is a stand-in for people, for demos and measurements, not a judge of quality: its rules are
a small sentiment lexicon, not reading. Numbers made with it say how the round trip works,
not how good the counterfactuals are. Per task, in order:

* every 8th task is left pending (no annotation);
* more than 35 % of the words changed -> reject, "not minimal";
* an inserted word that is rare or not English (wordfreq Zipf < 2.5) -> reject, "not fluent";
* an inserted word of the source label's polarity -> reject, "label not flipped";
* an inserted word of the target polarity: if words of the source polarity are left that the
  lexicon knows an opposite of, they are flipped too -> accept with that correction;
  else -> accept;
* otherwise (nothing of the target polarity inserted) -> reject, "label not flipped".

    CDA_CACHE_DIR=/tmp/cdacache .venv/bin/python scripts/review_scripted.py --project 1
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wordfreq import zipf_frequency  # noqa: E402

from cda.review.candidates import word_diff  # noqa: E402
from cda.review.client import connect  # noqa: E402
from cda.review.labeling import ACCEPT, CORRECTION, DECISION, REASONS, REJECT  # noqa: E402
from cda.review.settings import DEFAULT_TOKEN_ENV, DEFAULT_URL  # noqa: E402

OPPOSITE = {
    "good": "bad", "great": "awful", "excellent": "terrible", "wonderful": "horrible", "best": "worst",
    "love": "hate", "loved": "hated", "enjoyable": "tedious", "brilliant": "dreadful", "fun": "dull",
    "interesting": "boring", "beautiful": "ugly", "better": "worse", "strong": "weak", "clever": "stupid",
    "amazing": "disappointing", "fantastic": "mediocre", "superb": "poor", "perfect": "flawed", "funny": "unfunny",
    "exciting": "boring", "masterpiece": "mess", "recommend": "avoid", "like": "dislike", "liked": "disliked",
    "nice": "nasty", "well": "badly", "favorite": "least favorite", "impressive": "unimpressive",
}  # fmt: skip
POSITIVE = set(OPPOSITE) | {"awesome", "charming", "delightful", "entertaining", "gem", "moving", "solid", "touching"}
NEGATIVE = set(OPPOSITE.values()) | {"awful", "waste", "pathetic", "lame", "annoying", "ridiculous", "terrible",
                                     "horrible", "worst", "garbage", "crap", "fails", "failed", "pointless"}  # fmt: skip
FLIP = {**OPPOSITE, **{v: k for k, v in OPPOSITE.items() if " " not in v}}
WORD = re.compile(r"[A-Za-z']+")


def polarity(label: str) -> set[str]:
    return POSITIVE if label.lower().startswith("pos") else NEGATIVE


def decide(task: dict, position: int) -> tuple[str, list[str], str | None] | None:
    """``(decision, reasons, correction)`` for a task, or ``None`` to leave it pending."""
    if position % 8 == 7:
        return None
    data = task["data"]
    original, edited = data["original"], data["counterfactual"]
    source, target = polarity(data["source_label"]), polarity(data["target_label"])
    pieces = word_diff(original, edited)
    deleted = [w.lower() for op, t in pieces if op == "delete" for w in WORD.findall(t)]
    inserted = [w.lower() for op, t in pieces if op == "insert" for w in WORD.findall(t)]
    words = max(1, len(WORD.findall(original)))
    if max(len(deleted), len(inserted)) / words > 0.35:
        return REJECT, ["not minimal"], None
    if any(zipf_frequency(w, "en") < 2.5 for w in inserted):
        return REJECT, ["not fluent"], None
    if any(w in source for w in inserted):
        return REJECT, ["label not flipped"], None
    if any(w in target for w in inserted):
        left = [w for w in WORD.findall(edited) if w.lower() in source and w.lower() in FLIP]
        if left:
            corrected = WORD.sub(lambda m: _flip(m.group(), source), edited)
            return ACCEPT, [], corrected
        return ACCEPT, [], None
    return REJECT, ["label not flipped"], None


def _flip(word: str, source: set[str]) -> str:
    lower = word.lower()
    if lower not in source or lower not in FLIP:
        return word
    new = FLIP[lower]
    return new.capitalize() if word[:1].isupper() else new


def annotate(client, project: int) -> Counter:
    """Post one annotation per task of ``project`` that has none; return what was decided."""
    done: Counter = Counter()
    tasks = sorted(client.tasks(project), key=lambda t: t["id"])
    for position, task in enumerate(tasks):
        if task.get("total_annotations"):
            done["already annotated"] += 1
            continue
        verdict = decide(task, position)
        if verdict is None:
            done["pending"] += 1
            continue
        decision, reasons, correction = verdict
        text = correction if correction is not None else task["data"]["counterfactual"]
        result = [
            {"from_name": DECISION, "to_name": "counterfactual", "type": "choices", "value": {"choices": [decision]}},
            {"from_name": CORRECTION, "to_name": "counterfactual", "type": "textarea", "value": {"text": [text]}},
        ]
        if reasons:
            result.append({"from_name": REASONS, "to_name": "counterfactual", "type": "choices",
                           "value": {"choices": reasons}})  # fmt: skip
        client.create_annotation(task["id"], result, lead_time=20.0)
        done["corrected" if correction is not None else ("accepted" if decision == ACCEPT else "rejected")] += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--token-env", default=DEFAULT_TOKEN_ENV)
    args = parser.parse_args()
    client = connect(args.url, args.token_env)
    print(dict(annotate(client, args.project)))


if __name__ == "__main__":
    main()
