"""``cda evaluate``: how valid, minimal, fluent and diverse a build's counterfactuals are,
and how close to human ones, side by side with the human counterfactuals themselves.

For each counterfactual (cda's, and the reference's when one is given) it measures

* the label under two judges: the task classifier that filtered the build and an
  independent one (another seed and data order, or ``--judge PATH``);
* the token edit distance and BLEU to the original's edited segment;
* the perplexity under a causal LM (default: the generator's model) and its ratio to
  the original's;
* for cda's: the self-BLEU of all parsed candidates for the same original and target
  (from the audit split) and, with a reference, edit distance and BLEU to the human
  counterfactual for the same original, target label and edited segment.

From the audit split it also counts the search funnel per round (:mod:`cda.evaluate.funnel`):
plans, candidates by fate, and the share of (original, target) pairs with a counterfactual.

It writes ``metrics.json`` (overall and per source→target label), ``examples.jsonl`` (one
line per counterfactual), the figures and ``report.md``/``report.html``.

Examples:
    >>> from cda.evaluate import evaluate
    >>> result = evaluate("outputs/imdb", reference="../shared/data/kaushik-cad/sentiment/dev_paired.tsv")  # doctest: +SKIP
    >>> result.metrics["cda"]["overall"]["flip_task"]["mean"]  # doctest: +SKIP
    0.97
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from cda.cache import Cache
from cda.config import Config
from cda.evaluate import metrics as M
from cda.evaluate.build_output import BuildOutput, Counterfactual, load_build_output
from cda.evaluate.funnel import search_funnel
from cda.evaluate.reference import ReferencePairing
from cda.protocols import Classifier, LanguageModel
from cda.records import SENTENCE_SEPARATOR, Record

log = logging.getLogger(__name__)

# The per-counterfactual fields :func:`metrics.aggregate` summarizes.
FIELDS = (
    "flip_task", "prob_task", "flip_independent", "prob_independent", "edit_distance", "bleu_to_original",
    "unknown_words", "perplexity", "original_perplexity", "perplexity_ratio", "self_bleu", "edit_distance_to_human", "bleu_to_human",
    "words_changed_by_human_too", "human_words_changed",
)  # fmt: skip


@dataclass
class EvalComponents:
    """Models to use instead of building them (tests pass fakes); ``None`` builds from the config."""

    task_judge: Classifier | None = None
    independent_judge: Classifier | None = None
    language_model: LanguageModel | None = None


@dataclass
class EvaluationResult:
    """The metrics (as written to ``metrics.json``), per-counterfactual rows, and the files written."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    output_dir: Path
    files: list[Path] = field(default_factory=list)


