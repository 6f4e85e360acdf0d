"""A server cda starts as a child process: the vLLM server (:mod:`cda.serve`) and Label Studio
(:mod:`cda.review.server`) alike.

The child leads its own process group (``start_new_session=True``), so stopping it also stops
the processes it spawned (vLLM's engine). :meth:`ServerProcess.wait_until_healthy` polls its
health URL; :meth:`ServerProcess.stop` sends SIGTERM to the group, then SIGKILL.

Examples:
    >>> health_ok("http://127.0.0.1:9/health", timeout_s=0.5)
    False
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, ClassVar, TypeVar

log = logging.getLogger(__name__)
S = TypeVar("S", bound="ServerProcess")


def health_ok(url: str, timeout_s: float = 5.0) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@dataclass(kw_only=True)
class ServerProcess:
    """A running server child process, leader of its own process group.

    Subclasses name the server (:attr:`what`) and the error :meth:`wait_until_healthy` raises.
    """

    what: ClassVar[str] = "The server"
    error: ClassVar[type[Exception]] = RuntimeError

    process: subprocess.Popen
    health_url: str
    log_path: Path | None = None
    _log: IO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log file (``""`` without one)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def _with_log(self, message: str) -> str:
        return message + (f" Last lines of its log ({self.log_path}):\n{self.log_tail()}" if self.log_path else "")

    def wait_until_healthy(self, timeout_s: float, poll_s: float = 1.0) -> None:
        """Poll the health URL until it answers 200.

        Raises:
            Exception: :attr:`error`, when the server exited, or did not answer within
                ``timeout_s`` (it is stopped then).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                raise self.error(self._with_log(f"{self.what} exited with code {self.process.returncode} before it was ready."))
            if health_ok(self.health_url):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise self.error(self._with_log(f"{self.what} did not answer {self.health_url} within {timeout_s:g}s; stopped it."))
            time.sleep(poll_s)

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
                log.warning("%s (pid %d) ignored SIGTERM for %gs; killing it", self.what, self.process.pid, grace_s)
        try:  # child processes may outlive the leader: end the whole group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_until_stopped(start: Callable[[], S], on_ready: Callable[[S], None], pid_file: str | Path | None = None) -> int:
    """Start a server, announce it, block until Ctrl-C / SIGTERM or until it exits; stop it either way.

    ``pid_file`` receives the server's process id, which is also its process group id, so a
    supervisor that has to SIGKILL this process can still end the server.

    Returns:
        0 after a requested stop, else the server's exit code.
    """
    # SIGTERM (a CI trap's `kill PID`) must stop the child too, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server = None
    try:
        server = start()
        if pid_file is not None:
            Path(pid_file).write_text(f"{server.pid}\n", encoding="utf-8")
        on_ready(server)
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
