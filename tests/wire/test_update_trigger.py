"""PATCH bodies (ImageTemplateUpdateParameters) and trigger PUT bodies."""

from __future__ import annotations

import pytest

from tests.wire.helpers import IDENTITY, errors_of, pairs
from vmforge import wire
from vmforge.errors import InvalidRequestContent

UNKNOWN, MISSING, ENUM, RANGE, INVALID = ("UnknownProperty", "MissingRequiredProperty", "InvalidEnumValue",
                                          "OutOfRange", "InvalidParameter")
DIST = [{"type": "VHD", "runOutputName": "vhd"}]
VM = {"vmSize": "Standard_D4s_v3", "osDiskSizeGB": 64}


def test_only_given_keys_come_back() -> None:
    for v in wire.API_VERSIONS:
        assert wire.validate_template_update({}, v) == {}
        assert wire.validate_template_update({"tags": {"a": "b"}}, v) == {"tags": {"a": "b"}}
        assert wire.validate_template_update({"identity": {"type": "None"}}, v) == {"identity": {"type": "None"}}


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_patch_distribute_since_2023_07_01(version: str) -> None:
    body = {"properties": {"distribute": DIST}}
    if version == "2022-07-01":  # no properties at all in 2022-07-01's PATCH schema; lenient: ignored
        assert wire.validate_template_update(body, version) == {}
    else:
        assert wire.validate_template_update(body, version) == body


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_patch_vm_profile_since_2024_02_01(version: str) -> None:
    body = {"properties": {"vmProfile": VM}}
    if version in wire.STRICT_VERSIONS:
        assert wire.validate_template_update(body, version) == body
    elif version == "2023-07-01":
        assert wire.validate_template_update(body, version) == {"properties": {}}
    else:
        assert wire.validate_template_update(body, version) == {}


@pytest.mark.parametrize("version", sorted(wire.STRICT_VERSIONS))
def test_patch_properties_other_than_distribute_and_vm_profile_rejected_when_strict(version: str) -> None:
    body = {"properties": {"source": {"type": "ManagedImage", "imageId": "x"}}, "location": "eastus"}
    assert pairs(errors_of(wire.validate_template_update, body, version)) == {
        (UNKNOWN, "properties.source"), (UNKNOWN, "location")}


def test_patch_is_validated_like_a_put() -> None:
    body = {
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}, IDENTITY + "2": {}}},
        "tags": {"a": 1},
        "properties": {
            "distribute": [{"type": "VHD", "runOutputName": "x"}, {"type": "ManagedImage", "runOutputName": "X",
                                                                   "imageId": "i"}],
            "vmProfile": {"osDiskSizeGB": -1, "vnetConfig": {"containerInstanceSubnetId": "aci"}},
        },
    }
    assert pairs(errors_of(wire.validate_template_update, body, "2025-10-01")) == {
        (INVALID, "identity.userAssignedIdentities"), ("InvalidType", "tags.a"),
        (MISSING, "properties.distribute[1].location"), (INVALID, "properties.distribute[1].runOutputName"),
        (RANGE, "properties.vmProfile.osDiskSizeGB"),
        (INVALID, "properties.vmProfile.vnetConfig.containerInstanceSubnetId"),
    }


def test_patch_distribute_must_not_be_empty() -> None:
    (d,) = errors_of(wire.validate_template_update, {"properties": {"distribute": []}}, "2024-02-01")
    assert (d.code, d.target) == (INVALID, "properties.distribute")


def test_patch_lenient_canonicalises() -> None:
    body = {"Properties": {"Distribute": [{"type": "vhd", "RunOutputName": "v"}]}, "Identity": {"type": "none"}}
    assert wire.validate_template_update(body, "2023-07-01") == {
        "properties": {"distribute": [{"type": "VHD", "runOutputName": "v"}]}, "identity": {"type": "None"}}


# ---------------------------------------------------------------------------------- triggers
@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_trigger(version: str) -> None:
    body = {"properties": {"kind": "SourceImage", "status": {"code": "Healthy"}, "provisioningState": "Succeeded"},
            "id": "x", "name": "source", "type": "Microsoft.VirtualMachineImages/imageTemplates/triggers"}
    assert wire.validate_trigger(body, version) == {"properties": {"kind": "SourceImage"}}


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_trigger_errors(version: str) -> None:
    (d,) = errors_of(wire.validate_trigger, {"properties": {"kind": "Cron"}}, version)
    assert (d.code, d.target) == (ENUM, "properties.kind")
    assert "'SourceImage'" in d.message and "'Schedule'" in d.message  # Schedule: vmforge's extension
    (d,) = errors_of(wire.validate_trigger, {"properties": {}}, version)
    assert (d.code, d.target) == (MISSING, "properties.kind")
    (d,) = errors_of(wire.validate_trigger, {}, version)
    assert (d.code, d.target) == (MISSING, "properties")


def test_trigger_unknown_property_strict_only() -> None:
    body = {"properties": {"kind": "SourceImage", "cron": "* * * * *"}}
    (d,) = errors_of(wire.validate_trigger, body, "2025-10-01")
    assert (d.code, d.target) == (UNKNOWN, "properties.cron")
    assert wire.validate_trigger(body, "2022-07-01") == {"properties": {"kind": "SourceImage"}}


@pytest.mark.parametrize("fn", [wire.validate_template, wire.validate_template_update, wire.validate_trigger])
@pytest.mark.parametrize("body", [[1, 2], "x", None, 5, True])
def test_body_not_an_object(fn, body) -> None:  # noqa: ANN001
    with pytest.raises(InvalidRequestContent) as e:
        fn(body, "2025-10-01")
    assert e.value.target is None
