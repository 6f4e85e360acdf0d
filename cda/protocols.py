"""The small interfaces that backends implement.

Stages depend on these protocols, never on a concrete model class, so a test can pass
a fake and a user can plug in another backend (vLLM engine, OpenAI-compatible server,
transformers) without touching the stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class TokenScore:
    """Attribution of one model token, located by character offsets in a segment."""

    segment: str
    start: int
    end: int
    score: float


@dataclass
class Attribution:
    """Token attributions for one example toward one label.

    ``seen_chars[segment]`` is how many characters of the segment the classifier saw
    (less than the segment's length when it was truncated to the model's maximum).
    """

    label: str
    tokens: list[TokenScore]
    seen_chars: dict[str, int]


@runtime_checkable
class Classifier(Protocol):
    """A sequence classifier over named segments (``{"premise": ..., "hypothesis": ...}``)."""

    labels: list[str]
    name: str

    def predict_proba(self, inputs: list[dict[str, str]]) -> list[dict[str, float]]:
        """Probability of every label, per input."""
        ...

    def attribute(self, inputs: list[dict[str, str]], targets: list[str], method: Any) -> list[Attribution]:
        """Per-token saliency of each input toward its target label; ``method`` is a registered
        attribution method's name or its settings (``explain.method``)."""
        ...


@dataclass
class SamplingSettings:
    """How to sample: ``n`` outputs per prompt, reproducible for a given ``seed``."""

    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 96
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    # A JSON schema the output must follow (backends with structured output honour it).
    json_schema: dict | None = None
    # A regular expression the whole output must match (backends with structured output honour it).
    regex: str | None = None
    # One regular expression per prompt of the call, in order (``None``: unconstrained), instead
    # of ``regex``; only for a generator whose capabilities say ``regex_per_prompt``.
    regexes: list[str | None] | None = None


@dataclass
class Generation:
    """The ``n`` outputs for one prompt, or the error that stopped them."""

    texts: list[str]
    error: str | None = None


@dataclass(frozen=True)
class GeneratorCapabilities:
    """What a generator backend can do beyond :meth:`Generator.generate`.

    Attributes:
        structured_outputs: honours ``SamplingSettings.regex`` / ``json_schema`` (constrained decoding).
        lora: applies a LoRA adapter (``generate.lora_path``).
        prompts_per_call: how many prompts it wants per call (``None``: ``generate.batch_size``).
        server: generation runs on a server; no local model file is needed.
        scores_text: it is also a :class:`LanguageModel` (the fluency check can reuse it).
        regex_per_prompt: honours ``SamplingSettings.regexes`` (a regex per prompt in one call, so
            plans with different answer shapes still batch together).
    """

    structured_outputs: bool = False
    lora: bool = False
    prompts_per_call: int | None = None
    server: bool = False
    scores_text: bool = False
    regex_per_prompt: bool = False


@runtime_checkable
class Generator(Protocol):
    """An LLM that answers chat prompts. Each prompt is the user message's text.

    ``name`` is ``"<engine>:<model>"`` (e.g. ``"transformers:SmolLM2-135M-Instruct"``)
    and is stored on every candidate as provenance. ``load`` readies the model (or checks
    the server) and is called before the first ``generate``; a generator whose outputs all
    come from the cache is never loaded.
    """

    name: str
    capabilities: GeneratorCapabilities

    def load(self) -> None:
        """Load the model or check the server (idempotent); raises a clear error when it cannot."""
        ...

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        """One :class:`Generation` per prompt, in order."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """Scores text fluency."""

    name: str

    def perplexity(self, texts: list[str]) -> list[float]:
        """Per-text perplexity (exp of the mean token negative log-likelihood)."""
        ...
