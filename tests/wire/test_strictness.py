"""Strict (2024-02-01, 2025-10-01) versus lenient (2022-07-01, 2023-07-01) api-versions, version-specific
properties, read-only properties, and the bodies the Azure CLI sends."""

from __future__ import annotations

import copy

import pytest

from tests.wire.helpers import IDENTITY, errors_of, minimal, pairs
from vmforge import wire

STRICT = ("2024-02-01", "2025-10-01")
LENIENT = ("2022-07-01", "2023-07-01")
UNKNOWN, MISSING, ENUM = "UnknownProperty", "MissingRequiredProperty", "InvalidEnumValue"


def test_strict_versions_constant() -> None:
    assert wire.API_VERSIONS == ("2022-07-01", "2023-07-01", "2024-02-01", "2025-10-01")
    assert set(wire.STRICT_VERSIONS) == set(STRICT)


def _with_unknowns() -> dict:
    body = minimal()
    body["foo"] = 1
    body["identity"]["bar"] = True
    body["identity"]["userAssignedIdentities"][IDENTITY]["baz"] = "x"
    p = body["properties"]
    p["extra"] = {"deep": [1, 2, 3]}
    p["source"]["imageId"] = "not a PlatformImage field"
    p["customize"][0]["timeout"] = 5
    p["distribute"].append({"type": "SharedImage", "runOutputName": "g", "galleryImageId": "gid",
                            "targetRegions": [{"name": "westus", "zone": "1"}]})
    p["vmProfile"] = {"vnetConfig": {"subnetId": "s", "vnetName": "v"}}
    p["validate"] = {"inVMValidations": [{"type": "Shell", "inline": ["true"], "when": "always"}]}
    return body


UNKNOWN_TARGETS = {
    "foo", "identity.bar", f"identity.userAssignedIdentities['{IDENTITY}'].baz", "properties.extra",
    "properties.source.imageId", "properties.customize[0].timeout", "properties.distribute[1].targetRegions[0].zone",
    "properties.vmProfile.vnetConfig.vnetName", "properties.validate.inVMValidations[0].when",
}


@pytest.mark.parametrize("version", STRICT)
def test_unknown_properties_are_rejected_at_every_level_in_strict_versions(version: str) -> None:
    details = errors_of(wire.validate_template, _with_unknowns(), version)
    assert pairs(details) == {(UNKNOWN, t) for t in UNKNOWN_TARGETS}


@pytest.mark.parametrize("version", LENIENT)
def test_unknown_properties_are_dropped_in_lenient_versions(version: str) -> None:
    out = wire.validate_template(_with_unknowns(), version)
    expected = wire.validate_template(minimal(), version)
    expected["properties"]["distribute"].append({"type": "SharedImage", "runOutputName": "g", "galleryImageId": "gid",
                                                 "targetRegions": [{"name": "westus"}]})
    expected["properties"]["vmProfile"] = {"vnetConfig": {"subnetId": "s"}}
    expected["properties"]["validate"] = {"inVMValidations": [{"type": "Shell", "inline": ["true"]}]}
    assert out == expected


def test_lowercase_discriminator_accepted_and_canonicalised_in_2023_07_01() -> None:
    body = minimal()
    body["properties"]["customize"][0]["type"] = "shell"
    body["properties"]["source"]["type"] = "platformimage"
    body["properties"]["distribute"][0]["type"] = "MANAGEDIMAGE"
    out = wire.validate_template(body, "2023-07-01")
    assert out["properties"]["customize"][0]["type"] == "Shell"
    assert out["properties"]["source"]["type"] == "PlatformImage"
    assert out["properties"]["distribute"][0]["type"] == "ManagedImage"
    assert out == wire.validate_template(minimal(), "2023-07-01")


@pytest.mark.parametrize("version", STRICT)
def test_lowercase_discriminator_rejected_in_strict_versions(version: str) -> None:
    body = minimal()
    body["properties"]["customize"][0]["type"] = "shell"
    (d,) = errors_of(wire.validate_template, body, version)
    assert (d.code, d.target) == (ENUM, "properties.customize[0].type")
    assert "did you mean 'Shell'" in d.message


