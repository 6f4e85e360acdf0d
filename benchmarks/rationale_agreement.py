"""How well rationale spans match the words people changed to flip the label.

Kaushik et al.'s pairs say which words a person changed to flip each review: the original's
side of the word-level alignment (:func:`cda.generate.trained.alignment.changed_regions`).
For every attribution method and word filter, Explain picks rationale words on the same
originals with the same classifier, with and without the word-change prior of other pairs
(``explain.prior``, ``--prior-weights``); the script reports micro precision (rationale words a
person changed) and recall (changed words the rationale found), and the time Explain took.

    python benchmarks/rationale_agreement.py --config configs/imdb.yaml \\
        --pairs ../shared/data/kaushik-cad/sentiment/dev_paired.tsv --key batch_id \\
        --prior-pairs ../shared/data/kaushik-cad/sentiment/train_paired.tsv --prior-weights none,1,2,4 \\
        classifier.train.path=../shared/data/kaushik-cad/sentiment/train_paired.tsv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def word_set(text: str, spans: list[tuple[int, int]]) -> set[int]:
    """Indices of the whitespace words of ``text`` that overlap any ``[start, end)`` span."""
    import re

    out = set()
    for k, m in enumerate(re.finditer(r"\S+", text)):
        if any(m.start() < end and start < m.end() for start, end in spans):
            out.add(k)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True, help="original + human counterfactual rows sharing --key")
    parser.add_argument("--key", default="batch_id")
    parser.add_argument("--methods", default="grad_x_input,integrated_gradients,occlusion")
    parser.add_argument("--words", default="content,all")
    parser.add_argument("--prior-pairs", type=Path, help="human pairs for the word-change prior (explain.prior)")
    parser.add_argument("--prior-key", default="batch_id")
    parser.add_argument("--prior-weights", default="none", help="comma list: none (no prior) or weights, e.g. none,1,2")
    parser.add_argument("--limit", type=int, help="only the first N pairs")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from cda.cache import Cache
    from cda.config import DataConfig, load_config
    from cda.data import load_table
    from cda.evaluate.reference import reference_rows
    from cda.explain.classifier import load_or_train_classifier
    from cda.explain.stage import ExplainStage
    from cda.generate.trained.alignment import changed_regions
    from cda.records import Record

    base = load_config(args.config, [f"data.path={args.pairs}", f"data.dedupe_on={args.key}", *args.overrides])
    table = load_table(DataConfig(path=str(args.pairs)))
    rows = reference_rows(table, base.task)
    groups: dict[str, list[int]] = {}
    for i, value in enumerate(table[args.key]):
        groups.setdefault(str(value), []).append(i)
    segment = list(base.task.segments)[-1]
    originals, human = [], []
    for members in groups.values():
        if len(members) != 2:
            continue
        (a, label), (b, _) = rows[members[0]], rows[members[1]]
        originals.append(Record(index=len(originals), segments=a, label=label))
        human.append(word_set(a[segment], [(r.start, r.end) for r in changed_regions(a[segment], b[segment])]))
    if args.limit is not None:
        originals, human = originals[: args.limit], human[: args.limit]
    cache = Cache(base.resolved_cache_dir())
    train = None if base.classifier.train.path else originals
    classifier = load_or_train_classifier(base, cache, train)
    results = []
    from cda.config import PairsConfig, PriorConfig

    grid = [(m, w, p) for m in args.methods.split(",") for w in args.words.split(",") for p in args.prior_weights.split(",")]
    for method, words, weight in grid:
        config = base.model_copy(deep=True)
        config.explain.method = method
        config.explain.words = words
        config.explain.prior = None
        if weight != "none":
            if args.prior_pairs is None:
                parser.error("--prior-weights other than none need --prior-pairs")
            config.explain.prior = PriorConfig(pairs=PairsConfig(path=str(args.prior_pairs), key=args.prior_key), weight=float(weight))
        stage = ExplainStage(config, Cache(cache.root, enabled=False), classifier)  # timed without the explain cache
        if config.explain.prior is not None:
            from cda.explain.prior import prior_from_config

            stage.selector.prior = prior_from_config(config, cache)  # the prior's counts may come from the cache
        stage.load()
        start = time.perf_counter()
        explained = stage.process([r.model_copy(deep=True) for r in originals])
        seconds = time.perf_counter() - start
        stage.unload()
        hit = picked = changed = 0
        for record, gold in zip(explained, human):
            rationale = word_set(record.segments[segment], [(s.start, s.end) for s in record.spans if s.segment == segment])
            hit += len(rationale & gold)
            picked += len(rationale)
            changed += len(gold)
        row = {
            "method": method, "words": words, "prior": weight, "originals": len(originals), "rationale_words": picked,
            "precision": round(hit / picked, 4) if picked else None, "recall": round(hit / changed, 4) if changed else None,
            "explain_seconds": round(seconds, 1),
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        results.append(row)
    print("| method | words | prior weight | precision | recall | rationale words | explain s |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['words']} | {r['prior']} | {r['precision']} | {r['recall']} | {r['rationale_words']} | {r['explain_seconds']} |")


if __name__ == "__main__":
    main()
