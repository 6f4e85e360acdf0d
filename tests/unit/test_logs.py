"""Engines' own output (file descriptors 1 and 2) goes to the build's log file unless verbose."""

import io
import logging
import os

import pytest
from rich.console import Console

from cda.logs import close_log_files, engine_output, setup_logging


@pytest.fixture
def restore_logging(monkeypatch):
    for name in ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING"):  # setup_logging sets them: undone after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    root = logging.getLogger()
    before = root.handlers[:], root.level
    yield
    close_log_files()
    root.handlers[:], root.level = before


@pytest.mark.parametrize("verbose", [False, True])
def test_engine_output_goes_to_the_log_file_unless_verbose(tmp_path, capfd, restore_logging, verbose):
    log_file = tmp_path / "cda.log"
    setup_logging(verbose=verbose, log_file=log_file, console=Console(file=io.StringIO()))
    with engine_output():
        os.write(1, b"engine stdout\n")
        os.write(2, b"engine stderr\n")
    os.write(1, b"after\n")
    terminal = capfd.readouterr()
    logged = log_file.read_text()
    if verbose:
        assert "engine stdout" in terminal.out and "engine stderr" in terminal.err and "engine" not in logged
    else:
        assert "engine" not in terminal.out + terminal.err
        assert "engine stdout" in logged and "engine stderr" in logged
    assert "after" in terminal.out  # the terminal is back after the block


def test_after_the_log_file_is_closed_nothing_is_redirected(tmp_path, capfd, restore_logging):
    setup_logging(verbose=False, log_file=tmp_path / "cda.log", console=Console(file=io.StringIO()))
    close_log_files()
    with engine_output():
        os.write(1, b"engine stdout\n")
    assert "engine stdout" in capfd.readouterr().out
