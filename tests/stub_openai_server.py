"""A misbehaving OpenAI-compatible server for the bad-input tests, on 127.0.0.1 only.

    python tests/stub_openai_server.py --port 8123 --mode html

Modes (what ``/v1/models`` and ``/v1/chat/completions`` answer):

* ``garbage``: models listed; completions whose text is chatter, not an answer
* ``html``: an HTML page with status 200 for everything
* ``error500``: models listed; completions answer HTTP 500
* ``models500``: ``/v1/models`` answers HTTP 500
* ``empty``: models listed; completions with no choices
* ``hang``: models listed; completions never answer (the connection stays open)

It stops by itself after ``--lifetime`` seconds (tests also stop it by PID).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "stub-model"


def completion(texts: list[str]) -> dict:
    return {
        "id": "stub", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"} for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    mode = "garbage"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.mode == "html":
            self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
        elif self.mode == "models500":
            self._send(500, b'{"error": "internal"}')
        else:
            self._send(200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode())

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        n = int(body.get("n") or 1)
        if self.mode == "html":
            self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
        elif self.mode == "error500":
            self._send(500, b'{"error": {"message": "internal error"}}')
        elif self.mode == "empty":
            self._send(200, json.dumps(completion([])).encode())
        elif self.mode == "hang":
            time.sleep(3600)
        else:
            self._send(200, json.dumps(completion(["I am sorry, as an AI I cannot help with that."] * n)).encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", required=True, choices=["garbage", "html", "error500", "models500", "empty", "hang"])
    parser.add_argument("--lifetime", type=float, default=300)
    args = parser.parse_args()
    Handler.mode = args.mode
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Timer(args.lifetime, server.shutdown).start()
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