def test_enum_values_case_insensitive_in_lenient_versions() -> None:
    body = minimal()
    body["identity"]["type"] = "userassigned"
    body["properties"]["optimize"] = {"vmBoot": {"state": "enabled"}}
    body["properties"]["errorHandling"] = {"onCustomizerError": "Abort", "onValidationError": "CLEANUP"}
    body["properties"]["distribute"].append({"type": "sharedimage", "runOutputName": "g", "galleryImageId": "gid",
                                             "replicationRegions": ["westus"], "storageAccountType": "standard_lrs",
                                             "versioning": {"scheme": "latest"}})
    out = wire.validate_template(body, "2023-07-01")
    assert out["identity"]["type"] == "UserAssigned"
    assert out["properties"]["optimize"] == {"vmBoot": {"state": "Enabled"}}
    assert out["properties"]["errorHandling"] == {"onCustomizerError": "abort", "onValidationError": "cleanup"}
    gallery = out["properties"]["distribute"][1]
    assert (gallery["type"], gallery["storageAccountType"], gallery["versioning"]) == (
        "SharedImage", "Standard_LRS", {"scheme": "Latest"})
    # The same body under a strict version: every value in the wrong case is an error.
    details = errors_of(wire.validate_template, body, "2024-02-01")
    assert pairs(details) == {
        (ENUM, "identity.type"), (ENUM, "properties.optimize.vmBoot.state"),
        (ENUM, "properties.errorHandling.onCustomizerError"), (ENUM, "properties.errorHandling.onValidationError"),
        (ENUM, "properties.distribute[1].type"),
    }


def test_property_names_case_insensitive_in_lenient_versions() -> None:
    body = minimal()
    body["Location"] = body.pop("location")
    body["IDENTITY"] = body.pop("identity")
    props = body.pop("properties")
    props["Customize"] = props.pop("customize")
    props["Customize"][0]["Type"] = props["Customize"][0].pop("type")
    props["Customize"][0]["INLINE"] = props["Customize"][0].pop("inline")
    props["vmprofile"] = {"OSDiskSizeGB": 30, "VMSIZE": "Standard_D2s_v3"}
    body["Properties"] = props
    for version in LENIENT:
        out = wire.validate_template(copy.deepcopy(body), version)
        expected = wire.validate_template(minimal(), version)
        expected["properties"]["vmProfile"] = {"osDiskSizeGB": 30, "vmSize": "Standard_D2s_v3"}
        assert out == expected
    details = errors_of(wire.validate_template, copy.deepcopy(body), "2025-10-01")
    assert (UNKNOWN, "Location") in pairs(details) and (MISSING, "location") in pairs(details)


@pytest.mark.parametrize("version", STRICT)
def test_property_names_case_sensitive_in_strict_versions(version: str) -> None:
    body = minimal()
    body["properties"]["customize"][0]["Inline"] = body["properties"]["customize"][0].pop("inline")
    details = errors_of(wire.validate_template, body, version)
    assert pairs(details) == {(UNKNOWN, "properties.customize[0].Inline"),
                              ("InvalidParameter", "properties.customize[0]")}


# ---------------------------------------------------------------------------------- version-specific properties
NEWER = [
    # (property path under properties, value, first version)
    ("errorHandling", {"onCustomizerError": "abort"}, "2023-07-01"),
    ("autoRun", {"state": "Enabled"}, "2024-02-01"),
    ("managedResourceTags", {"team": "imaging"}, "2024-02-01"),
    ("additionalDataDisks", [{"sizeGB": 32}], "2025-10-01"),
]


@pytest.mark.parametrize("name,value,since", NEWER, ids=[n for n, _, _ in NEWER])
@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_properties_of_newer_versions(name: str, value: object, since: str, version: str) -> None:
    body = minimal()
    body["properties"][name] = value
    if wire.API_VERSIONS.index(version) >= wire.API_VERSIONS.index(since):
        assert wire.validate_template(body, version)["properties"][name] == value
    elif version in STRICT:
        (d,) = errors_of(wire.validate_template, body, version)
        assert (d.code, d.target) == (UNKNOWN, f"properties.{name}")
        assert version in d.message
    else:
        assert name not in wire.validate_template(body, version)["properties"]


