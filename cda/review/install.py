"""Install Label Studio into a virtualenv of its own, once per pinned version.

``python -m venv <home>/venv-<version>`` then ``pip install label-studio==<version>``
(about 1 GB). A marker file written last says the install finished, so an interrupted
install is redone from scratch; a file lock keeps two processes from installing at once.

Examples:
    >>> from cda.review.settings import LabelStudioSettings
    >>> install_commands(LabelStudioSettings(home="/tmp/ls"))[1][-1]
    'label-studio==1.23.2'
    >>> ensure_installed(LabelStudioSettings())  # doctest: +SKIP
    PosixPath('/root/.cache/cda/label-studio/venv-1.23.2')
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from cda.review.errors import LabelStudioError
from cda.review.settings import LabelStudioSettings

log = logging.getLogger(__name__)

MARKER = ".cda-installed"


def label_studio_executable(venv: Path) -> Path:
    """The ``label-studio`` command of a virtualenv."""
    return venv / "bin" / "label-studio"


def is_installed(settings: LabelStudioSettings) -> bool:
    """Whether ``settings.venv`` holds a finished install of ``settings.version``."""
    marker = settings.venv / MARKER
    return (
        marker.is_file()
        and marker.read_text(encoding="utf-8").strip() == settings.version
        and label_studio_executable(settings.venv).is_file()
    )


def install_commands(settings: LabelStudioSettings, python: str = sys.executable) -> list[list[str]]:
    """The commands that make the virtualenv and install the pinned release into it."""
    venv_python = str(settings.venv / "bin" / "python")
    return [
        [python, "-m", "venv", str(settings.venv)],
        [venv_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"label-studio=={settings.version}"],
    ]


def ensure_installed(settings: LabelStudioSettings) -> Path:
    """The virtualenv with Label Studio ``settings.version``: reused, or installed now (~1.5 min).

    pip's output goes to ``<home>/install.log``.

    Raises:
        LabelStudioError: making the virtualenv or ``pip install`` failed or ran past
            ``settings.install_timeout_s`` (the message ends with the log's last lines).
    """
    settings.root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(settings.root / f".install-{settings.version}.lock")):
        if is_installed(settings):
            return settings.venv
        if settings.venv.exists():  # an interrupted install: start over
            shutil.rmtree(settings.venv)
        log_path = settings.root / "install.log"
        start = time.perf_counter()
        log.info("installing Label Studio %s into %s (about 1 GB, 1-3 minutes)", settings.version, settings.venv)
        with log_path.open("w", encoding="utf-8") as out:
            for cmd in install_commands(settings):
                out.write("$ " + " ".join(cmd) + "\n")
                out.flush()
                try:
                    done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False,
                                          timeout=settings.install_timeout_s)
                except subprocess.TimeoutExpired:
                    raise LabelStudioError(
                        f"Installing Label Studio {settings.version} took over {settings.install_timeout_s:g}s; "
                        f"see {log_path}"
                    ) from None
                if done.returncode != 0:
                    shutil.rmtree(settings.venv, ignore_errors=True)
                    raise LabelStudioError(
                        f"`{' '.join(cmd[-3:])}` failed with code {done.returncode} (log: {log_path}): {_tail(log_path)}"
                    )
        (settings.venv / MARKER).write_text(settings.version + "\n", encoding="utf-8")
        log.info("installed Label Studio %s in %.0fs", settings.version, time.perf_counter() - start)
        return settings.venv


def _tail(path: Path, lines: int = 3) -> str:
    kept = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return " | ".join(kept[-lines:])
