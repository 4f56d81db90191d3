"""One broken template per rule: the error code and target of each violation, and every violation at once.

Each case mutates ``minimal()`` (a valid template) and names the exact set of (code, target) it must produce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.wire.helpers import IDENTITY, SUB, errors_of, minimal, pairs
from vmforge import wire

MISSING, UNKNOWN, ENUM = "MissingRequiredProperty", "UnknownProperty", "InvalidEnumValue"
PATTERN, RANGE, TYPE, INVALID = "InvalidPattern", "OutOfRange", "InvalidType", "InvalidParameter"

ALL = wire.API_VERSIONS
SINCE_2023 = ALL[1:]
SINCE_2024 = ALL[2:]
LATEST = ALL[-1:]

Body = dict[str, Any]


def props(body: Body) -> Body:
    return body["properties"]


def gallery(**extra: Any) -> Body:
    d = {"type": "SharedImage", "runOutputName": "gallery1",
         "galleryImageId": f"{SUB}/resourceGroups/rg1/providers/Microsoft.Compute/galleries/g/images/i"}
    d.update(extra)
    return d


def set_(path: str, value: Any) -> Callable[[Body], None]:
    """A mutation setting (or, with value ``DEL``, deleting) a dotted path such as ``properties.customize.0.inline``."""

    def mutate(body: Body) -> None:
        *head, last = path.split(".")
        cur: Any = body
        for part in head:
            cur = cur[int(part)] if isinstance(cur, list) else cur.setdefault(part, {})
        key: Any = int(last) if isinstance(cur, list) else last
        if value is DEL:
            del cur[key]
        elif isinstance(cur, list) and key == len(cur):
            cur.append(value)
        else:
            cur[key] = value

    return mutate


DEL = object()
C0 = "properties.customize[0]"
D0 = "properties.distribute[0]"

# (id, versions, mutation, expected {(code, target)})
CASES: list[tuple[str, tuple[str, ...], Callable[[Body], None], set[tuple[str, str]]]] = [
    # ---- rule 1: required properties
    ("required-location", ALL, set_("location", DEL), {(MISSING, "location")}),
    ("required-identity", ALL, set_("identity", DEL), {(MISSING, "identity")}),
    ("required-identity-type", ALL, set_("identity.type", DEL), {(MISSING, "identity.type")}),
    ("required-properties", ALL, set_("properties", DEL), {(MISSING, "properties")}),
    ("required-source", ALL, set_("properties.source", DEL), {(MISSING, "properties.source")}),
    ("required-distribute", ALL, set_("properties.distribute", DEL), {(MISSING, "properties.distribute")}),
    ("required-runOutputName", ALL, set_("properties.distribute.0.runOutputName", DEL),
     {(MISSING, f"{D0}.runOutputName")}),
    ("required-managed-image-imageId", ALL, set_("properties.distribute.0.imageId", DEL), {(MISSING, f"{D0}.imageId")}),
    ("required-managed-image-location", ALL, set_("properties.distribute.0.location", None),
     {(MISSING, f"{D0}.location")}),
    ("required-gallery-image-id", ALL, set_("properties.distribute.1", {"type": "SharedImage", "runOutputName": "g",
                                                                        "replicationRegions": ["westus"]}),
     {(MISSING, "properties.distribute[1].galleryImageId")}),
    ("required-target-region-name", ALL, set_("properties.distribute.1", gallery(targetRegions=[{"replicaCount": 2}])),
     {(MISSING, "properties.distribute[1].targetRegions[0].name")}),
    ("required-source-imageId", ALL, set_("properties.source", {"type": "ManagedImage"}),
     {(MISSING, "properties.source.imageId")}),
    ("required-source-imageVersionId", ALL, set_("properties.source", {"type": "SharedImageVersion"}),
     {(MISSING, "properties.source.imageVersionId")}),
    ("required-plan-info", ALL, set_("properties.source.planInfo", {"planName": "n", "planProduct": "p"}),
     {(MISSING, "properties.source.planInfo.planPublisher")}),
    ("required-customizer-type", ALL, set_("properties.customize.0.type", DEL), {(MISSING, f"{C0}.type")}),
    ("required-versioning-scheme", ALL,
     set_("properties.distribute.1", gallery(replicationRegions=["westus"], versioning={"major": 1})),
     {(MISSING, "properties.distribute[1].versioning.scheme")}),
    ("required-location-not-empty", ALL, set_("location", ""), {(INVALID, "location")}),
    # ---- rule 1: pattern
    ("pattern-runOutputName", ALL, set_("properties.distribute.0.runOutputName", "bad name!"),
     {(PATTERN, f"{D0}.runOutputName")}),
    ("pattern-runOutputName-too-long", ALL, set_("properties.distribute.0.runOutputName", "a" * 65),
     {(PATTERN, f"{D0}.runOutputName")}),
    # ---- rule 1: minimum / maximum
    ("range-buildTimeout-max", ALL, set_("properties.buildTimeoutInMinutes", 961),
     {(RANGE, "properties.buildTimeoutInMinutes")}),
    ("range-buildTimeout-min", ALL, set_("properties.buildTimeoutInMinutes", -1),
     {(RANGE, "properties.buildTimeoutInMinutes")}),
    ("range-replicaCount", ALL,
     set_("properties.distribute.1", gallery(targetRegions=[{"name": "westus", "replicaCount": 0}])),
     {(RANGE, "properties.distribute[1].targetRegions[0].replicaCount")}),
    ("range-osDiskSizeGB", ALL, set_("properties.vmProfile", {"osDiskSizeGB": -1}),
     {(RANGE, "properties.vmProfile.osDiskSizeGB")}),
    ("range-updateLimit", ALL, set_("properties.customize.1", {"type": "WindowsUpdate", "updateLimit": -1}),
     {(RANGE, "properties.customize[1].updateLimit")}),
    ("range-versioning-major", ALL,
     set_("properties.distribute.1", gallery(replicationRegions=["westus"], versioning={"scheme": "Latest",
                                                                                       "major": -2})),
     {(RANGE, "properties.distribute[1].versioning.major")}),
    ("range-dataDisk-sizeGB", LATEST, set_("properties.additionalDataDisks", [{"sizeGB": 1}, {"sizeGB": -1}]),
     {(RANGE, "properties.additionalDataDisks[1].sizeGB")}),
    ("range-int32", ALL, set_("properties.customize.1", {"type": "PowerShell", "inline": ["x"],
                                                         "validExitCodes": [0, 2**31]}),
     {(RANGE, "properties.customize[1].validExitCodes[1]")}),
    # ---- rule 1: enums
    ("enum-identity-type", ALL, set_("identity.type", "SystemAssigned"), {(ENUM, "identity.type")}),
    ("enum-storageAccountType", ALL,
     set_("properties.distribute.1", gallery(replicationRegions=["westus"], storageAccountType="Premium_ZRS")),
     {(ENUM, "properties.distribute[1].storageAccountType")}),
    ("enum-target-region-storageAccountType", ALL,
     set_("properties.distribute.1", gallery(targetRegions=[{"name": "westus", "storageAccountType": "Standard_GRS"}])),
     {(ENUM, "properties.distribute[1].targetRegions[0].storageAccountType")}),
    ("enum-autoRun-state", SINCE_2024, set_("properties.autoRun", {"state": "On"}),
     {(ENUM, "properties.autoRun.state")}),
    ("enum-vmBoot-state", ALL, set_("properties.optimize", {"vmBoot": {"state": "Yes"}}),
     {(ENUM, "properties.optimize.vmBoot.state")}),
    ("enum-workload-state", LATEST, set_("properties.optimize", {"workload": {"state": "Maybe"}}),
     {(ENUM, "properties.optimize.workload.state")}),
    ("enum-onCustomizerError", SINCE_2023, set_("properties.errorHandling", {"onCustomizerError": "retry"}),
     {(ENUM, "properties.errorHandling.onCustomizerError")}),
    ("enum-onValidationError", SINCE_2023, set_("properties.errorHandling", {"onValidationError": "ignore"}),
     {(ENUM, "properties.errorHandling.onValidationError")}),
    ("enum-replicationMode", LATEST,
     set_("properties.distribute.1", gallery(replicationRegions=["westus"], replicationMode="Deep")),
     {(ENUM, "properties.distribute[1].replicationMode")}),
    # ---- rule 1: discriminators (unknown values name the allowed ones: see test_unknown_discriminator_message)
    ("disc-source-type", ALL, set_("properties.source.type", "Docker"), {(ENUM, "properties.source.type")}),
    ("disc-customizer-type", ALL, set_("properties.customize.0.type", "Ansible"), {(ENUM, f"{C0}.type")}),
    ("disc-validator-type", ALL,
     set_("properties.validate", {"inVMValidations": [{"type": "WindowsRestart"}]}),
     {(ENUM, "properties.validate.inVMValidations[0].type")}),
    ("disc-distributor-type", ALL, set_("properties.distribute.0.type", "Blob"), {(ENUM, f"{D0}.type")}),
    ("disc-versioning-scheme", ALL,
     set_("properties.distribute.1", gallery(replicationRegions=["westus"], versioning={"scheme": "Semver"})),
     {(ENUM, "properties.distribute[1].versioning.scheme")}),
    # ---- rule 1: JSON types
    ("type-string", ALL, set_("location", 5), {(TYPE, "location")}),
    ("type-integer", ALL, set_("properties.buildTimeoutInMinutes", "60"), {(TYPE, "properties.buildTimeoutInMinutes")}),
    ("type-integer-not-bool", ALL, set_("properties.buildTimeoutInMinutes", True),
     {(TYPE, "properties.buildTimeoutInMinutes")}),
    ("type-boolean", ALL, set_("properties.customize.1", {"type": "PowerShell", "inline": ["x"], "runElevated": "yes"}),
     {(TYPE, "properties.customize[1].runElevated")}),
    ("type-array", ALL, set_("properties.customize.0.inline", "echo hi"), {(TYPE, f"{C0}.inline")}),
    ("type-array-item", ALL, set_("properties.customize.0.inline", ["echo", 1]), {(TYPE, f"{C0}.inline[1]")}),
    ("type-object", ALL, set_("properties.vmProfile", "Standard_D2s_v3"), {(TYPE, "properties.vmProfile")}),
    ("type-object-properties", ALL, set_("properties", []), {(TYPE, "properties")}),
    ("type-object-list-item", ALL, set_("properties.customize.0", "Shell"), {(TYPE, C0)}),
    ("type-map-values", ALL, set_("tags", {"a": 1}), {(TYPE, "tags.a")}),
    # ---- rule 2: exactly one of scriptUri / inline (customizers and validators)
    ("shell-customizer-neither", ALL, set_("properties.customize.0.inline", DEL), {(INVALID, C0)}),
    ("shell-customizer-both", ALL, set_("properties.customize.0.scriptUri", "https://x/s.sh"), {(INVALID, C0)}),
    ("shell-customizer-empty-inline", ALL, set_("properties.customize.0.inline", []), {(INVALID, C0)}),
    ("powershell-customizer-neither", ALL, set_("properties.customize.1", {"type": "PowerShell"}),
     {(INVALID, "properties.customize[1]")}),
    ("powershell-customizer-both", ALL,
     set_("properties.customize.1", {"type": "PowerShell", "inline": ["x"], "scriptUri": "https://x/s.ps1"}),
     {(INVALID, "properties.customize[1]")}),
    ("shell-validator-neither", ALL, set_("properties.validate", {"inVMValidations": [{"type": "Shell"}]}),
     {(INVALID, "properties.validate.inVMValidations[0]")}),
    ("powershell-validator-both", ALL,
     set_("properties.validate", {"inVMValidations": [{"type": "PowerShell", "inline": ["x"], "scriptUri": "u"}]}),
     {(INVALID, "properties.validate.inVMValidations[0]")}),
    # ---- rule 2: runAsSystem only with runElevated
    ("runAsSystem-customizer", ALL,
     set_("properties.customize.1", {"type": "PowerShell", "inline": ["x"], "runAsSystem": True}),
     {(INVALID, "properties.customize[1].runAsSystem")}),
    ("runAsSystem-validator", ALL,
     set_("properties.validate", {"inVMValidations": [{"type": "PowerShell", "inline": ["x"], "runAsSystem": True,
                                                       "runElevated": False}]}),
     {(INVALID, "properties.validate.inVMValidations[0].runAsSystem")}),
    # ---- rule 2: SharedImage: replicationRegions XOR targetRegions (targetRegions exists since 2022-07-01)
    ("gallery-both-region-lists", ALL,
     set_("properties.distribute.1", gallery(replicationRegions=["westus"], targetRegions=[{"name": "westus"}])),
     {(INVALID, "properties.distribute[1]")}),
    ("gallery-no-region-list", ALL, set_("properties.distribute.1", gallery()),
     {(INVALID, "properties.distribute[1]")}),
    ("gallery-storageAccountType-with-targetRegions", ALL,
     set_("properties.distribute.1", gallery(targetRegions=[{"name": "westus"}], storageAccountType="Standard_LRS")),
     {(INVALID, "properties.distribute[1].storageAccountType")}),
    # ---- rule 2: vnetConfig (containerInstanceSubnetId exists since 2024-02-01)
    ("vnet-aci-subnet-without-subnet", SINCE_2024,
     set_("properties.vmProfile", {"vnetConfig": {"containerInstanceSubnetId": "aci"}}),
     {(INVALID, "properties.vmProfile.vnetConfig.containerInstanceSubnetId")}),
    ("vnet-aci-subnet-with-proxy-vm", SINCE_2024,
     set_("properties.vmProfile", {"vnetConfig": {"subnetId": "s", "containerInstanceSubnetId": "a",
                                                  "proxyVmSize": "Standard_A1_v2"}}),
     {(INVALID, "properties.vmProfile.vnetConfig.proxyVmSize")}),
    # ---- rule 2: identities
    ("identity-two-user-assigned", ALL,
     set_("identity.userAssignedIdentities", {IDENTITY: {}, IDENTITY.replace("identity_1", "identity_2"): {}}),
     {(INVALID, "identity.userAssignedIdentities")}),
    ("identity-user-assigned-without-ids", ALL, set_("identity.userAssignedIdentities", DEL),
     {(INVALID, "identity.userAssignedIdentities")}),
    ("identity-none-with-ids", ALL, set_("identity.type", "None"), {(INVALID, "identity.userAssignedIdentities")}),
    ("identity-key-not-an-identity-id", ALL, set_("identity.userAssignedIdentities", {"identity_1": {}}),
     {(INVALID, "identity.userAssignedIdentities.identity_1")}),
    # ---- rule 2: File destination absolute
    ("file-customizer-relative-destination", ALL,
     set_("properties.customize.1", {"type": "File", "sourceUri": "https://x/f", "destination": "tmp/f"}),
     {(INVALID, "properties.customize[1].destination")}),
    ("file-validator-relative-destination", ALL,
     set_("properties.validate", {"inVMValidations": [{"type": "File", "sourceUri": "u", "destination": "f.txt"}]}),
     {(INVALID, "properties.validate.inVMValidations[0].destination")}),
    ("file-customizer-needs-source-and-destination", ALL, set_("properties.customize.1", {"type": "File"}),
     {(MISSING, "properties.customize[1].sourceUri"), (MISSING, "properties.customize[1].destination")}),
    # ---- rule 2: sha256Checksum "" or 64 hex digits
    ("sha256-short", ALL, set_("properties.customize.0", {"type": "Shell", "scriptUri": "u", "sha256Checksum": "abc"}),
     {(PATTERN, f"{C0}.sha256Checksum")}),
    ("sha256-not-hex", ALL,
     set_("properties.customize.0", {"type": "Shell", "scriptUri": "u", "sha256Checksum": "g" * 64}),
     {(PATTERN, f"{C0}.sha256Checksum")}),
    ("sha256-file-validator", ALL,
     set_("properties.validate", {"inVMValidations": [{"type": "File", "sourceUri": "u", "destination": "/f",
                                                       "sha256Checksum": "0" * 63}]}),
     {(PATTERN, "properties.validate.inVMValidations[0].sha256Checksum")}),
    ("sha256-workload", LATEST, set_("properties.optimize", {"workload": {"scriptUri": "u", "sha256Checksum": "x"}}),
     {(PATTERN, "properties.optimize.workload.sha256Checksum")}),
    ("sha256-with-inline-only", ALL, set_("properties.customize.0.sha256Checksum", "a" * 64),
     {(INVALID, f"{C0}.sha256Checksum")}),
    # ---- rule 2: runOutputName unique across distribute[] (case-insensitively), at least one target
    ("runOutputName-unique", ALL,
     set_("properties.distribute.1", {"type": "VHD", "runOutputName": "OUT1"}),
     {(INVALID, "properties.distribute[1].runOutputName")}),
    ("distribute-not-empty", ALL, set_("properties.distribute", []), {(INVALID, "properties.distribute")}),
    # ---- rule 2: PlatformImage needs publisher, offer, sku and version (the service requires them)
    ("platform-image-fields", ALL, set_("properties.source", {"type": "PlatformImage", "publisher": "Canonical"}),
     {(MISSING, "properties.source.offer"), (MISSING, "properties.source.sku"),
      (MISSING, "properties.source.version")}),
    # ---- service rules
    ("staging-resource-group-id", ALL, set_("properties.stagingResourceGroup", "my-staging-rg"),
     {(INVALID, "properties.stagingResourceGroup")}),
    ("restart-timeout-format", ALL,
     set_("properties.customize.1", {"type": "WindowsRestart", "restartTimeout": "5 min"}),
     {(PATTERN, "properties.customize[1].restartTimeout")}),
]


def _cases() -> list[Any]:
    out = []
    for case_id, versions, mutate, expected in CASES:
        for v in versions:
            out.append(pytest.param(v, mutate, expected, id=f"{case_id}-{v}"))
    return out


def test_the_base_template_is_valid_in_every_version() -> None:
    for v in ALL:
        out = wire.validate_template(minimal(), v)
        assert out["properties"]["customize"] == [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}]


@pytest.mark.parametrize("version,mutate,expected", _cases())
def test_broken_template(version: str, mutate: Callable[[Body], None], expected: set[tuple[str, str]]) -> None:
    body = minimal()
    mutate(body)
    assert pairs(errors_of(wire.validate_template, body, version)) == expected


def test_three_independent_errors_come_back_together() -> None:
    body = minimal()
    props(body)["buildTimeoutInMinutes"] = 5000  # schema (pydantic)
    props(body)["distribute"][0]["runOutputName"] = "bad name"  # schema (pydantic)
    props(body)["customize"][0]["scriptUri"] = "https://x/s.sh"  # prose rule (second pass)
    for v in ALL:
        details = errors_of(wire.validate_template, body, v)
        assert len(details) == 3
        assert pairs(details) == {(RANGE, "properties.buildTimeoutInMinutes"), (PATTERN, f"{D0}.runOutputName"),
                                  (INVALID, C0)}


def test_errors_of_both_passes_and_unknown_properties_together_in_a_strict_version() -> None:
    body = minimal()
    body["properties"]["source"] = {"type": "PlatformImage", "publisher": "p"}  # 3 prose (required by service)
    props(body)["customize"].append({"type": "PowerShell", "inline": ["x"], "runAsSystem": True})  # prose
    props(body)["vmProfile"] = {"osDiskSizeGB": -5, "vmsize": "x"}  # schema + unknown (case-sensitive)
    props(body)["distribute"].append({"type": "VHD", "runOutputName": "out1"})  # prose (unique)
    details = errors_of(wire.validate_template, body, "2025-10-01")
    assert pairs(details) == {
        (MISSING, "properties.source.offer"), (MISSING, "properties.source.sku"),
        (MISSING, "properties.source.version"), (INVALID, "properties.customize[1].runAsSystem"),
        (RANGE, "properties.vmProfile.osDiskSizeGB"), (UNKNOWN, "properties.vmProfile.vmsize"),
        (INVALID, "properties.distribute[1].runOutputName"),
    }
    assert len(details) == 7
    hint = next(d for d in details if d.code == UNKNOWN)
    assert "did you mean 'vmSize'" in hint.message


@pytest.mark.parametrize("version", ALL)
def test_unknown_discriminator_message_names_the_allowed_values(version: str) -> None:
    body = minimal()
    props(body)["source"]["type"] = "Docker"
    props(body)["customize"][0]["type"] = "Ansible"
    props(body)["distribute"][0]["type"] = "Blob"
    msgs = {d.target: d.message for d in errors_of(wire.validate_template, body, version)}
    for allowed in ("'PlatformImage'", "'ManagedImage'", "'SharedImageVersion'"):
        assert allowed in msgs["properties.source.type"]
    for allowed in ("'Shell'", "'WindowsRestart'", "'WindowsUpdate'", "'PowerShell'", "'File'"):
        assert allowed in msgs[f"{C0}.type"]
    for allowed in ("'ManagedImage'", "'SharedImage'", "'VHD'"):
        assert allowed in msgs[f"{D0}.type"]


def test_enum_message_names_the_allowed_values() -> None:
    body = minimal()
    body["identity"]["type"] = "SystemAssigned"
    (d,) = errors_of(wire.validate_template, body, "2025-10-01")
    assert "'UserAssigned'" in d.message and "'None'" in d.message


def test_type_messages_name_the_json_type() -> None:
    body = minimal()
    body["location"] = 1
    props(body)["buildTimeoutInMinutes"] = "60"
    props(body)["customize"][0]["inline"] = "x"
    props(body)["vmProfile"] = []
    props(body)["validate"] = {"sourceValidationOnly": "true"}
    msgs = {d.target: d.message for d in errors_of(wire.validate_template, body, "2025-10-01")}
    assert "a string" in msgs["location"]
    assert "an integer" in msgs["properties.buildTimeoutInMinutes"]
    assert "an array" in msgs[f"{C0}.inline"]
    assert "an object" in msgs["properties.vmProfile"]
    assert "a boolean" in msgs["properties.validate.sourceValidationOnly"]


@pytest.mark.parametrize("version", ALL)
def test_valid_variants_of_the_rules_pass(version: str) -> None:
    """The other side of each prose rule: what it allows."""
    body = minimal()
    p = props(body)
    p["customize"] = [
        {"type": "Shell", "scriptUri": "https://x/s.sh", "sha256Checksum": "A" * 64},  # no name: optional
        {"type": "PowerShell", "scriptUri": "https://x/s.ps1", "sha256Checksum": "",
         "runElevated": True, "runAsSystem": True},
        {"type": "File", "sourceUri": "https://x/f", "destination": "C:\\temp\\f.txt"},
        {"type": "File", "sourceUri": "https://x/f", "destination": "/tmp/f.txt"},
        {"type": "WindowsRestart", "restartTimeout": "1h30m"},
        {"type": "WindowsUpdate", "updateLimit": 0, "filters": [], "searchCriteria": ""},
    ]
    p["validate"] = {"inVMValidations": [{"type": "Shell", "inline": ["true"]},
                                         {"type": "File", "sourceUri": "u", "destination": "D:/v.txt"}]}
    p["distribute"] += [
        gallery(runOutputName="g1", replicationRegions=["westus"], storageAccountType="Standard_ZRS"),
        gallery(runOutputName="g2", targetRegions=[{"name": "westus", "replicaCount": 1,
                                                    "storageAccountType": "Premium_LRS"}],
                versioning={"scheme": "Latest", "major": -1}),
        gallery(runOutputName="g3", replicationRegions=["westus"], targetRegions=[], versioning={"scheme": "Source"}),
        {"type": "VHD", "runOutputName": "vhd"},
    ]
    p["buildTimeoutInMinutes"] = 960
    p["vmProfile"] = {"osDiskSizeGB": 0, "vnetConfig": {"subnetId": "s", "proxyVmSize": ""}}
    p["stagingResourceGroup"] = f"{SUB}/resourcegroups/staging"
    body["identity"] = {"type": "None"}
    out = wire.validate_template(body, version)
    assert out["properties"]["customize"][1]["runAsSystem"] is True
    assert out["properties"]["customize"][0] == p["customize"][0]
