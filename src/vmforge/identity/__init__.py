"""vmforge's identity provider: service principals with client secrets, an OAuth2 token endpoint issuing RS256
JWTs (as Entra ID does for ARM), verification of those and of an external issuer's tokens, role-based access
control, per-principal throttling and the token endpoint's throttle.

Entry points:

- ``bootstrap(settings, db) -> IdentityRuntime``: at server start; creates the signing key and the bootstrap
  admin (Owner at ``/``) on first start, writing its credentials to ``<data dir>/identity/admin.json`` (0600).
- ``local_token(data_dir) -> str``: a fresh access token of the bootstrap admin, minted with the data dir's
  signing key (no server round trip; the caller must be able to read the data dir, as for any admin command).
- ``admin_credentials(data_dir) -> dict``: ``{"appId", "password", "tenant", "objectId", "issuer"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.identity.keys import SigningKey, ensure_key, identity_dir, load_key, write_private
from vmforge.identity.ratelimit import RateLimiter, TokenThrottle
from vmforge.identity.rbac import Authorizer
from vmforge.identity.roles import OWNER
from vmforge.identity.store import IdentityStore
from vmforge.identity.tokens import ARM_AUDIENCES, ExternalIssuer, LocalIssuer, TokenVerifier, local_issuer

__all__ = ["IdentityRuntime", "admin_credentials", "admin_credentials_path", "bootstrap", "local_token"]

ADMIN_FILE = "admin.json"
ADMIN_NAME = "vmforge-admin"


def admin_credentials_path(data_dir: Path) -> Path:
    return identity_dir(data_dir) / ADMIN_FILE


def admin_credentials(data_dir: Path) -> dict[str, Any]:
    """The bootstrap admin's credentials (FileNotFoundError before the server's first start)."""
    path = admin_credentials_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"no admin credentials at {path}: start `vmforge serve --data-dir {data_dir}` "
                                "once first")
    return json.loads(path.read_text())


def local_token(data_dir: Path, *, audience: str = ARM_AUDIENCES[0], lifetime: int = 3600) -> str:
    """A fresh access token (JWT) of the bootstrap admin that the data dir's server accepts."""
    creds = admin_credentials(data_dir)
    issuer = LocalIssuer(load_key(data_dir), creds["issuer"], creds["tenant"])
    return issuer.mint(creds["objectId"], creds["appId"], creds.get("displayName", ADMIN_NAME), audience,
                       lifetime)[0]


@dataclass
class IdentityRuntime:
    """What the API needs at run time."""

    store: IdentityStore
    issuer: LocalIssuer
    verifier: TokenVerifier
    authorizer: Authorizer
    limiter: RateLimiter
    token_throttle: TokenThrottle = field(default_factory=TokenThrottle)


def _write_admin(data_dir: Path, creds: dict[str, Any]) -> None:
    write_private(admin_credentials_path(data_dir), (json.dumps(creds, indent=2) + "\n").encode())


def ensure_admin(data_dir: Path, store: IdentityStore, tenant: str, issuer: str) -> dict[str, Any]:
    """Create the bootstrap admin (or a new secret when its credentials file is gone) and make it Owner at
    ``/``; rewrite the credentials file when the issuer (the server's URL) changed."""
    path = admin_credentials_path(data_dir)
    admin = store.bootstrap_principal()
    creds: dict[str, Any] | None = json.loads(path.read_text()) if path.exists() else None
    if admin is None:
        admin, secret = store.create_principal(ADMIN_NAME, bootstrap=True)
        creds = None
    elif creds is None or creds.get("appId") != admin.app_id:
        secret = store.reset_secret(admin.object_id)
        creds = None
    else:
        secret = creds["password"]
    new = {"appId": admin.app_id, "password": secret, "tenant": tenant, "objectId": admin.object_id,
           "displayName": admin.display_name, "issuer": issuer}
    if new != creds:
        _write_admin(data_dir, new)
    store.assign(admin.object_id, OWNER, "/")
    return new


def bootstrap(settings: Any, db: Any) -> IdentityRuntime:
    """Everything identity needs for a server: signing key, bootstrap admin, verifier, authorizer, limiter."""
    key: SigningKey = ensure_key(settings.data_dir)
    store = IdentityStore(db)
    iss = local_issuer(settings.base_url, settings.tenant_id)
    ensure_admin(settings.data_dir, store, settings.tenant_id, iss)
    issuer = LocalIssuer(key, iss, settings.tenant_id, settings.token_lifetime)
    external = None
    if settings.external_issuer:
        if not settings.external_jwks_url:
            raise ValueError("--external-issuer needs --external-jwks-url")
        external = ExternalIssuer(settings.external_issuer, settings.external_jwks_url,
                                  tuple(settings.external_audience or ARM_AUDIENCES))
    return IdentityRuntime(store=store, issuer=issuer, verifier=TokenVerifier(issuer, external),
                           authorizer=Authorizer(store),
                           limiter=RateLimiter(settings.rate_limit_reads, settings.rate_limit_writes),
                           token_throttle=TokenThrottle(settings.token_failures_per_client,
                                                        settings.token_failures_per_address,
                                                        settings.token_requests_per_address,
                                                        settings.token_throttle_window))
