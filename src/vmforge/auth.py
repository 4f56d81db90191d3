"""Who is calling: the caller's bearer token, verified (signature, expiry, audience, issuer) by
``vmforge.identity.tokens.TokenVerifier``. One entry point, ``Authenticator.authenticate(header) -> Principal``,
used by one API dependency (``vmforge.api.deps.get_principal``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmforge.errors import Unauthorized
from vmforge.identity.rbac import Authorizer
from vmforge.identity.tokens import TokenVerifier


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. ``name`` is what ``createdBy``/``lastModifiedBy`` record."""

    name: str
    object_id: str
    kind: str = "Application"
    app_id: str | None = None
    tenant_id: str | None = None
    issuer: str = ""

    @property
    def client(self) -> str:
        """The id ARM names in AuthorizationFailed messages (the client/app id)."""
        return self.app_id or self.object_id


class Authenticator:
    def __init__(self, verifier: TokenVerifier, authorizer: Authorizer) -> None:
        self.verifier = verifier
        self.authorizer = authorizer

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
        ident = self.verifier.verify(value.strip())
        if ident.local and not self.authorizer.registered(ident.object_id):
            raise Unauthorized("The service principal of the access token no longer exists.",
                               code="InvalidAuthenticationToken")
        return Principal(name=ident.name, object_id=ident.object_id, app_id=ident.app_id,
                         tenant_id=ident.tenant_id, issuer=ident.issuer)


def read_token(data_dir: Path) -> str:
    """A fresh access token of the data dir's bootstrap admin (kept under its old name for the CLI; the
    function is ``vmforge.identity.local_token``)."""
    from vmforge.identity import local_token

    return local_token(data_dir)
