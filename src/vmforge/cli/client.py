"""The REST client of the ``vmforge`` CLI: finds the server, its CA bundle and a token, sends ARM requests and
follows long-running operations. It talks to the server over HTTP only (never the store or the services).

Resolution, first match wins:

- server URL: ``--server`` / ``$VMFORGE_SERVER``, else the ``url`` of ``<data dir>/server.json`` (written by
  ``vmforge serve``); the data dir is ``--data-dir``, else ``$VMFORGE_HOME``, else the XDG data dir;
- CA bundle: ``$VMFORGE_CA_BUNDLE``, else ``server.json``'s ``ca_bundle`` (when the URL is that server's or no
  URL was given), else ``$REQUESTS_CA_BUNDLE``, else the system's trust store;
- token: ``$VMFORGE_TOKEN``, else the token of the data dir's local server (``local_token``).
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vmforge.settings import default_data_dir

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_GROUP = "vmforge"
IMAGEBUILDER_API = "2025-10-01"
COMPUTE_API = "2026-04-01"
GALLERY_API = "2026-03-03"
RESOURCES_API = "2025-04-01"  # Microsoft.Resources (resource groups)
SERVER_FILE = "server.json"
PROVIDER = "Microsoft.VirtualMachineImages/imageTemplates"


class ClientError(Exception):
    """A failed call, in ARM's terms: ``code``, ``message`` and the ``details`` (each ``{code, message,
    target}``) of a CloudError, or a client-side problem (no server, no token, connection refused)."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details, self.status = code, message, list(details or []), status

    @classmethod
    def from_response(cls, r: httpx.Response) -> "ClientError":
        try:
            err = r.json().get("error") or {}
        except (ValueError, AttributeError):
            err = {}
        code = err.get("code") or f"HTTP{r.status_code}"
        message = err.get("message") or (r.text[:500] if r.text else r.reason_phrase)
        return cls(code, message, err.get("details") or [], r.status_code)


def is_missing_route(e: ClientError) -> bool:
    """Whether the server has no such route at all (an older server without vmforge's run extensions)."""
    return e.status == 404 and e.code == "NotFound" and e.message.startswith("No route matches")


def local_token(data_dir: Path) -> str:
    """A bearer token the local server of ``data_dir`` accepts (what ``vmforge token`` prints). The one place
    that knows how tokens are minted: change it here when the identity work changes them."""
    from vmforge.auth import read_token

    return read_token(data_dir)


def resolve_data_dir(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).expanduser().resolve()


def read_server_file(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / SERVER_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Target:
    """Where ARM resources live: subscription and resource group, with the api-versions to speak."""

    subscription: str = DEFAULT_SUBSCRIPTION
    group: str = DEFAULT_GROUP
    api_version: str = IMAGEBUILDER_API

    def template(self, name: str = "") -> str:
        base = f"/subscriptions/{self.subscription}/resourceGroups/{self.group}/providers/{PROVIDER}"
        return base + (f"/{name}" if name else "")

    def compute(self, suffix: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.group}/providers/Microsoft.Compute/{suffix}"


@dataclass
class Client:
    """One server connection. ``request`` returns the response of a 2xx answer and raises ``ClientError``
    (with the CloudError's code, message and details) for anything else."""

    url: str
    token: str
    verify: ssl.SSLContext | bool = True
    target: Target = field(default_factory=Target)
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None  # tests: an httpx.MockTransport
    _http: httpx.Client | None = None

    @classmethod
    def connect(cls, server: str | None = None, data_dir: Path | None = None, target: Target | None = None,
                ca_bundle: str | None = None) -> "Client":
        dd = resolve_data_dir(data_dir)
        info = read_server_file(dd) or {}
        url = (server or info.get("url") or "").rstrip("/")
        if not url:
            raise ClientError("NoServer", f"no server given and no local server found ({dd / SERVER_FILE} is "
                              "missing): pass --server URL, set VMFORGE_SERVER, or start `vmforge serve`.")
        same = not server or url == str(info.get("url", "")).rstrip("/")
        ca = ca_bundle or os.environ.get("VMFORGE_CA_BUNDLE") or (info.get("ca_bundle") if same else None) \
            or os.environ.get("REQUESTS_CA_BUNDLE")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        token = os.environ.get("VMFORGE_TOKEN")
        if not token:
            try:
                token = local_token(dd)
            except (OSError, ValueError) as e:
                raise ClientError("NoToken", f"{e}; or set VMFORGE_TOKEN") from None
        return cls(url, token, verify, target or Target())

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, verify=self.verify, timeout=httpx.Timeout(30, read=60),
                                      transport=self.transport,
                                      headers={"Authorization": f"Bearer {self.token}",
                                               "User-Agent": "vmforge-cli"})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def request(self, method: str, path: str, *, api_version: str | None = None, json_body: Any = None,
                params: dict[str, str] | None = None, ok_404: bool = False) -> httpx.Response:
        q = {"api-version": api_version or self.target.api_version, **(params or {})}
        try:
            r = self.http.request(method, path, params=q, json=json_body)
        except httpx.HTTPError as e:
            raise ClientError("ConnectionFailed", f"cannot reach {self.url}: {e}") from None
        if r.is_success or (ok_404 and r.status_code == 404):
            return r
        raise ClientError.from_response(r)

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def list_all(self, path: str, **kw: Any) -> list[dict[str, Any]]:
        """Every item of a list operation, following ``nextLink``."""
        page = self.get_json(path, **kw)
        items = list(page.get("value", []))
        while page.get("nextLink"):
            try:
                r = self.http.get(page["nextLink"])
            except httpx.HTTPError as e:
                raise ClientError("ConnectionFailed", f"cannot reach {self.url}: {e}") from None
            if not r.is_success:
                raise ClientError.from_response(r)
            page = r.json()
            items.extend(page.get("value", []))
        return items

    def wait(self, r: httpx.Response, timeout: float = 3600,
             on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Follow a long-running operation to its end: the ``Azure-AsyncOperation`` status resource when the
        response names one, else the ``Location`` (202 while running, 2xx when done), honouring ``Retry-After``.
        Returns the final status (``{"status": "Succeeded", ...}``); raises ``ClientError`` when it failed."""
        status_url = r.headers.get("Azure-AsyncOperation")
        location = r.headers.get("Location")
        if not status_url and not location:
            return {"status": "Succeeded"}
        deadline = time.monotonic() + timeout
        delay = _retry_after(r)
        while True:
            poll = self.poll(status_url or location or "")
            if status_url:
                body = poll.json()
                if on_poll:
                    on_poll(body)
                status = body.get("status", "")
                if status not in ("InProgress", "Running", "Accepted", ""):
                    if status != "Succeeded":
                        err = body.get("error") or {}
                        raise ClientError(err.get("code") or status, err.get("message") or f"The operation "
                                          f"ended {status}.", err.get("details"))
                    return body
            elif poll.status_code != 202:
                return {"status": "Succeeded"}
            if time.monotonic() > deadline:
                raise ClientError("Timeout", f"the operation did not finish within {timeout:.0f}s")
            self.sleep(delay)
            delay = _retry_after(poll, delay)

    def poll(self, url: str) -> httpx.Response:
        try:
            r = self.http.get(url)
        except httpx.HTTPError as e:
            raise ClientError("ConnectionFailed", f"cannot reach {self.url}: {e}") from None
        if not r.is_success:
            raise ClientError.from_response(r)
        return r


def _retry_after(r: httpx.Response, default: float = 1.0) -> float:
    try:
        return min(max(float(r.headers.get("Retry-After", default)), 0.05), 60.0)
    except ValueError:
        return default
