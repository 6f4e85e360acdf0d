"""The real Label Studio: install it (or reuse the install), start it on 127.0.0.1 with a fresh
data folder, push the tiny build's candidates, post annotations through its API as a reviewer's
browser would, pull, check the reviewed dataset, and stop the server by its process group.

The virtualenv is reused from ``$CDA_TEST_LABEL_STUDIO_HOME`` (default
``~/.cache/cda/label-studio``) and installed there when missing (~1.5 min, ~1 GB, needs PyPI);
a cold start migrates a new database (~40 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from cda.pipeline import Components
from cda.review.client import LabelStudioClient
from cda.review.errors import LabelStudioError
from cda.review.labeling import ACCEPT, CORRECTION, DECISION, REASONS, REJECT
from cda.review.rounds import pull, push
from cda.review.server import start_label_studio
from cda.review.settings import LabelStudioSettings, load_credentials
from tests.build_outputs import write_tiny_build
from tests.fakes import FakeClassifier

pytestmark = pytest.mark.integration

HOME = Path(os.environ.get("CDA_TEST_LABEL_STUDIO_HOME", Path.home() / ".cache" / "cda" / "label-studio"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    data = tmp_path_factory.mktemp("label-studio-data")
    settings = LabelStudioSettings(home=HOME, data_dir=data, port=_free_port(), start_timeout_s=300)
    server = start_label_studio(settings, log_file=data.parent / "label-studio.log")
    try:
        yield server, settings
    finally:
        pid = server.pid
        server.stop()
        with pytest.raises(ProcessLookupError):  # the whole process group is gone
            os.killpg(pid, 0)


def _result(decision: str, text: str | None = None, reasons: list[str] | None = None) -> list[dict]:
    out = [{"from_name": DECISION, "to_name": "counterfactual", "type": "choices", "value": {"choices": [decision]}}]
    if text is not None:
        out.append({"from_name": CORRECTION, "to_name": "counterfactual", "type": "textarea", "value": {"text": [text]}})
    if reasons:
        out.append({"from_name": REASONS, "to_name": "counterfactual", "type": "choices", "value": {"choices": reasons}})
    return out


def test_round_trip_through_label_studio(label_studio, tmp_path):
    server, settings = label_studio
    token = load_credentials(settings.credentials_file).token.get_secret_value()
    client = LabelStudioClient(server.url, token)
    assert client.version() == settings.version
    with pytest.raises(LabelStudioError, match="refused the API token"):
        LabelStudioClient(server.url, "0" * 40).whoami()

    build = write_tiny_build(tmp_path / "build")
    pushed = push(build, which="all", client=client)
    assert (pushed.created, pushed.without_text) == (4, 1)
    assert push(build, which="all", client=client).created == 0  # a second push adds nothing
    tasks = {t["data"]["candidate_id"]: t for t in client.tasks(pushed.project_id)}
    assert len(tasks) == 4 and all(t["total_predictions"] == 1 for t in tasks.values())

    # As a reviewer: reject the selected candidate of original 0 and accept its dropped sibling,
    # correct the one of original 1, leave original 2's pending.
    by_text = {t["data"]["counterfactual"]: t["id"] for t in tasks.values()}
    client.create_annotation(by_text["It was really good ."], _result(REJECT, reasons=["not minimal"]), lead_time=8.0)
    client.create_annotation(by_text["It was good ."], _result(ACCEPT, "It was good ."), lead_time=5.0)
    client.create_annotation(by_text["A good film ."], _result(ACCEPT, "A bad film ."), lead_time=11.0)

    result = pull(build, client=client, components=Components(classifier=FakeClassifier()))
    s = result.summary
    assert s["decisions"] == {"accepted": 1, "corrected": 1, "rejected": 1, "pending": 1}
    assert s["dataset"]["counterfactuals_by_status"] == {"accepted": 1, "corrected": 1, "pending": 0, "unreviewed": 0}
    rows = result.reviewed.dataset.to_list()[3:]
    assert [(r["Text"], r["Sentiment"], r["cda_review_status"], r["cda_review_rescued"]) for r in rows] == [
        ("It was good .", "Positive", "accepted", True), ("A bad film .", "Negative", "corrected", False)]
    assert rows[0]["cda_review_reviewer"] == "cda@localhost" and rows[1]["cda_review_recheck_passed"] is True
    decisions = [json.loads(x) for x in (result.output_dir / "decisions.jsonl").read_text().splitlines()]
    assert {d["status"]: d["reasons"] for d in decisions}["rejected"] == ["not minimal"]
    assert len((result.output_dir / "reviewed_pairs.tsv").read_text().splitlines()) == 1 + 4

    # The token stays in its 0600 file: not in the server's log, not in the outputs.
    assert token not in server.log_path.read_text(encoding="utf-8", errors="replace")
    for path in result.output_dir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    client.delete_project(pushed.project_id)
