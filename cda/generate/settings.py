"""The settings each built-in generator backend owns (``generate.backend: {name: ..., ...}``).

:class:`VLLMSettings` is the one description of a vLLM engine: the in-process backend,
``cda serve`` and the test server all read it. Nothing here imports a backend.

Examples:
    >>> VLLMSettings(name="vllm").max_model_len
    2048
    >>> sorted(set(OpenAISettings.model_fields) - {"name"})[:3]
    ['api_key_env', 'base_url', 'concurrency']
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cda.registry import ComponentSettings


class TransformersSettings(ComponentSettings):
    """``generate.backend: transformers``: the model runs here with transformers (no settings of its own;
    ``generate.batch_size`` prompts go through one forward pass)."""


class VLLMSettings(ComponentSettings):
    """``generate.backend: vllm``: an in-process vLLM engine; also what ``cda serve`` starts."""

    # auto: bfloat16 on GPU and on CPUs with native bf16 (AVX512-BF16/AMX), else float32
    # (emulated bf16 on an AVX2-only CPU is ~4x slower than float32).
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # Context length the engine reserves per sequence (prompt + output).
    max_model_len: int = Field(default=2048, ge=64)
    # None: eager on CPU (compiling costs more than a short run gains), CUDA graphs on GPU.
    enforce_eager: bool | None = None
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    # KV cache size; None: 1 GiB on CPU (vLLM would otherwise reserve most of the RAM),
    # gpu_memory_utilization decides on GPU.
    kv_cache_gb: float | None = Field(default=None, gt=0)
    # Merge generate.lora_path into a copy of the weights (made once) instead of vLLM's LoRA
    # kernels; None: merge on CPU (where the LoRA path is several times slower), not on GPU.
    merge_lora: bool | None = None


class AutoSettings(VLLMSettings):
    """``generate.backend: auto``: vLLM when it is installed (with these engine settings), else transformers."""


class OpenAISettings(ComponentSettings):
    """``generate.backend: openai``: any OpenAI-compatible server, e.g. ``cda serve`` / ``vllm serve``."""

    # The server's API root; None: http://127.0.0.1:8000/v1.
    base_url: str | None = None
    # Environment variable holding the API key (the key itself never goes into a config).
    api_key_env: str = "OPENAI_API_KEY"
    # Requests in flight at once.
    concurrency: int = Field(default=16, ge=1)
    timeout_s: float = Field(default=120, gt=0)
    # Retries per request (the openai client's own, with exponential backoff).
    max_retries: int = Field(default=3, ge=0)
    # How long to wait for the server's /v1/models before failing the run.
    health_timeout_s: float = Field(default=15, gt=0)
    # A request group with no answer at all in this time fails (a hung server), and so do later
    # groups, at once: the run ends within about a minute with the rows kept and the reason.
    first_response_timeout_s: float = Field(default=60, gt=0)
