"""Who is calling. The control plane's first step: one bearer token, created at first start in the data dir.

The check lives behind ``Authenticator.authenticate`` (used by one API dependency) so that the identity
work can replace it with verified JWTs without touching any route.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vmforge.errors import Unauthorized

TOKEN_FILE = "admin.token"


@dataclass(frozen=True)
class Principal:
    name: str
    object_id: str
    kind: str = "Application"


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def ensure_token(data_dir: Path) -> str:
    """Return the server's token, creating it (mode 0600) on first start."""
    path = token_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(data_dir: Path) -> str:
    path = token_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"no token at {path}: start `vmforge serve --data-dir {data_dir}` once first")
    return path.read_text().strip()


class Authenticator:
    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self.admin = Principal(name="vmforge-admin", object_id="00000000-0000-0000-0000-00000000ad01")

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized(
                "Authentication failed. The 'Authorization' header is missing.",
                code="AuthenticationFailed",
            )
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "Authentication failed. The 'Authorization' header is not a Bearer token.",
                code="InvalidAuthenticationToken",
            )
        if not hmac.compare_digest(value.strip().encode(), self._token):
            raise Unauthorized("The access token is invalid.", code="InvalidAuthenticationToken")
        return self.admin
