"""Starting and stopping Label Studio, with a stand-in ``label-studio`` command (a tiny HTTP
server with ``/health``) in a fake virtualenv: the environment it gets, the wait for health,
a clean stop by process group, ``cda review serve`` and its Ctrl-C / SIGTERM. The real server
is started in tests/integration/test_review_label_studio.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cda.review.errors import LabelStudioError
from cda.review.install import MARKER, install_commands, is_installed
from cda.review.server import health_ok, server_command, start_label_studio
from cda.review.settings import LabelStudioSettings, load_credentials

ROOT = Path(__file__).resolve().parents[2]

FAKE = """#!{python}
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1]
with open(os.path.join(opt("--data-dir"), "env.json"), "w") as f:
    json.dump({{"env": dict(os.environ), "args": args}}, f)
{body}
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{{"status": "UP"}}')
    def log_message(self, *a):
        pass
print("fake label studio up", flush=True)
HTTPServer((opt("--internal-host"), int(opt("--port"))), Health).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_install(home: Path, body: str = "") -> LabelStudioSettings:
    settings = LabelStudioSettings(home=home, port=_free_port(), start_timeout_s=30)
    exe = settings.venv / "bin" / "label-studio"
    exe.parent.mkdir(parents=True)
    exe.write_text(FAKE.format(python=sys.executable, body=body), encoding="utf-8")
    exe.chmod(0o755)
    (settings.venv / MARKER).write_text(settings.version + "\n", encoding="utf-8")
    return settings


def test_start_wait_and_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("HOST", "evil.example.org")  # Label Studio would read these: they must not reach it
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    settings = fake_install(tmp_path)
    assert is_installed(settings)
    with start_label_studio(settings, install=False) as server:
        assert server.alive() and health_ok(server.url) and server.url == settings.url
        seen = json.loads((settings.data / "env.json").read_text())
        env, args = seen["env"], seen["args"]
        token = load_credentials(settings.credentials_file).token.get_secret_value()
        assert env["LABEL_STUDIO_USER_TOKEN"] == token and env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
        assert env["LATEST_VERSION_CHECK"] == "false" and env["LABEL_STUDIO_BASE_DATA_DIR"] == str(settings.data)
        assert "HOST" not in env and "OPENAI_API_KEY" not in env
        assert args[args.index("--internal-host") + 1] == "127.0.0.1"
        pid = server.pid
    assert not server.alive()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not health_ok(settings.url, timeout_s=1)
    assert token not in server.log_path.read_text()
    assert oct(settings.data.stat().st_mode & 0o777) == "0o700"


def test_a_taken_port_is_refused(tmp_path):
    settings = fake_install(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", settings.port))
        s.listen()
        with pytest.raises(LabelStudioError, match=f"Cannot listen on 127.0.0.1:{settings.port}.*pass another --port"):
            start_label_studio(settings, install=False)


def test_a_server_that_exits_says_why(tmp_path):
    settings = fake_install(tmp_path, body='print("Error: database is locked", flush=True); sys.exit(3)')
    with pytest.raises(LabelStudioError, match="exited with code 3 before it was ready") as e:
        start_label_studio(settings, install=False)
    assert "database is locked" in str(e.value)


def test_not_installed(tmp_path):
    settings = LabelStudioSettings(home=tmp_path)
    settings.venv.mkdir(parents=True)  # an interrupted install: no marker
    assert not is_installed(settings)
    with pytest.raises(LabelStudioError, match="is not installed"):
        start_label_studio(settings, install=False)
    assert install_commands(settings)[0][1:3] == ["-m", "venv"]
    assert server_command(settings)[0] == str(settings.venv / "bin" / "label-studio")


def test_cda_review_serve_prints_how_to_log_in_and_stops_on_sigterm(tmp_path):
    settings = fake_install(tmp_path / "ls")
    pid_file = tmp_path / "ls.pid"
    env = {**os.environ, "CDA_CACHE_DIR": str(tmp_path / "cache")}
    cli = subprocess.Popen(
        [sys.executable, "-m", "cda", "review", "serve", "--home", str(settings.root), "--port", str(settings.port),
         "--pid-file", str(pid_file)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = cli.stdout.readline()
            lines.append(line)
            if "cda review push/pull" in line or not line:
                break
        out = "".join(lines)
        assert f"ready: {settings.url}" in out and str(settings.credentials_file) in out, out
        server_pid = int(pid_file.read_text())
        assert health_ok(settings.url)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    token = load_credentials(settings.credentials_file).token.get_secret_value()
    assert token not in out
    with pytest.raises(ProcessLookupError):
        os.killpg(server_pid, 0)