def evaluate(
    dataset_dir: str | Path,
    reference: str | Path | None = None,
    judge: str | None = "independent",
    output_dir: str | Path | None = None,
    *,
    config: str | Path | Config | None = None,
    reference_key: str | None = None,
    per_original: int = 2,
    fluency: bool = True,
    use_cache: bool = True,
    components: EvalComponents | None = None,
    examples: int = 10,
) -> EvaluationResult:
    """Measure a ``cda build`` output and write the report.

    Args:
        dataset_dir: the build's output folder, or its ``dataset/`` folder.
        reference: a file of human counterfactuals for the same originals (e.g. Kaushik's
            ``dev_paired.tsv`` or an NLI ``revised_hypothesis/dev.tsv``).
        judge: the second judge: ``"independent"`` (the task recipe with another seed and
            data order), a path to an HF sequence-classifier folder, or ``None``/``"none"``.
        output_dir: where to write (default ``<build>/evaluation``).
        config: the run config (default ``<build>/config.yaml``).
        reference_key: the column that pairs reference rows with originals (default: the
            one column both share, e.g. ``batch_id``; none pairs by position).
        per_original: reference rows per original when pairing by position.
        fluency: measure perplexity (loads the language model).
        use_cache: load cached judges and perplexities (and store new ones).
        components: models to use instead of the configured ones.
        examples: how many example pairs the report shows.

    Raises:
        NotCdaDatasetError: the dataset lacks the ``cda_`` columns.
        ReferencePairingError: the reference lacks the task's columns or nothing pairs up.
        JudgeError: ``judge`` is not a sequence classifier or its labels differ.

    Examples:
        >>> result = evaluate("outputs/imdb", reference="../shared/data/kaushik-cad/sentiment/dev_paired.tsv")  # doctest: +SKIP
        >>> result.metrics["human"]["overall"]["edit_distance"]["mean"]  # doctest: +SKIP
        0.16
        >>> evaluate("outputs/imdb", judge="models/roberta-imdb", fluency=False)  # doctest: +SKIP

        With a tiny build, a fake task judge, no second judge and no language model:

        >>> from tests.fakes import FakeClassifier
        >>> result = evaluate(build_dir, judge=None, fluency=False, components=EvalComponents(task_judge=FakeClassifier()))
        >>> result.metrics["counterfactuals"], result.output_dir == build_dir / "evaluation"
        (2, True)
    """
    from cda.models import set_threads

    build = load_build_output(dataset_dir, config)
    cfg = build.config
    set_threads(cfg.threads)
    components = components or EvalComponents()
    cache = Cache(cfg.resolved_cache_dir(), enabled=use_cache)
    out = Path(output_dir) if output_dir is not None else build.root / "evaluation"
    out.mkdir(parents=True, exist_ok=True)

    originals = {r.index: r for r in build.originals()}
    every = build.counterfactuals()
    generated = [c for c in every if c.original_index in originals]
    if len(generated) < len(every):
        log.warning("%d of %d counterfactuals point at no usable original row and are left out",
                    len(every) - len(generated), len(every))  # fmt: skip
    if not generated:
        log.warning("%s has no counterfactuals: only the reference (if any) is measured", build.root)
    pairing = _pair(build, reference, reference_key, per_original, list(originals.values())) if reference else None
    human = pairing.counterfactuals if pairing else []

    judges = _judges(cfg, cache, judge, components)
    rows = [_base_row(c, originals[c.original_index]) for c in generated]
    rows += [_base_row(c, originals[c.original_index]) for c in human]
    judge_info = {}
    for role, classifier in judges.items():
        _judge_rows(rows, generated + human, role, classifier)
        judge_info[role] = {
            "name": getattr(classifier, "name", type(classifier).__name__),
            "accuracy_on_originals": _accuracy(classifier, list(originals.values())),
        }
    _distance_rows(rows)
    lm_name = None
    if fluency:
        lm = components.language_model or _language_model(cfg)
        lm_name = lm.name
        _perplexity_rows(rows, lm, cache)
    diversity = _diversity(build, rows)
    _closeness_rows(rows)

    cda_rows = [r for r in rows if r["kind"] == "cda"]
    human_rows = [r for r in rows if r["kind"] == "human"]
    metrics: dict[str, Any] = {
        "dataset": str(build.root),
        "originals": len(originals),
        "counterfactuals": len(generated),
        "originals_with_counterfactual": len({c.original_index for c in generated}),
        "judges": judge_info,
        "language_model": lm_name,
        "cda": M.aggregate(cda_rows, FIELDS),
        "diversity": diversity,
        "candidates": _candidate_counts(build),
        "funnel": search_funnel(build.audit, cda_rows) if build.audit is not None else [],
        "build_summary": build.summary,
    }
    if pairing is not None:
        metrics["reference"] = {"path": str(reference), **pairing.as_dict()}
        metrics["human"] = M.aggregate(human_rows, FIELDS)
        edited = {(r["original_index"], r["target"], r["segment"]) for r in cda_rows}
        same = [r for r in human_rows if (r["original_index"], r["target"], r["segment"]) in edited]
        metrics["human_same_originals"] = M.aggregate(same, FIELDS)
        both = [r for r in cda_rows if r.get("bleu_to_human") is not None]
        metrics["closeness"] = {
            "pairs": len(both),
            "edit_distance_to_human": M.summarize(r["edit_distance_to_human"] for r in both),
            "bleu_to_human": M.summarize(r["bleu_to_human"] for r in both),
            # Of the words cda changed, the share the human changed too; of the human's, the share cda changed.
            "words_changed_by_human_too": M.summarize(r["words_changed_by_human_too"] for r in both),
            "human_words_changed": M.summarize(r["human_words_changed"] for r in both),
        }
    from cda.review.agreement import review_summary

    review = review_summary(build.root)  # the filter against reviewers, once `cda review pull` ran
    if review is not None:
        metrics["review"] = review
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    with (out / "examples.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    from cda.evaluate.evaluation_report import write_evaluation_report

    files = [out / "metrics.json", out / "examples.jsonl"]
    files += write_evaluation_report(metrics, rows, out, examples=examples)
    return EvaluationResult(metrics=metrics, rows=rows, output_dir=out, files=files)


# ------------------------------------------------------------------------ steps
def _pair(
    build: BuildOutput, reference: str | Path, key: str | None, per_original: int, originals: list[Record]
) -> ReferencePairing:
    from cda.evaluate.reference import guess_key, load_reference, pair_reference

    task = build.config.task
    table = load_reference(reference, task)
    key = key or guess_key(build.dataset.column_names, table.column_names, task)
    keys = None
    if key is not None:
        if key not in table.column_names:
            from cda.evaluate.reference import ReferencePairingError

            raise ReferencePairingError(f"reference_key {key!r} is not a column of {reference}: {table.column_names}")
        values = build.original_values(key)
        keys = [values[r.index] for r in originals]
    return pair_reference(originals, keys, table, task, key=key, per_original=per_original)


def _judges(cfg: Config, cache: Cache, judge: str | None, components: EvalComponents) -> dict[str, Classifier]:
    from cda.evaluate.judges import INDEPENDENT, independent_judge, judge_from_path, task_judge, training_records

    records = None
    needs_records = cfg.classifier.path is None and cfg.classifier.train.path is None
    judges: dict[str, Classifier] = {}
    if components.task_judge is not None:
        judges["task"] = components.task_judge
    else:
        records = training_records(cfg) if needs_records else None
        judges["task"] = task_judge(cfg, cache, records)
    if components.independent_judge is not None:
        judges["independent"] = components.independent_judge
    elif judge is None or str(judge).lower() == "none":
        pass
    elif str(judge) == INDEPENDENT:
        if records is None and needs_records:
            records = training_records(cfg)
        judges["independent"] = independent_judge(cfg, cache, records)
    else:
        judges["independent"] = judge_from_path(judge, cfg)
    return judges


def _language_model(cfg: Config) -> LanguageModel:
    from cda.generate.backends import make_language_model

    return make_language_model(cfg)


def _base_row(c: Counterfactual, original: Record) -> dict[str, Any]:
    # A plan may edit several segments ("claim,evidence"): their texts, joined by line breaks.
    names = c.segment.split(",")
    row: dict[str, Any] = {
        "kind": c.kind,
        "original_index": c.original_index,
        "source": c.source,
        "target": c.target,
        "segment": c.segment,
        "original": SENTENCE_SEPARATOR.join(original.segments[name] for name in names),
        "counterfactual": SENTENCE_SEPARATOR.join(c.segments[name] for name in names),
    }
    if c.kind == "cda":  # the search round that wrote it; builds before search rounds: 1
        row["round"] = int(c.provenance.get("cda_round") or 1)
    return row


def _judge_rows(rows: list[dict], cfs: Sequence[Counterfactual], role: str, classifier: Classifier) -> None:
    if not cfs:
        return
    unknown = sorted({c.target for c in cfs} - set(classifier.labels))
    if unknown:
        from cda.evaluate.judges import JudgeError

        raise JudgeError(f"The {role} judge {classifier.name!r} has labels {classifier.labels}, not {unknown}")
    judgements = M.judge(classifier, [c.segments for c in cfs], [c.target for c in cfs])
    for row, j in zip(rows, judgements):
        row[f"flip_{role}"] = j.flipped
        row[f"prob_{role}"] = round(j.target_prob, 4)
        row[f"predicted_{role}"] = j.predicted


def _accuracy(classifier: Classifier, originals: list[Record]) -> float | None:
    if not originals:
        return None
    judgements = M.judge(classifier, [r.segments for r in originals], [r.label for r in originals])
    return round(M.flip_rate(judgements) or 0.0, 4)


def _distance_rows(rows: list[dict]) -> None:
    from cda.filter.words import WordsCheck

    # The filter's default words check, as a measure: did the edit add an invented or non-English word?
    words = WordsCheck()  # default settings (filter.checks.words)
    distances = M.edit_distances((r["original"], r["counterfactual"]) for r in rows)
    for row, d in zip(rows, distances):
        row["edit_distance"] = round(d, 4)
        row["bleu_to_original"] = round(M.bleu(row["counterfactual"], [row["original"]]), 4)
        row["unknown_words"] = not words.check(row["original"], row["counterfactual"]).passed


def _perplexity_rows(rows: list[dict], lm: LanguageModel, cache: Cache) -> None:
    texts = list(dict.fromkeys([r["original"] for r in rows] + [r["counterfactual"] for r in rows]))
    scores = perplexities(lm, texts, cache)
    for row in rows:
        ppl, base = scores[row["counterfactual"]], scores[row["original"]]
        row["perplexity"] = ppl
        row["original_perplexity"] = base
        ratio = M.perplexity_ratios([ppl], [base])[0]
        row["perplexity_ratio"] = None if ratio is None else round(ratio, 4)


def perplexities(lm: LanguageModel, texts: Sequence[str], cache: Cache, batch: int = 16) -> dict[str, float | None]:
    """Perplexity of each text (``None`` when not finite), cached per (model, text)."""
    out: dict[str, float | None] = {}
    todo = []
    for text in texts:
        hit = cache.get_json(cache.key("perplexity", lm.name, text))
        if hit is not None:
            out[text] = hit["perplexity"]
        else:
            todo.append(text)
    with tqdm(total=len(todo), desc="Perplexity", unit="text", disable=None) as bar:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            for text, value in zip(chunk, lm.perplexity(chunk)):
                value = float(value)
                out[text] = round(value, 4) if math.isfinite(value) else None
                cache.put_json(cache.key("perplexity", lm.name, text), {"perplexity": out[text]})
            bar.update(len(chunk))
    return out


def _diversity(build: BuildOutput, rows: list[dict]) -> dict[str, Any]:
    """Self-BLEU of the parsed candidates of each (original, target); set on the cda rows."""
    audit = build.audit
    if audit is None or len(audit) == 0:
        return {"plans": 0, "self_bleu": M.summarize([]), "note": "no audit split: diversity not measured"}
    groups: dict[tuple[int, str], list[str]] = {}
    sources: dict[tuple[int, str], str] = {}
    for index, source, target, parsed in zip(
        audit["original_index"], audit["source_label"], audit["target_label"], audit["parsed"]
    ):
        if parsed is None:
            continue
        groups.setdefault((int(index), target), []).append(parsed)
        sources[(int(index), target)] = source
    scores = {key: M.self_bleu(texts) for key, texts in groups.items()}
    for row in rows:
        if row["kind"] == "cda":
            row["self_bleu"] = _round(scores.get((row["original_index"], row["target"])))
    per_plan = [{"source": sources[k], "target": k[1], "self_bleu": v} for k, v in scores.items() if v is not None]
    agg = M.aggregate(per_plan, ["self_bleu"])
    return {
        "plans": len(per_plan),
        "plans_with_fewer_than_2_parsed": sum(v is None for v in scores.values()),
        "self_bleu": agg["overall"]["self_bleu"],
        "by_pair": {k: v["self_bleu"] for k, v in agg["by_pair"].items()},
    }


def _closeness_rows(rows: list[dict]) -> None:
    # Same original, target label and edited segment: a human who revised the premise is no
    # reference for a generated hypothesis.
    human = {(r["original_index"], r["target"], r["segment"]): r["counterfactual"] for r in rows if r["kind"] == "human"}
    for row in rows:
        if row["kind"] != "cda":
            continue
        ref = human.get((row["original_index"], row["target"], row["segment"]))
        if ref is None:
            continue
        row["edit_distance_to_human"] = round(M.edit_distances([(ref, row["counterfactual"])])[0], 4)
        row["bleu_to_human"] = round(M.bleu(row["counterfactual"], [ref]), 4)
        precision, recall = M.changed_word_overlap(row["original"], row["counterfactual"], ref)
        row["words_changed_by_human_too"], row["human_words_changed"] = _round(precision), _round(recall)


def _candidate_counts(build: BuildOutput) -> dict[str, Any]:
    """Per label pair: originals, selected counterfactuals, and every candidate's fate."""
    audit = build.audit
    if audit is None:
        return {}
    out: dict[str, Counter] = {}
    for source, target, selected, accepted, reason in zip(
        audit["source_label"], audit["target_label"], audit["selected"], audit["accepted"], audit["drop_reason"]
    ):
        fate = "selected" if selected else "accepted, not selected" if accepted else f"dropped: {reason}"
        out.setdefault(M.pair_name(source, target), Counter())[fate] += 1
    return {pair: dict(c.most_common()) for pair, c in sorted(out.items())}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