def test_nested_properties_of_newer_versions() -> None:
    body = minimal()
    body["properties"]["optimize"] = {"vmBoot": {"state": "Enabled"}, "workload": {"state": "Enabled"}}
    body["properties"]["vmProfile"] = {"vnetConfig": {"subnetId": "s", "containerInstanceSubnetId": "aci"}}
    body["properties"]["distribute"].append({"type": "SharedImage", "runOutputName": "g", "galleryImageId": "gid",
                                             "replicationRegions": ["westus"], "replicationMode": "Shallow"})
    assert wire.validate_template(copy.deepcopy(body), "2025-10-01")["properties"] == body["properties"]
    assert pairs(errors_of(wire.validate_template, copy.deepcopy(body), "2024-02-01")) == {
        (UNKNOWN, "properties.optimize.workload"), (UNKNOWN, "properties.distribute[1].replicationMode")}
    out = wire.validate_template(copy.deepcopy(body), "2023-07-01")["properties"]
    assert out["optimize"] == {"vmBoot": {"state": "Enabled"}}
    assert out["vmProfile"] == {"vnetConfig": {"subnetId": "s"}}
    assert "replicationMode" not in out["distribute"][1]


# ---------------------------------------------------------------------------------- read-only properties
@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_read_only_properties_sent_back_are_ignored(version: str) -> None:
    body = minimal()
    body.update(id="/subscriptions/x/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t",
                name="t", type="Microsoft.VirtualMachineImages/imageTemplates", systemData={"createdBy": "me"})
    body["identity"]["userAssignedIdentities"][IDENTITY] = {"principalId": "p", "clientId": "c"}
    p = body["properties"]
    p.update(provisioningState="Succeeded", provisioningError={"provisioningErrorCode": "Other", "message": ""},
             lastRunStatus={"runState": "Succeeded"}, exactStagingResourceGroup="/subscriptions/x/resourceGroups/IT_x")
    p["source"]["exactVersion"] = "24.04.202401010"
    assert wire.validate_template(body, version) == wire.validate_template(minimal(), version)


# ---------------------------------------------------------------------------------- what the Azure CLI sends
def _cli_body() -> dict:
    """The shape of `az image builder create` (CLI 2.91, api-version 2023-07-01): sha256Checksum "", an empty
    vmProfile, and the identity id with a lowercase "resourcegroups" segment."""
    ident = IDENTITY.replace("resourceGroups", "resourcegroups")
    return {
        "location": "westus",
        "tags": {},
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {ident: {}}},
        "properties": {
            "source": {"type": "PlatformImage", "publisher": "Canonical", "offer": "UbuntuServer",
                       "sku": "18.04-LTS", "version": "latest"},
            "customize": [{"name": "script", "type": "Shell", "scriptUri": "https://example.com/s.sh",
                           "sha256Checksum": ""},
                          {"name": "inline", "type": "Shell", "inline": ["echo hi"], "sha256Checksum": ""}],
            "distribute": [{"type": "ManagedImage", "runOutputName": "img", "location": "westus",
                            "imageId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/img",
                            "artifactTags": {}}],
            "buildTimeoutInMinutes": 0,
            "vmProfile": {},
        },
    }


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_azure_cli_body_is_accepted_as_sent(version: str) -> None:
    body = _cli_body()
    out = wire.validate_template(copy.deepcopy(body), version)
    # Identity keys are kept exactly as sent (lowercase "resourcegroups" included).
    assert list(out["identity"]["userAssignedIdentities"]) == list(body["identity"]["userAssignedIdentities"])
    assert out["properties"]["customize"][0]["sha256Checksum"] == ""
    assert out["properties"]["vmProfile"] == {}
    assert out["properties"] == body["properties"]


@pytest.mark.parametrize("version", LENIENT)
def test_trigger_kind_case_insensitive_in_lenient_versions(version: str) -> None:
    assert wire.validate_trigger({"properties": {"Kind": "sourceimage"}}, version) == {
        "properties": {"kind": "SourceImage"}}


@pytest.mark.parametrize("version", STRICT)
def test_trigger_kind_case_sensitive_in_strict_versions(version: str) -> None:
    (d,) = errors_of(wire.validate_trigger, {"properties": {"kind": "sourceimage"}}, version)
    assert (d.code, d.target) == (ENUM, "properties.kind")
