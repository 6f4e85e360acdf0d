"""The classifiers that judge whether a counterfactual has its target label.

* the **task** judge: the classifier that filtered the candidates (retrained from the
  run's config, which loads it from the cache when the build trained it here);
* an **independent** judge: the same recipe trained with another seed on the same data
  in another order, or any HF sequence classifier folder the user points to.

A filter's own classifier overstates validity (it accepted exactly the candidates it
believes), so reports show both.

Examples:
    >>> folder = clf.save(tmp_dir / "judge")  # any HF sequence classifier folder
    >>> judge = judge_from_path(folder, cfg)
    >>> judge.labels
    ['Negative', 'Positive']
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from cda.cache import Cache
from cda.config import Config
from cda.errors import CdaError
from cda.protocols import Classifier
from cda.records import Record

log = logging.getLogger(__name__)

INDEPENDENT = "independent"


class JudgeError(CdaError, ValueError):
    """A judge cannot be used: not a sequence classifier, or its labels do not fit the task."""


def training_records(config: Config) -> list[Record]:
    """The records the run's task classifier was trained on, chosen as ``cda build`` chose them
    (the whole input file, even when ``data.limit`` cut the rows to augment).

    Raises:
        FileNotFoundError: the run's ``data.path`` is not reachable from here (the message
            says how to work around it).
    """
    from cda.data import load_table
    from cda.pipeline import Runner

    runner = Runner(config, use_cache=False)
    try:
        table = load_table(config.data)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{e}. The task judge is the run's classifier, retrained (or loaded from the cache) from the run's "
            "data: run from the folder `cda build` ran in, or pass a trained classifier with --judge PATH."
        ) from None
    return runner.training_records(runner.records(table), from_config=True)


def task_judge(config: Config, cache: Cache, records: list[Record] | None = None) -> Classifier:
    """The classifier that filtered the run: ``classifier.path``, or the cached LoRA one.

    With the cache of the build, this loads the same weights; without it, the same recipe
    and seed train them again.

    Examples:
        >>> from cda import load_config
        >>> cfg = load_config("configs/imdb.yaml", ["classifier.train.max_steps=1", "classifier.train.limit=8"])
        >>> task_judge(cfg, Cache(cfg.resolved_cache_dir())).origin  # trained here: the build's cache is elsewhere
        'trained'
        >>> task_judge(cfg, Cache(cfg.resolved_cache_dir())).origin
        'cache'
    """
    from cda.explain.classifier import load_or_train_classifier

    if config.classifier.path is None and config.classifier.train.path is None and records is None:
        records = training_records(config)
    return load_or_train_classifier(config, cache, records)


def independent_judge(config: Config, cache: Cache, records: list[Record] | None = None, offset: int = 1) -> Classifier:
    """The task recipe trained again with seed ``config.seed + offset`` on shuffled data.

    A different seed changes the LoRA initialisation and batch order; shuffling the
    records too changes which examples a ``classifier.train.limit`` sample keeps. It is
    cached like the task classifier, so a second evaluation loads it.

    Examples:
        >>> from cda import load_config
        >>> cfg = load_config("configs/imdb.yaml", ["classifier.train.max_steps=1", "classifier.train.limit=8"])
        >>> cache = Cache(cfg.resolved_cache_dir())
        >>> judge = independent_judge(cfg, cache)
        >>> judge.name != task_judge(cfg, cache).name, judge.name  # doctest: +ELLIPSIS
        (True, 'lora-minilm@...')
    """
    from cda.explain.classifier import load_or_train_classifier

    independent = config.model_copy(deep=True)
    independent.seed = config.seed + offset
    independent.classifier.path = None
    if independent.classifier.train.path is None:
        records = list(records if records is not None else training_records(config))
        random.Random(independent.seed).shuffle(records)
    log.info("Training (or loading) the independent judge: seed %d", independent.seed)
    return load_or_train_classifier(independent, cache, records)


def judge_from_path(path: str | Path, config: Config) -> Classifier:
    """Load any HF sequence classifier folder (full model or peft adapter) as a judge.

    Its label names must match ``config.task.labels`` (case-insensitively), so a flip
    means the same thing for the judge as for the task.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        JudgeError: the folder is not a sequence classifier, or its labels are unnamed
            (``LABEL_0`` ...) or differ from the task's.
    """
    from cda.explain.classifier import META_FILE, load_classifier

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--judge {str(path)!r} is not a folder; expected an HF sequence-classifier folder")
    labels = _folder_labels(path, META_FILE)
    task_labels = list(config.task.labels)
    if labels is not None:
        if all(str(x).upper().startswith("LABEL_") for x in labels):
            raise JudgeError(
                f"Judge {path} has unnamed labels {labels}: a judge's labels must be named like task.labels "
                f"{task_labels} (set id2label in its config.json)"
            )
        lower = sorted(str(x).lower() for x in labels)
        if lower != sorted(x.lower() for x in task_labels):
            raise JudgeError(
                f"Judge {path} predicts labels {labels}, which differ from task.labels {task_labels}; "
                "use a judge trained for this task's labels"
            )
    judge_config = config.model_copy(deep=True)
    judge_config.classifier.path = str(path)
    return load_classifier(path, judge_config)


def _folder_labels(path: Path, meta_file: str) -> list[str] | None:
    """The folder's label names, after checking it holds a sequence classifier."""
    meta = path / meta_file
    if meta.is_file():
        return list(json.loads(meta.read_text(encoding="utf-8"))["labels"])
    adapter = path / "adapter_config.json"
    config = path / "config.json"
    if adapter.is_file():
        task_type = json.loads(adapter.read_text(encoding="utf-8")).get("task_type")
        if task_type != "SEQ_CLS":
            raise JudgeError(f"Judge {path} is a peft adapter for task {task_type!r}, not a sequence classifier (SEQ_CLS)")
        if not config.is_file():
            return None  # labels are checked against the task when the adapter loads
    if not config.is_file():
        raise JudgeError(
            f"Judge {path} holds no model: expected config.json (HF model), adapter_config.json (peft) "
            f"or {meta_file} (cda classifier)"
        )
    hf = json.loads(config.read_text(encoding="utf-8"))
    architectures = hf.get("architectures") or []
    if not adapter.is_file() and not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise JudgeError(
            f"Judge {path} is not a sequence classifier: its config.json names the architectures {architectures} "
            "(expected one ending in ForSequenceClassification)"
        )
    id2label = hf.get("id2label") or {}
    return [id2label[k] for k in sorted(id2label, key=int)] if id2label else None
