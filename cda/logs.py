"""Where log lines go: the terminal shows cda's own progress, a file keeps everything.

By default the terminal gets cda's INFO lines and every library's warnings and errors;
the engines' chatter (vLLM's start-up report, transformers' weight-loading bars, datasets'
progress bars) goes to the log file only. vLLM configures its logging from a file named in
``VLLM_LOGGING_CONFIG_PATH``, read when vLLM is imported (also by its engine process), so
the file is written and the variable set before any engine starts. ``verbose`` shows
everything on the terminal, as the libraries print it.

Examples:
    >>> import io
    >>> before = logging.getLogger().handlers[:], logging.getLogger().level
    >>> terminal = io.StringIO()
    >>> setup_logging(verbose=False, log_file=None, console=Console(file=terminal, width=100))
    >>> logging.getLogger("cda.explain").info("Explained 200 records")
    >>> logging.getLogger("transformers.modeling_utils").info("Loading weights")  # chatter: not shown
    >>> "Explained 200 records" in terminal.getvalue(), "Loading weights" in terminal.getvalue()
    (True, False)
    >>> logging.basicConfig(handlers=before[0], level=before[1], force=True)  # the logging as it was
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.logging import RichHandler

# Libraries whose INFO lines are engine chatter: they reach the terminal from WARNING up.
_LIBRARIES = ("httpx", "urllib3", "filelock", "datasets", "transformers", "accelerate", "peft", "vllm", "huggingface_hub",
              "ray")


def vllm_logging_config(log_file: Path) -> Path:
    """A ``logging.config.dictConfig`` file for vLLM: everything to ``log_file``, errors to stderr."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain", "level": "DEBUG"},
            "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain", "level": "ERROR"},
        },
        "loggers": {"vllm": {"handlers": ["file", "stderr"], "level": "INFO", "propagate": False}},
    }
    fd, path = tempfile.mkstemp(prefix="cda-vllm-logging-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return Path(path)


# Where engines' own output goes (:func:`engine_output`): the log file, unless verbose.
_ENGINE_LOG: Path | None = None


def setup_logging(verbose: bool, log_file: Path | None, console: Console | None = None) -> None:
    """Terminal handler (rich) and, with ``log_file``, a file handler that keeps every line.

    Args:
        verbose: DEBUG on the terminal and the libraries as loud as they are.
        log_file: where the engines' output goes (created with its folder).
        console: the rich console to print to (default: stderr).
    """
    terminal = RichHandler(console=console or Console(stderr=True), show_path=False)
    terminal.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers: list[logging.Handler] = [terminal]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=handlers, force=True)  # fmt: skip
    global _ENGINE_LOG
    _ENGINE_LOG = None if verbose else log_file
    if verbose:
        return
    terminal.addFilter(_quiet_libraries)
    if log_file is not None:
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(vllm_logging_config(log_file))
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")
    for name in ("httpx", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Terminal filter: a library's record shows from WARNING up, cda's from INFO."""
    return record.levelno >= logging.WARNING or not record.name.startswith(_LIBRARIES)


@contextlib.contextmanager
def engine_output() -> Iterator[None]:
    """Inside: file descriptors 1 and 2 write to the log file, so what an engine prints itself
    (vLLM's engine process inherits them: its warnings, C++ messages and weight-loading bars)
    goes there instead of the terminal. Without a log file (``--verbose``, or a library caller
    who did not call :func:`setup_logging`), nothing changes.

    Examples:
        >>> with engine_output():  # no log file here: a no-op
        ...     pass
    """
    target = _ENGINE_LOG
    if target is None:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(target, "ab") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def close_log_files() -> None:
    """Close and detach the root logger's file handlers (before their file is moved); engines'
    output is no longer redirected."""
    global _ENGINE_LOG
    _ENGINE_LOG = None
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
