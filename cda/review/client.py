"""A small client for the parts of Label Studio's REST API a review round uses.

``requests`` with ``urllib3``'s ``Retry`` (connection errors and 502/503/504, with backoff;
a ``POST`` is retried only when it never reached the server). Every failure becomes a
:class:`~cda.review.errors.LabelStudioError` that says what was asked of which server; the
token is never part of a message.

Examples:
    >>> client = LabelStudioClient("http://127.0.0.1:8080", token="0" * 40)
    >>> client.url
    'http://127.0.0.1:8080'
    >>> client.whoami()  # doctest: +SKIP
    {'id': 1, 'email': 'cda@localhost', ...}
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence
from urllib.parse import urlparse

from cda.review.errors import LabelStudioError
from cda.review.settings import DEFAULT_TOKEN_ENV, LOOPBACK, LabelStudioSettings, load_credentials

log = logging.getLogger(__name__)

IMPORT_BATCH = 500
PAGE_SIZE = 500


class _QuietRetries(logging.Filter):
    """urllib3 warns on every retry; the error after the last one says what matters."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying (")


logging.getLogger("urllib3.connectionpool").addFilter(_QuietRetries())


def _requests():
    try:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry
    except ImportError:
        raise LabelStudioError("cda review needs requests: pip install 'cda[review]'") from None
    return requests, HTTPAdapter, Retry


