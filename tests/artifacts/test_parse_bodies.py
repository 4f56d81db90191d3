"""How the artifact services read a Compute body once the wire model has accepted it: the one source of an image
disk, what vmforge cannot build (a VM capture), a version's source and its replica regions."""

from __future__ import annotations

import pytest

from vmforge.artifacts.gallery_versions import Region, _parse
from vmforge.artifacts.images import parse_image
from vmforge.errors import ValidationFailed

IMG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/base"


def osdisk(**disk: object) -> dict:
    return {"location": "westus", "properties": {"storageProfile": {"osDisk": {
        "osType": "linux", "osState": "Generalized", **disk}}}}


def test_an_image_disk_is_read_from_its_one_source() -> None:
    spec = parse_image(osdisk(managedDisk={"id": ""}, snapshot={"id": IMG}))
    assert (spec.blob_uri, spec.copy_from, spec.os_type, spec.hyper_v_generation) == (None, IMG, "Linux", "V1")
    spec = parse_image(osdisk(blobUri="file:///imports/disk.vhd", managedDisk={}))
    assert (spec.blob_uri, spec.copy_from) == ("file:///imports/disk.vhd", None)


def test_what_vmforge_cannot_build_is_refused_with_its_path() -> None:
    with pytest.raises(ValidationFailed) as e:
        parse_image({"location": "westus", "properties": {"sourceVirtualMachine": {"id": "/vm"}}})
    assert [(d.code, d.target) for d in e.value.details] == [("InvalidParameter", "properties.sourceVirtualMachine")]
    with pytest.raises(ValidationFailed) as e:
        _parse({"location": "westus", "properties": {"storageProfile": {"osDiskImage": {"source": {"id": IMG}}}}})
    assert [(d.code, d.target) for d in e.value.details] == [
        ("MissingRequiredProperty", "properties.storageProfile.source.id")]


def test_version_regions_take_the_profile_defaults() -> None:
    spec = _parse({"location": "westus", "tags": {"a": "b"}, "properties": {
        "publishingProfile": {"replicaCount": 3, "storageAccountType": "premium_lrs", "excludeFromLatest": True,
                              "targetRegions": [{"name": "westus"}, {"name": "East US", "regionalReplicaCount": 1,
                                                                     "excludeFromLatest": False}]},
        "storageProfile": {"source": {"id": IMG}}}})
    assert spec.regions == [Region("westus", 3, "Premium_LRS", True), Region("East US", 1, "Premium_LRS", False)]
    assert (spec.source_id, spec.exclude, spec.tags) == (IMG, True, {"a": "b"})
    bare = _parse({"location": "westus", "properties": {"storageProfile": {"source": {"id": IMG}}}})
    assert bare.regions == [Region("westus", 1, "Standard_LRS", False)]
