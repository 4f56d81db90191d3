"""Client secrets are stored as salted scrypt hashes, never in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``secret`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


# What an unknown client id's secret is checked against, so that it costs what a known id's does: the same
# scrypt parameters and lengths as ``hash_secret``, made once (random bytes: no secret hashes to it).
DUMMY_HASH = f"scrypt${_N}${_R}${_P}${_b64(secrets.token_bytes(16))}${_b64(secrets.token_bytes(32))}"


def verify_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` hashes to ``stored`` (constant-time comparison)."""
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def new_secret() -> str:
    """A client secret in the shape Entra ID hands out (40 URL-safe characters), never starting with '-': a
    command line such as ``az login -p SECRET`` would read that as an option (1 secret in 64 otherwise)."""
    while True:
        secret = secrets.token_urlsafe(30)
        if not secret.startswith("-"):
            return secret
