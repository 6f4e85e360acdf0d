"""cda review against a fake Label Studio on 127.0.0.1: push (no duplicate tasks), pull, the CLI,
errors a user can cause, retries, and the token kept out of every output.

The fake serves the endpoints a round uses with the shapes Label Studio 1.23 answers with;
the annotations it hands back come from the saved real export (``test_review_export.json``).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from typer.testing import CliRunner

from cda.cli import app
from cda.pipeline import Components
from cda.review.client import LabelStudioClient, resolve_token
from cda.review.errors import LabelStudioError, ReviewError
from cda.review.labeling import label_config
from cda.review.rounds import pull, push
from cda.review.settings import LabelStudioSettings, load_or_create_credentials
from tests.build_outputs import write_tiny_build
from tests.fakes import FakeClassifier

TOKEN = "f" * 40
EXPORT = Path(__file__).with_name("test_review_export.json")


class FakeLabelStudio:
    """Projects, tasks and annotations in memory, behind Label Studio's REST paths."""

    def __init__(self) -> None:
        self.projects: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.exports: set[int] = set()
        self.fail: list[int] = []  # statuses to answer the next requests with
        self.log: list[tuple[str, str]] = []
        self._ids = iter(range(1, 10**6))

    def next_id(self) -> int:
        return next(self._ids)

    def handle(self, method: str, path: str, query: dict, body) -> tuple[int, object]:
        if self.fail:
            return self.fail.pop(0), {"detail": "busy"}
        if path == "/api/current-user/whoami":
            return 200, {"id": 1, "email": "reviewer@example.org"}
        if path == "/api/projects" and method == "GET":
            found = [p for p in self.projects.values() if "title" not in query or query["title"] in p["title"]]
            return 200, {"count": len(found), "next": None, "results": found}
        if path == "/api/projects/validate/":
            return (204, None) if "<View>" in body["label_config"] else (400, {"label_config": ["bad"]})
        if path == "/api/projects" and method == "POST":
            if len(body["title"]) > 50:
                return 400, {"validation_errors": {"title": ["Ensure this field has no more than 50 characters."]}}
            project = {"id": self.next_id(), **body}
            self.projects[project["id"]] = project
            return 201, project
        if m := re.fullmatch(r"/api/projects/(\d+)", path):
            project = self.projects.get(int(m[1]))
            if project is None:
                return 404, {"detail": "Not found."}
            if method == "PATCH":
                project.update(body)
            if method == "DELETE":
                del self.projects[int(m[1])]
                return 204, None
            return 200, project
        if path == "/api/tasks":
            tasks = [t for t in self.tasks.values() if t["project"] == int(query["project"])]
            size, page = int(query.get("page_size", 100)), int(query.get("page", 1))
            if (page - 1) * size >= len(tasks) > 0:
                return 404, {"detail": "Invalid page."}
            page_tasks = tasks[(page - 1) * size : page * size]
            return 200, {"total": len(tasks), "tasks": [{**t, "total_annotations": len(t["annotations"])} for t in page_tasks]}
        if m := re.fullmatch(r"/api/projects/(\d+)/import", path):
            for task in body:
                tid = self.next_id()
                self.tasks[tid] = {"id": tid, "project": int(m[1]), "data": task["data"], "annotations": [],
                                   "predictions": task.get("predictions", [])}  # fmt: skip
            return 201, {"task_count": len(body), "annotation_count": 0, "prediction_count": len(body)}
        if m := re.fullmatch(r"/api/tasks/(\d+)/annotations/", path):
            annotation = {"id": self.next_id(), "completed_by": {"id": 1, "email": "reviewer@example.org"},
                          "was_cancelled": False, "updated_at": "2026-01-01T00:00:00Z", **body}  # fmt: skip
            self.tasks[int(m[1])]["annotations"].append(annotation)
            return 201, annotation
        if m := re.fullmatch(r"/api/projects/(\d+)/exports", path):
            eid = self.next_id()
            self.exports.add(eid)
            return 201, {"id": eid, "status": "completed"}
        if m := re.fullmatch(r"/api/projects/(\d+)/exports/(\d+)/download", path):
            return 200, [t for t in self.tasks.values() if t["project"] == int(m[1])]
        if m := re.fullmatch(r"/api/projects/(\d+)/exports/(\d+)", path):
            self.exports.discard(int(m[2]))
            return 204, None
        return 404, {"detail": f"no route {method} {path}"}


@pytest.fixture
def fake():
    state = FakeLabelStudio()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            state.log.append((method, url.path))
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                return self._answer(401, {"detail": "Invalid token."})
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self._answer(*state.handle(method, url.path, query, body))

        def _answer(self, status: int, payload) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PATCH(self):
            self._serve("PATCH")

        def do_DELETE(self):
            self._serve("DELETE")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def build(tmp_path):
    return write_tiny_build(tmp_path / "build")


@pytest.fixture
def client(fake):
    return LabelStudioClient(fake.url, TOKEN)


def _annotate_from_saved_export(fake: FakeLabelStudio) -> None:
    saved = {t["data"]["candidate_id"]: t["annotations"] for t in json.loads(EXPORT.read_text(encoding="utf-8"))}
    for task in fake.tasks.values():
        task["annotations"] = saved.get(task["data"]["candidate_id"], [])


