"""Content-hash store for expensive results (trained classifiers, attributions, generations).

A key is the hash of everything that changes a result (inputs, settings, model, seed
and a ``version`` bumped when the logic changes) and nothing that does not (batch
sizes, thread counts). Writes are atomic (temp file + rename), so a killed run leaves
either a whole entry or none, and a rerun resumes from what finished.

Examples:
    >>> cache = Cache("/tmp/cda-doctest-cache")
    >>> key = cache.key("generate", {"prompt": "hi", "seed": 0})
    >>> cache.put_json(key, {"text": "hello"})
    >>> cache.get_json(key)
    {'text': 'hello'}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A stable hex digest of JSON-serialisable parts (dict keys sorted)."""
    payload = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class Cache:
    """JSON blobs and whole folders under ``root``, addressed by :meth:`key`.

    With ``enabled=False`` every lookup misses and nothing is written.
    """

    def __init__(self, root: str | Path, enabled: bool = True) -> None:
        self.root = Path(root)
        self.enabled = enabled

    def key(self, namespace: str, *parts: Any) -> str:
        """``namespace/<hash of parts>``: namespaces keep kinds of results apart on disk."""
        return f"{namespace}/{fingerprint(*parts)}"

    def path(self, key: str) -> Path:
        return self.root / key

    def get_json(self, key: str) -> Any | None:
        if not self.enabled:
            return None
        path = self.path(key).with_suffix(".json")
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # a torn write from an old version: treat as a miss
            return None

    def put_json(self, key: str, value: Any) -> None:
        if not self.enabled:
            return
        path = self.path(key).with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False)
        os.replace(tmp, path)

    def folder(self, key: str) -> Path | None:
        """A finished folder entry (written via :meth:`commit_folder`), or ``None``."""
        if not self.enabled:
            return None
        path = self.path(key)
        return path if (path / ".complete").is_file() else None

    def staging_folder(self, key: str) -> Path:
        """A fresh folder to write an entry into; call :meth:`commit_folder` when done."""
        path = self.path(key)
        if not self.enabled:
            return Path(tempfile.mkdtemp(prefix="cda-nocache-"))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def commit_folder(self, path: Path) -> None:
        (path / ".complete").touch()

    def lock(self, key: str) -> Any:
        """An inter-process lock for ``key`` (``with cache.lock(key): ...``), so two runs on one
        cache train a model once: the second waits, then finds the first one's entry.

        Examples:
            >>> with Cache("/tmp/cda-doctest-cache").lock("classifier/abc"):
            ...     pass
        """
        from filelock import FileLock

        if not self.enabled:
            return contextlib.nullcontext()
        path = self.root / "locks" / f"{key.replace('/', '-')}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))


def default_cache_root(setting: str | Path | None = None) -> Path:
    """The cache root: ``setting`` (the ``cache_dir`` config key), else ``$CDA_CACHE_DIR``, else ``~/.cache/cda``.

    The one place this is decided: converted models live in its ``models/`` folder.

    Examples:
        >>> default_cache_root("/data/cda-cache")
        PosixPath('/data/cda-cache')
    """
    return Path(setting or os.environ.get("CDA_CACHE_DIR") or Path.home() / ".cache" / "cda").expanduser()
