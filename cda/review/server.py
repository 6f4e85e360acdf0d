"""Start Label Studio on 127.0.0.1 in its own process (group), wait for ``/health``, stop it.

The server gets a clean environment: the login and token come from
``LABEL_STUDIO_USERNAME`` / ``LABEL_STUDIO_PASSWORD`` / ``LABEL_STUDIO_USER_TOKEN`` (the
token works as ``Authorization: Token …`` with ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``),
``LATEST_VERSION_CHECK=false`` and ``COLLECT_ANALYTICS=false`` keep it off the network, and
sign-up without an invitation link is off. Nothing else of this process's environment
(other tokens, a stray ``HOST`` or ``PORT``, which Label Studio would read) reaches it.

Examples:
    >>> from cda.review.settings import LabelStudioSettings
    >>> cmd = server_command(LabelStudioSettings(home="/tmp/ls", port=8081))
    >>> cmd[1:3], cmd[cmd.index("--internal-host") + 1], cmd[cmd.index("--port") + 1]
    (['start', '--no-browser'], '127.0.0.1', '8081')
    >>> with start_label_studio(LabelStudioSettings(port=8081)) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:8081
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cda.review.errors import LabelStudioError
from cda.review.install import ensure_installed, is_installed, label_studio_executable
from cda.review.settings import LOOPBACK, Credentials, LabelStudioSettings, load_or_create_credentials

log = logging.getLogger(__name__)

# Variables of this process the server may see; everything else is left out.
_PASSED_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def server_command(settings: LabelStudioSettings) -> list[str]:
    """The ``label-studio start`` command line for ``settings``."""
    return [
        str(label_studio_executable(settings.venv)), "start", "--no-browser",
        "--internal-host", settings.host,
        "--port", str(settings.port),
        "--data-dir", str(settings.data),
        "--log-level", "WARNING",
    ]  # fmt: skip


def server_env(settings: LabelStudioSettings, credentials: Credentials) -> dict[str, str]:
    """The server's whole environment: a few of ours, its data folder, login and token, and no network calls.

    Examples:
        >>> from cda.review.settings import LabelStudioSettings
        >>> env = server_env(LabelStudioSettings(home="/tmp/ls"), Credentials(password="p", token="t" * 40))
        >>> env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"], env["LATEST_VERSION_CHECK"], env["LABEL_STUDIO_USERNAME"]
        ('true', 'false', 'cda@localhost')
    """
    env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(settings.data),
        "LABEL_STUDIO_USERNAME": credentials.username,
        "LABEL_STUDIO_PASSWORD": credentials.password.get_secret_value(),
        "LABEL_STUDIO_USER_TOKEN": credentials.token.get_secret_value(),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    return env


@dataclass
class LabelStudioServer:
    """A running Label Studio process, leader of its own process group.

    Use :func:`start_label_studio` to get one; ``with start_label_studio() as server:`` stops
    it at the end.
    """

    process: subprocess.Popen
    url: str
    credentials_file: Path
    log_path: Path
    _log: IO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def wait_until_healthy(self, timeout_s: float) -> None:
        """Poll ``/health`` until it answers 200.

        Raises:
            LabelStudioError: the server exited, or did not answer within ``timeout_s`` (it is stopped then).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                raise LabelStudioError(
                    f"Label Studio exited with code {self.process.returncode} before it was ready; "
                    f"last lines of its log ({self.log_path}):\n{self.log_tail()}"
                )
            if health_ok(self.url):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise LabelStudioError(
                    f"Label Studio did not answer {self.url}/health within {timeout_s:g}s; stopped it. "
                    f"Last lines of its log ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after ``grace_s``."""
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("Label Studio %d ignored SIGTERM for %gs; killing it", self.process.pid, grace_s)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LabelStudioServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def health_ok(url: str, timeout_s: float = 5.0) -> bool:
    """Whether ``<url>/health`` answers 200 now.

    Examples:
        >>> health_ok("http://127.0.0.1:9", timeout_s=0.5)
        False
    """
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the server binds: a port left in TIME_WAIT by a stopped server is free, a listening one is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise LabelStudioError(
                f"Cannot listen on {host}:{port} ({e.strerror}): another server uses the port; pass another --port"
            ) from None


def start_label_studio(
    settings: LabelStudioSettings | None = None, *, install: bool = True, log_file: str | Path | None = None
) -> LabelStudioServer:
    """Install Label Studio if needed, start it and wait until it is healthy.

    Args:
        settings: version, host, port and folders (default: :class:`LabelStudioSettings`).
        install: install the pinned version when it is missing (else that is an error).
        log_file: the server's output (default ``<home>/server.log``).

    Returns:
        The running server; call :meth:`LabelStudioServer.stop` (or use it in a ``with``).

    Raises:
        LabelStudioError: not installed (with ``install=False``), the install failed, the port
            is taken, or the server exited or did not become healthy in time.
    """
    settings = settings or LabelStudioSettings()
    if install:
        ensure_installed(settings)
    elif not is_installed(settings):
        raise LabelStudioError(f"Label Studio {settings.version} is not installed in {settings.venv}: run `cda review serve`")
    if settings.host not in LOOPBACK:
        log.warning("Label Studio will listen on %s: other machines can reach it", settings.host)
    _check_port_free(settings.host, settings.port)
    settings.data.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = load_or_create_credentials(settings)
    log_path = Path(log_file) if log_file is not None else settings.log_file
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("ab")
    cmd = server_command(settings)
    log.info("starting Label Studio: %s", " ".join(cmd))
    process = subprocess.Popen(
        cmd, env=server_env(settings, credentials), stdout=handle, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True, cwd=settings.root,
    )  # fmt: skip
    server = LabelStudioServer(process, settings.url, settings.credentials_file, log_path, handle)
    try:
        server.wait_until_healthy(settings.start_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def serve(settings: LabelStudioSettings | None = None, pid_file: str | Path | None = None, echo=print) -> int:
    """Start Label Studio, print its URL and how to log in, block until Ctrl-C / SIGTERM or until it exits.

    Returns:
        0 after a requested stop, else the server's exit code.
    """
    settings = settings or LabelStudioSettings()
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server = None
    try:
        if not is_installed(settings):
            echo(f"Installing Label Studio {settings.version} into {settings.venv} (once; about 1 GB, 1-3 minutes)...")
        server = start_label_studio(settings)
        if pid_file is not None:
            Path(pid_file).write_text(f"{server.pid}\n", encoding="utf-8")
        echo(f"Label Studio {settings.version} ready: {server.url} (log: {server.log_path}). Ctrl-C stops it.")
        echo(f"Log in with the username and password in {server.credentials_file} (readable only by you); "
             "its API token is there too, and `cda review push/pull` use it.")  # fmt: skip
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
