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
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cda.review.errors import LabelStudioError
from cda.review.install import ensure_installed, is_installed, label_studio_executable
from cda.review.settings import LOOPBACK, Credentials, LabelStudioSettings, load_or_create_credentials
from cda.server_process import ServerProcess, run_until_stopped
from cda.server_process import health_ok as process_health_ok

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


@dataclass(kw_only=True)
class LabelStudioServer(ServerProcess):
    """A running Label Studio process, leader of its own process group.

    Use :func:`start_label_studio` to get one; ``with start_label_studio() as server:`` stops
    it at the end.
    """

    what: ClassVar[str] = "Label Studio"
    error: ClassVar[type[Exception]] = LabelStudioError

    url: str
    credentials_file: Path

    def stop(self, grace_s: float = 20.0) -> None:
        super().stop(grace_s)


def health_ok(url: str, timeout_s: float = 5.0) -> bool:
    """Whether ``<url>/health`` answers 200 now.

    Examples:
        >>> health_ok("http://127.0.0.1:9", timeout_s=0.5)
        False
    """
    return process_health_ok(f"{url}/health", timeout_s)


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
    server = LabelStudioServer(process=process, health_url=f"{settings.url}/health", url=settings.url,
                               credentials_file=settings.credentials_file, log_path=log_path, _log=handle)
    try:
        server.wait_until_healthy(settings.start_timeout_s, poll_s=0.5)
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
    if not is_installed(settings):
        echo(f"Installing Label Studio {settings.version} into {settings.venv} (once; about 1 GB, 1-3 minutes)...")

    def announce(server: LabelStudioServer) -> None:
        echo(f"Label Studio {settings.version} ready: {server.url} (log: {server.log_path}). Ctrl-C stops it.")
        echo(f"Log in with the username and password in {server.credentials_file} (readable only by you); "
             "its API token is there too, and `cda review push/pull` use it.")  # fmt: skip

    return run_until_stopped(lambda: start_label_studio(settings), announce, pid_file)


