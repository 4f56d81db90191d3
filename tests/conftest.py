"""Shared fixtures: a real vmforge server (subprocess, HTTPS with its generated certificate) and Azure SDK
clients pointed at it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.conftest_vm"]


def missing_dependency(reason: str) -> NoReturn:
    """A test cannot run for want of a dependency (the spec folder, a tool, a package): it skips, except under
    ``VMFORGE_REQUIRE_ALL`` (set by ``scripts/test``, after ``scripts/bootstrap`` installed everything), where it
    fails with the reason. Every test that depends on something outside the venv goes through here."""
    if os.environ.get("VMFORGE_REQUIRE_ALL"):
        pytest.fail(f"{reason} (VMFORGE_REQUIRE_ALL forbids skipping; scripts/bootstrap installs every dependency)",
                    pytrace=False)
    pytest.skip(reason)


def require_tools(*tools: str | tuple[str, ...]) -> None:
    """Each tool must be on PATH (a tuple: one of its names is enough), else ``missing_dependency``."""
    for tool in tools:
        names = tool if isinstance(tool, tuple) else (tool,)
        if not any(shutil.which(n) for n in names):
            missing_dependency(f"{' or '.join(names)} not installed (scripts/bootstrap installs it)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_tools(*tools): the test needs these programs on PATH (a tuple: one "
                                       "of them); skipped without them, failed under VMFORGE_REQUIRE_ALL")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_tools"):
        require_tools(*mark.args)


def spec_root() -> Path | None:
    env = os.environ.get("VMFORGE_SPEC_DIR")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "spec"]:
        if (cand / "azure-rest-api-specs").is_dir():
            return cand / "azure-rest-api-specs"
    return None


SPEC_MISSING = ("Microsoft's spec files are not present: expected ../shared/spec next to the repository, or "
                "VMFORGE_SPEC_DIR pointing at a directory holding azure-rest-api-specs/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RESOURCES_API = "2025-04-01"  # azure-mgmt-resource 26's api-version for resource groups
IDENTITY_SUBSCRIPTION, IDENTITY_GROUP = "00000000-0000-0000-0000-000000000000", "rg1"


@dataclass
class Server:
    data_dir: Path
    port: int
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert(self) -> str:
        return str(self.data_dir / "tls" / "cert.pem")

    @property
    def token(self) -> str:
        """A fresh access token (JWT) of the server's bootstrap admin (Owner at /)."""
        from vmforge.identity import local_token

        return local_token(self.data_dir)

    def start(self, timeout: float = 30) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "vmforge.cli", "serve", "--port", str(self.port), "--data-dir",
               str(self.data_dir), "--log-level", "warning", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if Path(self.cert).exists():
                    r = httpx.get(self.url + "/healthz", verify=self.ssl_context(), timeout=1)
                    if r.status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")
        # Every server the tests start has the group of the session-wide managed identity (the wire helpers'
        # IDENTITY: group rg1 of subscription 00000000-0000-0000-0000-000000000000), which templates name.
        self.ensure_group(IDENTITY_SUBSCRIPTION, IDENTITY_GROUP)
        # ... and that identity itself (identity_1, the one Microsoft's examples name): a template PUT checks that
        # every identity it names exists and that the caller may assign it.
        self.ensure_identity(IDENTITY_SUBSCRIPTION, IDENTITY_GROUP, "identity_1")

    def ensure_identity(self, subscription: str, group: str, name: str, location: str = "westus") -> dict:
        """Create the user-assigned managed identity (or leave it as it is) through the ARM route."""
        with self.http() as c:
            r = c.put(f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/"
                      f"userAssignedIdentities/{name}", params={"api-version": "2023-01-31"},
                      json={"location": location})
        assert r.status_code in (200, 201), r.text
        return r.json()

    def ensure_group(self, subscription: str, group: str, location: str = "westus") -> dict:
        """Create the resource group (or leave it as it is) through the ARM route, as a user would: templates,
        images, galleries and identities are only created in a group that exists."""
        with self.http() as c:
            r = c.put(f"/subscriptions/{subscription}/resourceGroups/{group}",
                      params={"api-version": RESOURCES_API}, json={"location": location})
        assert r.status_code in (200, 201), r.text
        return r.json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(),
                            headers={"Authorization": f"Bearer {self.token}"}, timeout=30)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session, with a small page size so that lists span several pages."""
    d = tmp_path_factory.mktemp("vmforge") / "data"
    srv = Server(d, free_port(), ["--page-size", "3"])
    srv.start()
    yield srv
    srv.stop()


class StaticToken:
    """A TokenCredential that hands out the server's bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object):  # noqa: ANN201
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: object = None):  # noqa: ANN201
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self.token, int(time.time()) + 3600)


SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"


def imagebuilder_client(srv: Server, api_version: str | None = None, subscription: str = SUBSCRIPTION):
    from azure.mgmt.imagebuilder import ImageBuilderClient

    kwargs = {"api_version": api_version} if api_version else {}
    return ImageBuilderClient(StaticToken(srv.token), subscription, base_url=srv.url, connection_verify=srv.cert,
                              retry_total=0, **kwargs)


def load_example(version: str, name: str) -> dict:
    root = spec_root()
    if root is None:
        missing_dependency(SPEC_MISSING)
    base = root / "specification/imagebuilder/resource-manager/Microsoft.VirtualMachineImages"
    for cand in (base / "ImageBuilder/stable" / version / "examples" / f"{name}.json",
                 base / "stable" / version / "examples" / f"{name}.json"):
        if cand.exists():
            return json.loads(cand.read_text())
    raise FileNotFoundError(f"{version}/{name}")