class LabelStudioClient:
    """Projects, tasks, annotations and snapshot exports of one Label Studio server.

    Args:
        url: the server's base URL (``http://127.0.0.1:8080``).
        token: a legacy API token (``Authorization: Token …``).
        timeout_s: per request.
        retries: how often a failed connection (or a 502/503/504) is retried.
    """

    def __init__(self, url: str, token: str, timeout_s: float = 60.0, retries: int = 3) -> None:
        requests, HTTPAdapter, Retry = _requests()
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = token
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries, backoff_factor=0.5,
            status_forcelist=(502, 503, 504), allowed_methods=frozenset({"GET", "PATCH", "DELETE", "HEAD"}),
            raise_on_status=False,
        )  # fmt: skip
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})
        self._requests = requests

    def __repr__(self) -> str:  # never the token
        return f"LabelStudioClient({self.url!r})"

    # ------------------------------------------------------------------ plumbing
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method path`` against the server; the decoded JSON answer (``None`` when empty).

        Raises:
            LabelStudioError: unreachable, token refused (401/403), or any other error status.
        """
        url = f"{self.url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except self._requests.ConnectionError:
            raise LabelStudioError(
                f"Label Studio is not reachable at {self.url}: start it with `cda review serve` or pass --url"
            ) from None
        except self._requests.RequestException as e:
            raise LabelStudioError(f"{method} {url} failed: {self._scrub(str(e))}") from None
        if response.status_code in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {self.url} refused the API token ({response.status_code} on {method} {path}): pass the "
                f"token of a user there in --token-env (a legacy token; LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)"
            )
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio at {self.url} answered {response.status_code} to {method} {path}: "
                f"{self._scrub(response.text[:500])}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(
                f"{method} {url} answered {response.status_code} with no JSON: is {self.url} Label Studio?"
            ) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    # ------------------------------------------------------------------ API
    def whoami(self) -> dict:
        """The user the token belongs to (also checks the server and the token)."""
        return self.request("GET", "/api/current-user/whoami")

    def version(self) -> str:
        return str((self.request("GET", "/api/version") or {}).get("release", "unknown"))

    def projects(self, title: str | None = None) -> list[dict]:
        """Projects (with this exact ``title``, if given)."""
        out: list[dict] = []
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "page_size": 100}
            if title is not None:
                params["title"] = title
            answer = self.request("GET", "/api/projects", params=params)
            out += answer.get("results", [])
            if not answer.get("next"):
                break
            page += 1
        return [p for p in out if title is None or p.get("title") == title]

    def project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{project_id}")

    def validate_label_config(self, label_config: str) -> None:
        self.request("POST", "/api/projects/validate/", json={"label_config": label_config})

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict:
        return self.request("POST", "/api/projects", json={"title": title, "label_config": label_config, **fields})

    def update_project(self, project_id: int, **fields: Any) -> dict:
        return self.request("PATCH", f"/api/projects/{project_id}", json=fields)

    def delete_project(self, project_id: int) -> None:
        self.request("DELETE", f"/api/projects/{project_id}")

    def tasks(self, project_id: int) -> list[dict]:
        """Every task of a project (id, data, annotation counts), page by page."""
        out: list[dict] = []
        page = 1
        while True:
            answer = self.request("GET", "/api/tasks", params={"project": project_id, "page": page, "page_size": PAGE_SIZE})
            batch = answer.get("tasks", [])
            out += batch
            if not batch or len(out) >= int(answer.get("total", 0)):
                return out
            page += 1

    def import_tasks(self, project_id: int, tasks: Sequence[dict]) -> int:
        """Import tasks (with their predictions) in batches; returns how many were created."""
        created = 0
        for start in range(0, len(tasks), IMPORT_BATCH):
            answer = self.request("POST", f"/api/projects/{project_id}/import", json=list(tasks[start : start + IMPORT_BATCH]))
            created += int(answer.get("task_count", 0))
        return created

    def create_annotation(self, task_id: int, result: list[dict], **fields: Any) -> dict:
        """Post an annotation on a task, as a reviewer submitting it in the UI."""
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, **fields})

    def export_snapshot(self, project_id: int) -> list[dict]:
        """Every task with its annotations (reviewers as ``{id, email}``), as a JSON snapshot export.

        The snapshot is deleted from the server after it is downloaded.
        """
        body = {"serialization_options": {"annotations__completed_by": {"only_id": False}}}
        snapshot = self.request("POST", f"/api/projects/{project_id}/exports", json=body)
        export_id = snapshot["id"]
        try:
            if snapshot.get("status") not in (None, "completed"):
                snapshot = self.request("GET", f"/api/projects/{project_id}/exports/{export_id}")
            if snapshot.get("status") not in (None, "completed"):
                raise LabelStudioError(
                    f"The snapshot export {export_id} of project {project_id} is {snapshot.get('status')!r}, not completed"
                )
            return self.request("GET", f"/api/projects/{project_id}/exports/{export_id}/download",
                                params={"exportType": "JSON"})  # fmt: skip
        finally:
            try:
                self.request("DELETE", f"/api/projects/{project_id}/exports/{export_id}")
            except LabelStudioError as e:  # leaving a snapshot file behind is harmless
                log.debug("could not delete export %s: %s", export_id, e)


def resolve_token(url: str, token_env: str = DEFAULT_TOKEN_ENV, settings: LabelStudioSettings | None = None) -> str:
    """The API token: from the environment variable ``token_env``, else (for a server on this
    machine only) from the credentials file ``cda review serve`` wrote.

    Raises:
        LabelStudioError: no token found.

    Examples:
        >>> import os
        >>> os.environ["MY_LS_TOKEN"] = "abc123"
        >>> resolve_token("http://example.org", "MY_LS_TOKEN")
        'abc123'
    """
    token = os.environ.get(token_env, "").strip()
    if token:
        return token
    settings = settings or LabelStudioSettings()
    local = (urlparse(url).hostname or "") in LOOPBACK
    if local and settings.credentials_file.is_file():
        return load_credentials(settings.credentials_file).token.get_secret_value()
    where = f" or in {settings.credentials_file} (written by `cda review serve`)" if local else ""
    raise LabelStudioError(
        f"No Label Studio API token for {url}: none in the environment variable {token_env} (--token-env){where}. "
        f"Start the server with `cda review serve`, or `export {token_env}=<token from Account & Settings>`"
    )


def connect(url: str, token_env: str = DEFAULT_TOKEN_ENV, settings: LabelStudioSettings | None = None) -> LabelStudioClient:
    """A client for ``url`` with the token :func:`resolve_token` finds, checked with one request."""
    client = LabelStudioClient(url, resolve_token(url, token_env, settings))
    client.whoami()
    return client
