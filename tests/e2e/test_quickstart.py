"""Microsoft's Image Builder quickstart, command for command, with the real Azure CLI against vmforge:
``az group create``, ``az identity create``, ``az role definition create`` (a custom "Image Creation" role),
``az role assignment create --assignee <the identity's clientId>`` (resolved through the server's own Graph
directory), ``az image builder create --identity``, ``run``, ``show-runs`` — a real build of the test image,
published as a managed image by the identity. The same template in a group where the identity holds no role fails
before any VM boots, with the permission message."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server
from tests.e2e.test_build import files, imports, start_server  # noqa: F401  (fixtures)
from tests.identity.helpers import cli
from tests.identity.test_azure_cli import az_binary

pytestmark = pytest.mark.slow

URN = "Vmforge:debian:12:1.0.0"


def test_quickstart_with_the_azure_cli(tmp_path: Path, imports: Path, files) -> None:  # noqa: ANN001, F811
    base, root = files
    (root / "setup.sh").write_text("#!/bin/sh\nset -e\necho quickstart > /etc/quickstart\n")
    srv = start_server(tmp_path, imports)
    try:
        _quickstart(srv, tmp_path, base, imports)
    finally:
        srv.stop()


def _quickstart(srv: Server, tmp_path: Path, base: str, imports: Path) -> None:
    az_bin = az_binary()
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path / "az"), "REQUESTS_CA_BUNDLE": srv.cert,
           "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_INSTANCE_DISCOVERY": "false",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_SURVEY_MESSAGE": "false", "AZURE_CORE_ONLY_SHOW_ERRORS": "true"}

    def az(*args: str, ok: bool = True, timeout: int = 180) -> subprocess.CompletedProcess:
        r = subprocess.run([az_bin, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if ok:
            assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        return r

    # The publisher (the server's admin, at the root scope) puts the test image in the platform catalog.
    with srv.http() as h:
        r = h.put(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/publishers/Vmforge/"
                  "artifacttypes/vmimage/offers/debian/skus/12/versions/1.0.0", params={"api-version": "2026-04-01"},
                  json={"properties": {"blobUri": (imports / "debian12.qcow2").as_uri(),
                                       "osType": "Linux", "hyperVGeneration": "V1"}})
        assert r.status_code == 201, r.text
    # The user: Owner of the subscription (the quickstart creates roles and assigns them).
    sp = cli(srv, "principal", "create", "quickstart", "--role", "Owner", "--scope", f"/subscriptions/{SUBSCRIPTION}")
    az("cloud", "register", "-n", "vmforge", "--endpoint-resource-manager", srv.url)
    az("cloud", "set", "-n", "vmforge")
    az("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"], "--tenant", sp["tenant"])

    group = f"aibQuickstart{uuid.uuid4().hex[:4]}"
    az("group", "create", "-n", group, "-l", "westus")
    ident = json.loads(az("identity", "create", "-g", group, "-n", "aibBuiUserId").stdout)
    role_name = f"Azure Image Builder Image Def {uuid.uuid4().hex[:6]}"
    scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}"
    role_file = tmp_path / "aibRoleImageCreation.json"
    role_file.write_text(json.dumps({
        "Name": role_name, "IsCustom": True, "Description": "Image Builder access to create resources for the "
        "image build, you should delete or split out as appropriate",
        "Actions": ["Microsoft.Compute/galleries/read", "Microsoft.Compute/galleries/images/read",
                    "Microsoft.Compute/galleries/images/versions/read",
                    "Microsoft.Compute/galleries/images/versions/write", "Microsoft.Compute/images/write",
                    "Microsoft.Compute/images/read", "Microsoft.Compute/images/delete"],
        "NotActions": [], "AssignableScopes": [scope]}))
    az("role", "definition", "create", "--role-definition", f"@{role_file}")
    az("role", "assignment", "create", "--assignee", ident["clientId"], "--role", role_name, "--scope", scope)
    listed = json.loads(az("role", "assignment", "list", "--scope", scope).stdout)
    assert [a["principalId"] for a in listed if a["roleDefinitionName"] == role_name] == [ident["principalId"]]

    image_id = f"{scope}/providers/Microsoft.Compute/images/aibCustomLinuxImg01"
    t = json.loads(az("image", "builder", "create", "-g", group, "-n", "helloImageTemplateLinux01",
                      "--image-source", URN, "--scripts", f"{base}/setup.sh",
                      "--managed-image-destinations", "aibCustomLinuxImg01=westus",
                      "--identity", ident["id"]).stdout)
    assert t["provisioningState"] == "Succeeded"
    assert next(iter(t["identity"]["userAssignedIdentities"].values()))["principalId"] == ident["principalId"]
    az("image", "builder", "run", "-g", group, "-n", "helloImageTemplateLinux01", timeout=1800)
    runs = json.loads(az("image", "builder", "show-runs", "-g", group, "-n", "helloImageTemplateLinux01").stdout)
    assert [o["artifactId"].lower() for o in runs] == [image_id.lower()]
    shown = json.loads(az("image", "builder", "show", "-g", group, "-n", "helloImageTemplateLinux01").stdout)
    assert shown["lastRunStatus"]["runState"] == "Succeeded"

    # The same template where the identity holds no role: refused before any VM boots, saying what is missing.
    other = f"{group}-norole"
    az("group", "create", "-n", other, "-l", "westus")
    az("image", "builder", "create", "-g", other, "-n", "norole", "--image-source", URN, "--scripts",
       f"{base}/setup.sh", "--managed-image-destinations", "img2=westus", "--identity", ident["id"])
    failed = az("image", "builder", "run", "-g", other, "-n", "norole", ok=False, timeout=300)
    assert failed.returncode != 0
    assert "(AuthorizationFailed)" in failed.stderr, failed.stderr
    assert ident["clientId"] in failed.stderr and "Microsoft.Compute/images/write" in failed.stderr, failed.stderr
