"""Where Label Studio lives on this machine, and the login it is started with.

Label Studio runs in its **own** virtualenv and process, spoken to over HTTP: installed into
cda's environment it downgrades numpy, pyarrow and python-dateutil. Everything it needs sits
under one folder (default ``<cache>/label-studio``, see :func:`cda.cache.default_cache_root`)::

    venv-1.23.2/              the virtualenv, one per pinned version
    data/                     Label Studio's data (SQLite database, exports)
    data/cda-credentials.json the login and API token, readable only by you (0600)
    server.log                what the server printed

The API token never reaches logs, stdout or outputs: commands print the credentials file's
path, and :class:`Credentials` keeps its secrets in ``SecretStr``.

Examples:
    >>> settings = LabelStudioSettings(home="/tmp/ls", port=8081)
    >>> settings.url, settings.venv.name, settings.credentials_file.name
    ('http://127.0.0.1:8081', 'venv-1.23.2', 'cda-credentials.json')
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cda.cache import default_cache_root
from cda.review.errors import LabelStudioError

log = logging.getLogger(__name__)

#: The Label Studio release cda installs and is tested with.
LABEL_STUDIO_VERSION = "1.23.2"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
#: The environment variable ``cda review push/pull`` read the API token from by default.
DEFAULT_TOKEN_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_USERNAME = "cda@localhost"
CREDENTIALS_FILE = "cda-credentials.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LabelStudioSettings(BaseModel):
    """How ``cda review serve`` installs and starts Label Studio.

    Args:
        version: the ``label-studio`` release to install (pinned).
        host: the interface it listens on (``127.0.0.1``: this machine only).
        port: its TCP port.
        home: the folder for the virtualenv, data and log (default ``<cache>/label-studio``).
        data_dir: Label Studio's data folder (default ``<home>/data``).
        install_timeout_s: how long ``pip install`` may take.
        start_timeout_s: how long to wait for ``/health`` (a cold start migrates the database).
    """

    model_config = ConfigDict(extra="forbid")

    version: str = LABEL_STUDIO_VERSION
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    home: Path | None = None
    data_dir: Path | None = None
    install_timeout_s: float = Field(default=900.0, gt=0)
    start_timeout_s: float = Field(default=300.0, gt=0)

    @property
    def root(self) -> Path:
        return (self.home or default_cache_root() / "label-studio").expanduser()

    @property
    def venv(self) -> Path:
        return self.root / f"venv-{self.version}"

    @property
    def data(self) -> Path:
        return (self.data_dir or self.root / "data").expanduser()

    @property
    def credentials_file(self) -> Path:
        # Beside the database the user was created in: the two belong together.
        return self.data / CREDENTIALS_FILE

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        host = DEFAULT_HOST if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


class Credentials(BaseModel):
    """The Label Studio login and legacy API token (``Authorization: Token …``).

    Examples:
        >>> c = Credentials(password="p", token="t" * 40)
        >>> c.username, str(c.token)
        ('cda@localhost', '**********')
    """

    model_config = ConfigDict(extra="forbid")

    username: str = DEFAULT_USERNAME
    password: SecretStr
    token: SecretStr

    @classmethod
    def generate(cls, username: str = DEFAULT_USERNAME) -> "Credentials":
        """New random credentials (a 40-character hex token, as Label Studio's tokens are)."""
        return cls(username=username, password=secrets.token_urlsafe(18), token=secrets.token_hex(20))


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by the owner only (0600), atomically.

    Examples:
        >>> import stat, tempfile
        >>> p = write_private(Path(tempfile.mkdtemp()) / "secret.json", "{}")
        >>> oct(stat.S_IMODE(p.stat().st_mode))
        '0o600'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_credentials(path: Path) -> Credentials:
    """The credentials in ``path`` (made 0600 again if someone opened it up).

    Raises:
        LabelStudioError: the file is missing or not credentials.
    """
    if not path.is_file():
        raise LabelStudioError(f"No Label Studio credentials at {path}: start the server once with `cda review serve`")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s was readable by others; made it 0600", path)
        path.chmod(0o600)
    try:
        return Credentials.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        raise LabelStudioError(
            f"{path} holds no Label Studio credentials; delete it and its data folder to start afresh"
        ) from None


def load_or_create_credentials(settings: LabelStudioSettings) -> Credentials:
    """The credentials of ``settings.data``: read, or generated and written (0600) for a new data folder.

    Raises:
        LabelStudioError: the data folder holds a database but its credentials file is gone
            (the user in it has a token cda no longer knows).
    """
    path = settings.credentials_file
    if path.is_file():
        return load_credentials(path)
    if (settings.data / "label_studio.sqlite3").is_file():
        raise LabelStudioError(
            f"{settings.data} holds a Label Studio database but no {CREDENTIALS_FILE}: its user's token is unknown. "
            f"Delete {settings.data} to start afresh, or pass another data folder"
        )
    credentials = Credentials.generate()
    payload = {
        "username": credentials.username,
        "password": credentials.password.get_secret_value(),
        "token": credentials.token.get_secret_value(),
    }
    write_private(path, json.dumps(payload, indent=2) + "\n")
    return credentials
