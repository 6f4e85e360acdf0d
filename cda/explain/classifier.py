"""The task classifier: a LoRA-tuned HF sequence classifier over named text segments.

:func:`load_or_train_classifier` is what the runner calls: a given folder is loaded,
otherwise a LoRA adapter is trained on the task data and cached by content hash, so a
rerun loads it instead of training again. The parts live in modules of their own, and
their public names are importable from here:

* :mod:`cda.explain.classifier_model` -- :class:`TransformersClassifier` (encode,
  ``predict_proba``, ``attribute``, ``save``), :class:`Encoded`, :class:`ClassifierError`
* :mod:`cda.explain.classifier_loading` -- :func:`load_classifier` (saved, peft adapter
  and full HF folders) and the backbone helpers
* :mod:`cda.explain.classifier_training` -- :func:`train_classifier`, the LoRA training loop

Examples:
    >>> from cda import load_config
    >>> from cda.cache import Cache
    >>> cfg = load_config("configs/imdb.yaml", ["classifier.train.max_steps=1"])  # one step: an example, not a model
    >>> clf = load_or_train_classifier(cfg, Cache(cfg.resolved_cache_dir()), records[:8])
    >>> clf.predict_proba([{"text": "A dull, lifeless film."}])  # doctest: +ELLIPSIS
    [{'Negative': 0..., 'Positive': 0...}]
"""

from __future__ import annotations

import logging

from cda.cache import Cache
from cda.config import Config, DataConfig
from cda.explain.classifier_loading import DEFAULT_BACKBONE, FOLDER_KINDS, load_classifier
from cda.explain.classifier_model import META_FILE, ClassifierError, Encoded, TransformersClassifier
from cda.explain.classifier_training import TRAIN_VERSION, train_classifier, training_key, training_records
from cda.records import Record

__all__ = [
    "DEFAULT_BACKBONE", "FOLDER_KINDS", "META_FILE", "TRAIN_VERSION", "ClassifierError", "Encoded",
    "TransformersClassifier", "load_classifier", "load_or_train_classifier", "train_classifier",
]

log = logging.getLogger(__name__)


def load_or_train_classifier(config: Config, cache: Cache, train_records: list[Record] | None) -> TransformersClassifier:
    """The task classifier: ``classifier.path`` if set, else a LoRA classifier trained and cached.

    Training data is ``classifier.train.path`` (read with the task's columns) or, when
    that is unset, ``train_records`` (the runner passes the input data). A trained
    classifier is cached as a folder keyed by the training texts and labels, backbone,
    training and LoRA settings, ``max_length``, seed and a version, so a rerun loads it
    (``origin == "cache"``) instead of training.

    Raises:
        ValueError: neither a classifier path nor any training data is available.

    Examples:
        >>> from cda import load_config
        >>> cfg = load_config("configs/imdb.yaml", ["classifier.train.max_steps=1"])
        >>> load_or_train_classifier(cfg, Cache(cfg.resolved_cache_dir()), records[:8]).origin
        'trained'
        >>> load_or_train_classifier(cfg, Cache(cfg.resolved_cache_dir()), records[:8]).origin  # the same again
        'cache'
    """
    from cda.models import set_threads

    set_threads(config.threads)
    if config.classifier.path:
        return load_classifier(config.classifier.path, config)
    train = config.classifier.train
    if train.path:
        from cda.data import load_table, to_records

        records = to_records(load_table(DataConfig(path=train.path, format=train.format, split=train.split)), config.task, on_invalid="skip")
        if not records:
            raise ValueError(f"classifier.train.path {train.path!r} has no usable rows for task {config.task.name!r}")
    elif train_records:
        records = list(train_records)
    else:
        raise ValueError(
            "No classifier to use: set classifier.path to a trained classifier folder, or give training data "
            "(classifier.train.path, or input data to train on)"
        )
    seed = config.seed
    key = cache.key("classifier", training_key(training_records(records, config, seed), config, seed))
    with cache.lock(key):  # another run training the same classifier: wait for it, then load its result
        folder = cache.folder(key)
        if folder is not None:
            log.info("Loading the trained classifier from the cache: %s", folder)
            clf = load_classifier(folder, config)
            clf.origin = "cache"
            return clf
        clf = train_classifier(records, config, seed)
        if cache.enabled:
            staging = cache.staging_folder(key)
            clf.save(staging)
            cache.commit_folder(staging)
    return clf
