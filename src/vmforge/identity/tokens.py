"""Access tokens: RS256 JWTs minted by the local issuer, and the verification every request goes through —
signature, ``exp``/``nbf``, ``aud`` and ``iss`` — for the local issuer and, when configured, one external
issuer (an Entra ID tenant, by its issuer, JWKS URL and audiences). Never just decoded."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from vmforge.errors import Unauthorized
from vmforge.identity.keys import SigningKey

# ARM accepts tokens for either of its two resource ids.
ARM_AUDIENCES = ("https://management.azure.com/", "https://management.core.windows.net/")
DEFAULT_LIFETIME = 3600
LEEWAY = 60


def local_issuer(base_url: str, tenant: str) -> str:
    """The ``iss`` of tokens the server at ``base_url`` mints (Entra's v2.0 shape)."""
    return f"{base_url.rstrip('/')}/{tenant}/v2.0"


def graph_audience(base_url: str) -> str:
    """The audience (and base URL) of the server's small Microsoft Graph directory (``vmforge.api.routes.graph``):
    the Azure CLI resolves ``--assignee`` there, and takes the URL from the cloud metadata."""
    return base_url.rstrip("/") + "/graph/"


def audience_for(value: str, base_url: str | None = None) -> str | None:
    """The audience a token request's ``scope`` (``…//.default``, ``…/.default``) or ``resource`` names: an ARM
    audience or, given the server's ``base_url``, its Graph audience; None when it names something else."""
    v = value.strip()
    for suffix in ("/.default",):
        if v.lower().endswith(suffix):
            v = v[: -len(suffix)]
    v = v.rstrip("/").lower() + "/"
    if base_url is not None and v == graph_audience(base_url).lower():
        return graph_audience(base_url)
    return next((a for a in ARM_AUDIENCES if a == v), None)


@dataclass(frozen=True)
class LocalIssuer:
    key: SigningKey
    issuer: str
    tenant: str
    lifetime: int = DEFAULT_LIFETIME

    def mint(self, object_id: str, app_id: str, name: str, audience: str = ARM_AUDIENCES[0],
             lifetime: int | None = None) -> tuple[str, int]:
        """A signed access token for a service principal and its lifetime in seconds."""
        now = int(time.time())
        ttl = lifetime or self.lifetime
        claims = {"aud": audience, "iss": self.issuer, "iat": now, "nbf": now, "exp": now + ttl,
                  "sub": object_id, "oid": object_id, "tid": self.tenant, "appid": app_id, "azp": app_id,
                  "app_displayname": name, "idtyp": "app", "ver": "2.0", "uti": uuid.uuid4().hex}
        token = jwt.encode(claims, self.key.private, algorithm="RS256", headers={"kid": self.key.kid})
        return token, ttl


@dataclass(frozen=True)
class ExternalIssuer:
    """A trusted external issuer, e.g. ``https://login.microsoftonline.com/{tenant}/v2.0`` with the JWKS URL
    ``https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys``."""

    issuer: str
    jwks_url: str
    audiences: tuple[str, ...] = ARM_AUDIENCES


@dataclass(frozen=True)
class Identity:
    """The verified claims a request's principal is built from."""

    object_id: str
    app_id: str | None
    name: str
    tenant_id: str | None
    issuer: str
    local: bool


@dataclass
class TokenVerifier:
    local: LocalIssuer
    external: ExternalIssuer | None = None
    leeway: int = LEEWAY
    # The audiences accepted from the local issuer: ARM's (a Graph token is verified by a second verifier that
    # accepts only the Graph audience, so that neither kind of token works where the other is meant).
    local_audiences: tuple[str, ...] = ARM_AUDIENCES
    _cache: dict[str, tuple[Identity, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _jwks: Any = None

    def verify(self, token: str) -> Identity:
        """The identity a token proves, or ``Unauthorized`` with ARM's code for what is wrong with it."""
        hit = self._cache.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        ident, exp = self._verify(token)
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[token] = (ident, exp)
        return ident

    def _verify(self, token: str) -> tuple[Identity, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("The access token is not a valid JWT.", code="InvalidAuthenticationToken") from None
        if header.get("alg") != "RS256":
            raise Unauthorized("The access token's signing algorithm is not RS256.",
                               code="InvalidAuthenticationToken")
        iss = unverified.get("iss")
        if iss == self.local.issuer:
            key: Any = self.local.key.public
            audiences: tuple[str, ...] = self.local_audiences
        elif self.external is not None and iss == self.external.issuer:
            key = self._external_key(token)
            audiences = self.external.audiences
        else:
            raise Unauthorized(f"The access token is from the wrong issuer '{iss}'. It must match the tenant "
                               f"'{self.local.issuer}' associated with this server.",
                               code="InvalidAuthenticationTokenTenant")
        claims = self._decode(token, key, audiences, iss)
        oid = claims.get("oid") or claims.get("sub")
        if not oid:
            raise Unauthorized("The access token has no 'oid' claim.", code="InvalidAuthenticationToken")
        app_id = claims.get("appid") or claims.get("azp")
        name = claims.get("app_displayname") or claims.get("upn") or claims.get("name") or app_id or oid
        ident = Identity(str(oid), app_id, str(name), claims.get("tid"), iss, iss == self.local.issuer)
        return ident, float(claims["exp"])

    def _decode(self, token: str, key: Any, audiences: tuple[str, ...], iss: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, key, algorithms=["RS256"], audience=list(audiences), issuer=iss,
                              leeway=self.leeway, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired.", code="ExpiredAuthenticationToken") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The access token has an invalid audience; it must be one of "
                               + ", ".join(audiences) + ".", code="InvalidAuthenticationTokenAudience") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The access token is not valid yet (nbf).", code="InvalidAuthenticationToken") \
                from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The access token's signature is invalid.", code="InvalidAuthenticationToken") \
                from None
        except jwt.PyJWTError as e:
            raise Unauthorized(f"The access token is invalid: {e}.", code="InvalidAuthenticationToken") from None

    def _external_key(self, token: str) -> Any:
        assert self.external is not None
        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(self.external.jwks_url, cache_keys=True, lifespan=3600, timeout=10)
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as e:
            raise Unauthorized(f"The access token's signing key is not in the issuer's JWKS: {e}",
                               code="InvalidAuthenticationToken") from None
