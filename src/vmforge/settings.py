"""One settings object for the server, read from flags and ``VMFORGE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``$VMFORGE_HOME``, else ``$XDG_DATA_HOME/vmforge``, else ``~/.local/share/vmforge``."""
    home = os.environ.get("VMFORGE_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "vmforge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VMFORGE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8443
    public_url: str | None = None
    database_url: str | None = None
    insecure_http: bool = False
    allow_template_updates: bool = False
    # Items per page of list operations; the SDK pagers follow nextLink.
    page_size: int = Field(default=1000, ge=1, le=10000)
    max_body_bytes: int = 4 * 1024 * 1024
    # Seconds a client should wait between polls of a long-running operation.
    retry_after: int = 1
    # Default tenant id reported in tokens and /tenants.
    tenant_id: str = "72f988bf-0000-4000-8000-00000000f0f0"
    # Seconds between checks of SourceImage triggers (Schedule triggers are checked at their next fire time too,
    # and at least this often).
    trigger_interval: float = Field(default=60.0, gt=0)
    # Builds run at once by this server's embedded worker.
    build_concurrency: int = Field(default=2, ge=1, le=64)
    # Host folders a file:// blobUri may read from (empty: <data_dir>/imports).
    import_roots: list[Path] = Field(default_factory=list)

    # --- identity (vmforge.identity) ---
    # Lifetime of the access tokens the local issuer mints, in seconds.
    token_lifetime: int = Field(default=3600, ge=60, le=86400)
    # An external issuer whose tokens are accepted too (e.g. https://login.microsoftonline.com/{tenant}/v2.0),
    # its JWKS URL and the audiences accepted from it (default: both ARM audiences).
    external_issuer: str | None = None
    external_jwks_url: str | None = None
    external_audience: list[str] = Field(default_factory=list)
    # Requests per hour per principal and subscription (ARM: 12000 reads, 1200 writes); 0 turns a limit off.
    # The defaults are generous so that benchmarks are not throttled; set ARM's values to behave like ARM.
    rate_limit_reads: int = Field(default=1_000_000, ge=0)
    rate_limit_writes: int = Field(default=100_000, ge=0)
    # The token endpoint (vmforge.identity.ratelimit.TokenThrottle), each per ``token_throttle_window`` seconds:
    # failed sign-ins per (client id, source address) and per source address, and all requests per address.
    token_failures_per_client: int = Field(default=10, ge=0)
    token_failures_per_address: int = Field(default=60, ge=0)
    token_requests_per_address: int = Field(default=1200, ge=0)
    token_throttle_window: float = Field(default=300.0, gt=0)
    # The subscription listed at login (GET /subscriptions) for a principal with a role at the root scope.
    subscription_id: str = "00000000-0000-0000-0000-00000000f0f0"
    # The location reported for resource groups (GET /subscriptions/{id}/resourcegroups/{name}).
    default_location: str = "westus"

    # --- hardening ---
    # CIDRs that outbound fetches (scriptUri, sourceUri, image URLs) may reach although they are loopback,
    # link-local or private (vmforge.fetch refuses those by default).
    allow_fetch_from: list[str] = Field(default_factory=list)
    # The build VM's network (vmforge.netpolicy): CIDRs it may not reach besides the defaults (loopback,
    # link-local and this host's addresses always; RFC 1918, CGNAT and ULA unless allowed), and CIDRs that punch
    # holes in those (a private package mirror). Env: VMFORGE_BUILD_DENY='["198.51.100.0/24"]'.
    build_deny: list[str] = Field(default_factory=list)
    build_allow: list[str] = Field(default_factory=list)
    # JSON bodies: deepest nesting and longest string accepted.
    max_json_depth: int = 64
    max_string_bytes: int = 64 * 1024

    @field_validator("build_deny", "build_allow")
    @classmethod
    def _cidrs(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Refused at start-up rather than at the first build."""
        from vmforge.netpolicy import parse_cidrs

        return [str(n) for n in parse_cidrs(value, info.field_name or "CIDR")]

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'vmforge.db'}"

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
