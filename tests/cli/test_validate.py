"""``vmforge validate``: offline, the server's own rules, every error with its JSON path, three input shapes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import invoke
from tests.wire.helpers import load_example, minimal

TYPE = "Microsoft.VirtualMachineImages/imageTemplates"
EXAMPLES = [(v, v, n) for v in ("2022-07-01", "2024-02-01", "2025-10-01")
            for n in ("CreateImageTemplateLinux", "CreateImageTemplateWindows")] + [
    ("2023-07-01", "2024-02-01", n) for n in ("CreateImageTemplateLinux", "CreateImageTemplateWindows")]


def write(tmp_path: Path, doc: Any, name: str = "t.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize("version,folder,name", EXAMPLES, ids=[f"{v}-{n}" for v, _, n in EXAMPLES])
def test_every_spec_example_is_valid(tmp_path: Path, version: str, folder: str, name: str) -> None:
    body = load_example(folder, name)["parameters"]["parameters"]
    r = invoke(["validate", write(tmp_path, body), "--api-version", version])
    assert r.exit_code == 0, r.output
    assert f"valid (api-version {version})" in r.stdout


def _pwsh(b: dict) -> None:
    b["properties"]["customize"].append({"type": "PowerShell", "name": "p", "inline": ["x"], "runAsSystem": True})


def _file_sha(b: dict) -> None:
    b["properties"]["customize"].append({"type": "File", "name": "f", "sourceUri": "https://example.test/f",
                                         "destination": "/tmp/f", "sha256Checksum": "zz"})


# One broken template per rule family: (id, breakage, api-version, expected code, expected path).
BROKEN: list[tuple[str, Callable[[dict], Any], str, str, str]] = [
    ("missing", lambda b: b.pop("location"), "2025-10-01", "MissingRequiredProperty", "location"),
    ("unknown", lambda b: b["properties"].update(colour="blue"), "2025-10-01", "UnknownProperty",
     "properties.colour"),
    ("enum", lambda b: b["properties"]["source"].update(type="Floppy"), "2025-10-01", "InvalidEnumValue",
     "properties.source.type"),
    ("pattern", lambda b: b["properties"]["distribute"][0].update(runOutputName="bad name"), "2025-10-01",
     "InvalidPattern", "properties.distribute[0].runOutputName"),
    ("range", lambda b: b["properties"].update(buildTimeoutInMinutes=9999), "2025-10-01", "OutOfRange",
     "properties.buildTimeoutInMinutes"),
    ("type", lambda b: b["properties"]["customize"][0].update(inline="echo"), "2025-10-01", "InvalidType",
     "properties.customize[0].inline"),
    ("exactly-one", lambda b: b["properties"]["customize"][0].update(scriptUri="https://example.test/a.sh"),
     "2025-10-01", "InvalidParameter", "properties.customize[0]"),
    ("only-with", _pwsh, "2025-10-01", "InvalidParameter", "properties.customize[1].runAsSystem"),
    ("identity", lambda b: b["identity"].update(userAssignedIdentities={}), "2025-10-01", "InvalidParameter",
     "identity.userAssignedIdentities"),
    ("unique", lambda b: b["properties"]["distribute"].append(copy.deepcopy(b["properties"]["distribute"][0])),
     "2025-10-01", "InvalidParameter", "properties.distribute[1].runOutputName"),
    ("resource-id", lambda b: b["properties"].update(stagingResourceGroup="nope"), "2025-10-01", "InvalidParameter",
     "properties.stagingResourceGroup"),
    ("version", lambda b: b["properties"].update(additionalDataDisks=[{"sizeGB": 1}]), "2024-02-01",
     "UnknownProperty", "properties.additionalDataDisks"),
    ("sha256", _file_sha, "2025-10-01", "InvalidPattern", "properties.customize[1].sha256Checksum"),
    ("together", lambda b: b["properties"].update(vmProfile={"vnetConfig": {"containerInstanceSubnetId": "x"}}),
     "2025-10-01", "InvalidParameter", "properties.vmProfile.vnetConfig.containerInstanceSubnetId"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_template_exits_1_with_the_path(tmp_path: Path, case: tuple) -> None:
    _, breakage, version, code, target = case
    body = minimal()
    breakage(body)
    path = write(tmp_path, body)
    r = invoke(["validate", path, "--api-version", version])
    assert r.exit_code == 1, r.output
    assert f"  {target}: " in r.stdout and f"[{code}]" in r.stdout, r.stdout
    r = invoke(["validate", path, "--api-version", version, "--json"])
    (item,) = json.loads(r.stdout)
    assert item["valid"] is False and {"code": code, "target": target} in [
        {"code": e["code"], "target": e.get("target")} for e in item["errors"]]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    body = minimal()
    body.pop("location")
    body["properties"]["source"]["type"] = "Floppy"
    body["properties"]["customize"][0]["inline"] = "echo"
    r = invoke(["validate", write(tmp_path, body)])
    assert r.exit_code == 1
    assert "3 errors" in r.stdout
    for target in ("location", "properties.source.type", "properties.customize[0].inline"):
        assert f"  {target}: " in r.stdout


def test_arm_resource_uses_its_api_version(tmp_path: Path) -> None:
    body = minimal()
    body["properties"]["autoRun"] = {"state": "Enabled"}  # 2024-02-01 and later only
    res = {"type": TYPE, "apiVersion": "2024-02-01", "name": "web", "dependsOn": ["x"], **body}
    r = invoke(["validate", write(tmp_path, res)])
    assert r.exit_code == 0, r.output
    assert "api-version 2024-02-01" in r.stdout
    res["apiVersion"] = "2022-07-01"  # lenient: autoRun is dropped silently
    assert invoke(["validate", write(tmp_path, res)]).exit_code == 0
    r = invoke(["validate", write(tmp_path, res), "--api-version", "2024-02-01"])
    assert r.exit_code == 0  # --api-version wins over the resource's apiVersion
    res["apiVersion"] = "2019-01-01"
    r = invoke(["validate", write(tmp_path, res)])
    assert r.exit_code == 1 and "InvalidApiVersionParameter" in r.stdout


def test_deployment_template_validates_every_image_template(tmp_path: Path) -> None:
    good = {"type": TYPE, "apiVersion": "2025-10-01", "name": "good", **minimal()}
    bad = {"type": TYPE, "apiVersion": "2025-10-01", "name": "bad", **minimal()}
    bad["properties"]["source"]["type"] = "Floppy"
    other = {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "id"}
    doc = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
           "contentVersion": "1.0.0.0", "resources": [other, good, bad]}
    r = invoke(["validate", write(tmp_path, doc)])
    assert r.exit_code == 1
    assert "resources[1] (good): valid" in r.stdout
    assert "resources[2] (bad): 1 error" in r.stdout and "  properties.source.type: " in r.stdout
    doc["resources"] = [other]
    r = invoke(["validate", write(tmp_path, doc)])
    assert r.exit_code == 1 and "NoImageTemplate" in r.stdout


def test_template_expressions_are_opaque(tmp_path: Path) -> None:
    body = minimal()
    body["location"] = "[resourceGroup().location]"
    body["identity"]["userAssignedIdentities"] = {
        "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('identity'))]": {}}
    body["properties"]["buildTimeoutInMinutes"] = "[parameters('timeout')]"
    body["properties"]["distribute"][0]["runOutputName"] = "[concat(parameters('name'), '-out')]"
    body["properties"]["customize"] = "[variables('steps')]"
    doc = {"parameters": {"timeout": {"type": "int"}},
           "resources": [{"type": TYPE, "apiVersion": "2025-10-01", "name": "[parameters('name')]", **body}]}
    r = invoke(["validate", write(tmp_path, doc)])
    assert r.exit_code == 0, r.output
    assert "not checked" in r.stdout
    body["properties"]["source"]["type"] = "Floppy"  # a real error next to expressions is still reported
    r = invoke(["validate", write(tmp_path, doc)])
    assert r.exit_code == 1 and "  properties.source.type: " in r.stdout


def test_bare_properties_object(tmp_path: Path) -> None:
    props = minimal()["properties"]
    r = invoke(["validate", write(tmp_path, props)])
    assert r.exit_code == 0, r.output
    assert "bare properties object" in r.stdout
    props["customize"][0]["inline"] = "echo"
    r = invoke(["validate", write(tmp_path, props)])
    assert r.exit_code == 1 and "  properties.customize[0].inline: " in r.stdout


def test_unreadable_or_non_json_input(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    r = invoke(["validate", p])
    assert r.exit_code == 1 and "InvalidRequestContent" in r.stdout
    r = invoke(["validate", tmp_path / "missing.json"])
    assert r.exit_code == 1


def test_several_files_exit_1_if_any_is_invalid(tmp_path: Path) -> None:
    bad = minimal()
    bad["identity"] = {"type": "Nobody"}
    r = invoke(["validate", write(tmp_path, minimal(), "a.json"), write(tmp_path, bad, "b.json")])
    assert r.exit_code == 1
    assert "a.json: valid" in r.stdout and "b.json: 1 error" in r.stdout
    assert "\x1b[" not in r.stdout, "no colour codes without a terminal"


def test_validate_needs_no_server(tmp_path: Path) -> None:
    r = invoke(["validate", write(tmp_path, minimal())], env={"VMFORGE_HOME": str(tmp_path / "nothing"),
                                                               "VMFORGE_SERVER": "https://127.0.0.1:1"})
    assert r.exit_code == 0