def test_push_creates_the_project_once_and_never_duplicates_tasks(fake, client, build):
    first = push(build, which="all", limit=3, client=client)
    assert (first.created, first.already_there, first.chosen, first.without_text) == (3, 0, 4, 1)
    project = fake.projects[first.project_id]
    assert project["label_config"] == label_config() and project["title"] == first.title and project["show_instruction"]
    second = push(build, which="all", client=client)
    assert (second.project_id, second.created, second.already_there) == (first.project_id, 1, 3)
    third = push(build, which="all", client=client)
    assert third.created == 0 and len(fake.tasks) == 4 and len(fake.projects) == 1
    ids = [t["data"]["candidate_id"] for t in fake.tasks.values()]
    assert len(set(ids)) == 4
    assert first.project_url == f"{fake.url}/projects/{first.project_id}/data"


def test_push_accepted_only(fake, client, build):
    result = push(build, which="accepted", client=client)
    assert result.created == 2 and {t["data"]["filter"] for t in fake.tasks.values()} == {"selected"}


def test_pull_writes_the_reviewed_folder(fake, client, build):
    push(build, client=client)
    _annotate_from_saved_export(fake)
    result = pull(build, client=client, components=Components(classifier=FakeClassifier()))
    assert result.output_dir == build / "review"
    assert result.summary["decisions"] == {"accepted": 1, "corrected": 1, "rejected": 1, "pending": 1}
    assert result.summary["project"] == {"url": fake.url, "id": result.project_id, "tasks": 4}
    assert sorted(p.name for p in result.output_dir.iterdir()) == [
        "audit", "config.yaml", "dataset", "decisions.jsonl", "reviewed_pairs.tsv", "summary.json"]
    lines = [json.loads(x) for x in (result.output_dir / "decisions.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["rejected", "accepted", "corrected", "pending"]
    assert lines[1]["in_dataset"] and lines[1]["filter"]["drop_reason"] == "label"
    assert lines[2]["recheck"]["passed"] is True
    assert not fake.exports  # the snapshot was deleted after download
    # A second pull replaces the folder whole.
    again = pull(build, client=client, components=Components(classifier=FakeClassifier()))
    assert again.output_dir == result.output_dir and len(list(build.parent.glob(".review*"))) == 0


def test_pull_without_a_project_says_push_first(fake, client, build):
    with pytest.raises(ReviewError, match=r"push first \(`cda review push BUILD_DIR`\) or pass --project ID"):
        pull(build, client=client)
    with pytest.raises(LabelStudioError, match="answered 404"):
        pull(build, project=99, client=client)


def test_retries_a_busy_server(fake, client):
    fake.fail = [503, 503]
    assert client.whoami()["email"] == "reviewer@example.org"
    fake.fail = [503] * 10
    with pytest.raises(LabelStudioError):
        client.whoami()


def test_refused_token_and_unreachable_server(fake, tmp_path):
    with pytest.raises(LabelStudioError, match="refused the API token") as e:
        LabelStudioClient(fake.url, "wrong-token" * 4).whoami()
    assert "wrong-token" not in str(e.value)
    with pytest.raises(LabelStudioError, match="not reachable at http://127.0.0.1:9: start it with `cda review serve`"):
        LabelStudioClient("http://127.0.0.1:9", TOKEN, retries=0).whoami()


def test_token_from_env_or_local_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    settings = LabelStudioSettings(home=tmp_path)
    with pytest.raises(LabelStudioError, match="No Label Studio API token for http://127.0.0.1:8080"):
        resolve_token("http://127.0.0.1:8080", settings=settings)
    created = load_or_create_credentials(settings)
    assert resolve_token("http://127.0.0.1:8080", settings=settings) == created.token.get_secret_value()
    # The local token is never sent to another machine.
    with pytest.raises(LabelStudioError, match="none in the environment variable LABEL_STUDIO_API_KEY"):
        resolve_token("https://labels.example.org", settings=settings)
    monkeypatch.setenv("MY_TOKEN", "abc")
    assert resolve_token("https://labels.example.org", "MY_TOKEN", settings=settings) == "abc"


runner = CliRunner()


def _cli(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def test_cli_round_trip_keeps_the_token_out(fake, build, monkeypatch):
    monkeypatch.setenv("MY_LS_TOKEN", TOKEN)
    pushed = _cli("review", "push", str(build), "--url", fake.url, "--token-env", "MY_LS_TOKEN", "--which", "all")
    assert pushed.exit_code == 0, pushed.output
    assert "Pushed 4 new candidate(s)" in pushed.output and f"{fake.url}/projects/" in pushed.output
    _annotate_from_saved_export(fake)
    # A corrected text is rechecked with the build's classifier: this build has none, so skip the recheck here.
    pulled = _cli("review", "pull", str(build), "--url", fake.url, "--token-env", "MY_LS_TOKEN", "--no-recheck")
    assert pulled.exit_code == 0, pulled.output
    assert "1 accepted, 1 corrected, 1 rejected, 1 pending" in pulled.output and "filter vs reviewers" in pulled.output
    assert TOKEN not in pushed.output + pulled.output
    for path in (build / "review").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "args, message",
    [
        (["push", "{missing}"], "No such folder"),
        (["push", "{build}", "--which", "some"], "--which 'some' is not allowed; use one of accepted, dropped, all"),
        (["push", "{build}", "--limit", "0"], "--limit must be at least 1"),
        (["push", "{build}", "--url", "http://127.0.0.1:9"], "Label Studio is not reachable at http://127.0.0.1:9"),
        (["pull", "{noaudit}"], "has no audit/ split"),
    ],
)
def test_cli_bad_input_is_one_line(args, message, build, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    noaudit = write_tiny_build(tmp_path / "noaudit")
    shutil.rmtree(noaudit / "audit")
    paths = {"missing": str(tmp_path / "missing"), "build": str(build), "noaudit": str(noaudit)}
    result = _cli("review", *[a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("Error:") and message in " ".join(result.output.split())
