"""The local issuer's signing key: one RSA key in ``<data dir>/identity/signing-key.pem`` (mode 0600),
published as a JWKS. The key id is the RFC 7638 thumbprint of the public key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

IDENTITY_DIR = "identity"
KEY_FILE = "signing-key.pem"


def identity_dir(data_dir: Path) -> Path:
    return data_dir / IDENTITY_DIR


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (the folder is created 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _b64u(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    private: rsa.RSAPrivateKey
    kid: str

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        nums = self.public.public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64u(nums.n), "e": _b64u(nums.e)}


def _thumbprint(key: rsa.RSAPrivateKey) -> str:
    nums = key.public_key().public_numbers()
    canon = json.dumps({"e": _b64u(nums.e), "kty": "RSA", "n": _b64u(nums.n)}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()


def load_key(data_dir: Path) -> SigningKey:
    """The existing key (FileNotFoundError when the server never initialised this data dir)."""
    pem = (identity_dir(data_dir) / KEY_FILE).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return SigningKey(key, _thumbprint(key))


def ensure_key(data_dir: Path) -> SigningKey:
    """Load the key, creating a 2048-bit one on first use."""
    path = identity_dir(data_dir) / KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_name(f"{KEY_FILE}.{os.getpid()}.new")
        write_private(tmp, pem)
        try:
            os.link(tmp, path)  # first writer wins: never replace a key another process already uses
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return load_key(data_dir)
