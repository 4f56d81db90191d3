"""The real Azure CLI (2.91.0) against vmforge: register the cloud from vmforge's metadata endpoint, log in
with a service principal (MSAL reads vmforge's OpenID configuration), then create, show, list, run and delete
an image template — the commands of README's "Using the Azure CLI".

The CLI is installed once into ``tools/azcli`` (about 45 s from the package index); set ``VMFORGE_AZ`` to use
another ``az``. The test skips when the CLI cannot be installed, and fails (with pip's error) under
``VMFORGE_REQUIRE_ALL``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import REPO, SUBSCRIPTION, Server, missing_dependency
from tests.identity.helpers import cli

AZ_VERSION = "2.91.0"


def az_binary() -> str:
    if os.environ.get("VMFORGE_AZ"):
        return os.environ["VMFORGE_AZ"]
    venv = REPO / "tools" / "azcli"
    az = venv / "bin" / "az"
    if az.exists():
        return str(az)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"azure-cli=={AZ_VERSION}"], check=True,
                       timeout=600, capture_output=True)
    except (subprocess.SubprocessError, OSError) as e:
        detail = getattr(e, "stderr", None) or b""
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
        missing_dependency(f"azure-cli {AZ_VERSION} could not be installed into {venv}: {e} {detail[-1500:]}".strip())
    return str(az)


def test_az_login_and_image_builder_commands(server: Server, tmp_path: Path) -> None:
    az_bin = az_binary()
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path / "az"), "REQUESTS_CA_BUNDLE": server.cert,
           "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_INSTANCE_DISCOVERY": "false",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_SURVEY_MESSAGE": "false", "AZURE_CORE_ONLY_SHOW_ERRORS": "true"}

    def az(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([az_bin, *args], env=env, capture_output=True, text=True, timeout=180)
        if ok:
            assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        return r

    sp = cli(server, "principal", "create", "az-cli", "--role", "Contributor", "--scope", f"/subscriptions/{SUBSCRIPTION}")
    az("cloud", "register", "-n", "vmforge", "--endpoint-resource-manager", server.url)
    az("cloud", "set", "-n", "vmforge")
    accounts = json.loads(az("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
                             "--tenant", sp["tenant"]).stdout)
    assert [a["id"] for a in accounts] == [SUBSCRIPTION]
    group, identity = f"rg-az-{uuid.uuid4().hex[:6]}", (
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/id1")
    t = json.loads(az("image", "builder", "create", "-g", group, "-n", "tpl", "--image-source",
                      "Debian:debian-12:12:latest", "--scripts", "https://example.org/setup.sh",
                      "--managed-image-destinations", "img1=westus", "--identity", identity).stdout)
    assert t["provisioningState"] == "Succeeded"
    assert json.loads(az("image", "builder", "show", "-g", group, "-n", "tpl").stdout)["name"] == "tpl"
    assert [x["name"] for x in json.loads(az("image", "builder", "list", "-g", group).stdout)] == ["tpl"]
    # The run is accepted; with no source image in the local catalog the build itself fails (BadPIRSource).
    run = az("image", "builder", "run", "-g", group, "-n", "tpl", ok=False)
    assert run.returncode == 1, (run.stdout[-2000:], run.stderr[-2000:])
    assert run.stderr.startswith("ERROR: (BadPIRSource) Source: The platform image Debian:debian-12:12:latest is "
                                 "not in the local catalog; "), run.stderr
    assert "\nCode: BadPIRSource\n" in run.stderr, run.stderr
    az("image", "builder", "delete", "-g", group, "-n", "tpl")
    assert json.loads(az("image", "builder", "list", "-g", group).stdout) == []
