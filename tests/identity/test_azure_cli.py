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
from collections.abc import Callable

import pytest

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


@pytest.fixture(scope="module")
def az(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """``az(*args, ok=True)``: the real CLI, logged in to the session server as a Contributor of SUBSCRIPTION."""
    az_bin = az_binary()
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path_factory.mktemp("az")), "REQUESTS_CA_BUNDLE": server.cert,
           "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_INSTANCE_DISCOVERY": "false",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_SURVEY_MESSAGE": "false", "AZURE_CORE_ONLY_SHOW_ERRORS": "true"}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([az_bin, *args], env=env, capture_output=True, text=True, timeout=180)
        if ok:
            assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        return r

    sp = cli(server, "principal", "create", "az-cli", "--role", "Contributor", "--scope", f"/subscriptions/{SUBSCRIPTION}")
    run("cloud", "register", "-n", "vmforge", "--endpoint-resource-manager", server.url)
    run("cloud", "set", "-n", "vmforge")
    accounts = json.loads(run("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
                              "--tenant", sp["tenant"]).stdout)
    assert [a["id"] for a in accounts] == [SUBSCRIPTION]
    return run


def test_az_login_and_image_builder_commands(az: Callable[..., subprocess.CompletedProcess]) -> None:
    group = f"rg-az-{uuid.uuid4().hex[:6]}"
    az("group", "create", "-n", group, "-l", "westus")  # templates and identities live in a group that exists
    identity = json.loads(az("identity", "create", "-g", group, "-n", "id1").stdout)["id"]
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


def test_az_group_commands(az: Callable[..., subprocess.CompletedProcess]) -> None:
    """``az group create|show|exists|list|update --tags|delete --yes`` — the delete waits for ARM's
    long-running operation, and takes the image template in the group with it."""
    group, tag = f"rg-azg-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    assert az("group", "exists", "-n", group).stdout.strip() == "false"
    shown = az("group", "show", "-n", group, ok=False)
    assert shown.returncode == 3 and "(ResourceGroupNotFound)" in shown.stderr, shown.stderr
    g = json.loads(az("group", "create", "-n", group, "-l", "West US", "--tags", f"run={tag}").stdout)
    assert (g["name"], g["location"], g["tags"], g["properties"]["provisioningState"]) == (
        group, "westus", {"run": tag}, "Succeeded")
    assert az("group", "exists", "-n", group).stdout.strip() == "true"
    assert json.loads(az("group", "show", "-n", group).stdout)["id"] == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}"
    assert group in [x["name"] for x in json.loads(az("group", "list").stdout)]
    assert [x["name"] for x in json.loads(az("group", "list", "--tag", f"run={tag}").stdout)] == [group]
    updated = json.loads(az("group", "update", "-n", group, "--tags", f"run={tag}", "stage=two").stdout)
    assert updated["tags"] == {"run": tag, "stage": "two"}
    assert json.loads(az("group", "show", "-n", group).stdout)["tags"] == {"run": tag, "stage": "two"}
    ident = json.loads(az("identity", "create", "-g", group, "-n", "builder").stdout)["id"]
    az("image", "builder", "create", "-g", group, "-n", "tpl", "--image-source", "Debian:debian-12:12:latest",
       "--scripts", "https://example.org/setup.sh", "--managed-image-destinations", "img1=westus",
       "--identity", ident)
    assert [x["name"] for x in json.loads(az("image", "builder", "list", "-g", group).stdout)] == ["tpl"]
    az("group", "delete", "-n", group, "--yes")
    assert az("group", "exists", "-n", group).stdout.strip() == "false"
    assert group not in [x["name"] for x in json.loads(az("group", "list").stdout)]
    gone = az("image", "builder", "show", "-g", group, "-n", "tpl", ok=False)
    assert gone.returncode == 3 and "(ResourceNotFound)" in gone.stderr, gone.stderr
    assert az("identity", "show", "-g", group, "-n", "builder", ok=False).returncode == 3
