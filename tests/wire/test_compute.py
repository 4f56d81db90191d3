"""The Compute wire models (vmforge.wire.compute): canonical forms of valid bodies, Azure's leniency (unknown
properties dropped, names and enum values case-insensitive, read-only ones ignored), and every malformed body
one ValidationFailed whose details carry the JSON path and code that template validation would give."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from vmforge.errors import InvalidRequestContent, ValidationFailed
from vmforge.wire.compute import (
    validate_gallery,
    validate_gallery_image,
    validate_gallery_image_version,
    validate_image,
    validate_platform_image,
)

IMG_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/base"
OSDISK = "properties.storageProfile.osDisk"


def image() -> dict[str, Any]:
    return {"location": "westus", "tags": {"team": "images"}, "properties": {
        "hyperVGeneration": "V2",
        "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized",
                                      "blobUri": "file:///imports/disk.vhd"}}}}


def definition() -> dict[str, Any]:
    return {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "me", "offer": "o", "sku": "s"}}}


def version() -> dict[str, Any]:
    return {"location": "westus", "properties": {
        "publishingProfile": {"replicaCount": 2, "targetRegions": [{"name": "westus"}, {"name": "East US"}]},
        "storageProfile": {"source": {"id": IMG_ID}}}}


def errors(validate, body: Any) -> set[tuple[str, str | None]]:  # noqa: ANN001
    with pytest.raises(ValidationFailed) as e:
        validate(body)
    assert e.value.status == 400
    return {(d.code, d.target) for d in e.value.details}


def test_valid_bodies_come_back_canonical() -> None:
    assert validate_image(image()) == image()
    assert validate_gallery({"location": "westus", "properties": {"description": "d"}}) == {
        "location": "westus", "properties": {"description": "d"}}
    assert validate_gallery_image(definition()) == definition()
    assert validate_gallery_image_version(version()) == version()


def test_compute_is_lenient_as_azure_is() -> None:
    body = image()
    body["properties"]["storageProfile"]["osDisk"].update(osType="linux", OSSTATE="generalized", blobUri=None)
    del body["properties"]["storageProfile"]["osDisk"]["osState"]
    body["properties"]["storageProfile"]["osDisk"]["managedDisk"] = {"id": IMG_ID}
    body["properties"]["hypervgeneration"] = body["properties"].pop("hyperVGeneration").lower()
    body["properties"]["somethingNew"] = {"x": 1}  # unknown: dropped, never echoed
    body["properties"]["provisioningState"] = "Succeeded"  # read-only, sent back from a GET
    body.update(id="/x", name="img", type="Microsoft.Compute/images")
    out = validate_image(body)
    assert out["properties"] == {"hyperVGeneration": "V2", "storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "managedDisk": {"id": IMG_ID}}}}
    assert set(out) == {"location", "tags", "properties"}


def test_image_errors_name_their_json_paths() -> None:
    body = image()
    disk = body["properties"]["storageProfile"]["osDisk"]
    disk.update(osType="Plan9", diskSizeGB="10", caching="Sometimes")
    del disk["osState"]
    body["tags"] = {"team": 5}
    assert errors(validate_image, body) == {
        ("InvalidEnumValue", f"{OSDISK}.osType"), ("MissingRequiredProperty", f"{OSDISK}.osState"),
        ("InvalidType", f"{OSDISK}.diskSizeGB"), ("InvalidEnumValue", f"{OSDISK}.caching"),
        ("InvalidType", "tags.team")}
    assert errors(validate_image, {"properties": {}}) == {
        ("MissingRequiredProperty", "location"), ("MissingRequiredProperty", "properties.storageProfile")}
    assert errors(validate_image, {"location": "westus", "properties": {"storageProfile": {}}}) == {
        ("MissingRequiredProperty", f"{OSDISK}")}


def test_image_disk_needs_exactly_one_source() -> None:
    none = image()
    del none["properties"]["storageProfile"]["osDisk"]["blobUri"]
    assert errors(validate_image, none) == {("InvalidParameter", OSDISK)}
    two = image()
    two["properties"]["storageProfile"]["osDisk"]["snapshot"] = {"id": IMG_ID}
    with pytest.raises(ValidationFailed) as e:
        validate_image(two)
    assert e.value.details[0].target == OSDISK and "blobUri and snapshot were given" in e.value.details[0].message


def test_image_data_disks_are_modelled() -> None:
    body = image()
    body["properties"]["storageProfile"]["dataDisks"] = [
        {"lun": 0, "blobUri": "file:///imports/data0.vhd", "caching": "readonly", "diskSizeGB": 4},
        {"lun": 1, "managedDisk": {"id": IMG_ID}}]
    out = validate_image(body)
    assert out["properties"]["storageProfile"]["dataDisks"] == [
        {"lun": 0, "blobUri": "file:///imports/data0.vhd", "caching": "ReadOnly", "diskSizeGB": 4},
        {"lun": 1, "managedDisk": {"id": IMG_ID}}]
    bad = copy.deepcopy(body)
    bad["properties"]["storageProfile"]["dataDisks"] = [
        {"lun": 0, "blobUri": "file:///a"}, {"lun": 0, "blobUri": "file:///b"}, {"blobUri": "file:///c"},
        {"lun": -1, "blobUri": "file:///d"}, {"lun": 2}]
    dd = "properties.storageProfile.dataDisks"
    assert errors(validate_image, bad) == {
        ("InvalidParameter", f"{dd}[1].lun"), ("MissingRequiredProperty", f"{dd}[2].lun"),
        ("OutOfRange", f"{dd}[3].lun"), ("InvalidParameter", f"{dd}[4]")}


def test_gallery_errors() -> None:
    assert errors(validate_gallery, {"location": "", "properties": {"description": 5}}) == {
        ("InvalidParameter", "location"), ("InvalidType", "properties.description")}
    assert errors(validate_gallery, {"location": "westus", "properties": {
        "sharingProfile": {"permissions": "Everyone"}, "softDeletePolicy": {"isSoftDeleteEnabled": "yes"}}}) == {
        ("InvalidEnumValue", "properties.sharingProfile.permissions"),
        ("InvalidType", "properties.softDeletePolicy.isSoftDeleteEnabled")}
    # The read-only identifier (uniqueName) of a GET body sent back is ignored.
    assert validate_gallery({"location": "westus", "properties": {"identifier": {"uniqueName": "x-GAL"}}}) == {
        "location": "westus", "properties": {}}


def test_gallery_image_definition_fields() -> None:
    body = definition()
    body["properties"].update(
        purchasePlan={"name": "plan", "publisher": "pub", "product": "prod"},
        features=[{"name": "SecurityType", "value": "TrustedLaunch"}],
        recommended={"vCPUs": {"min": 1, "max": 4}, "memory": {"min": 1, "max": 16}},
        disallowed={"diskTypes": ["Standard_LRS"]}, architecture="arm64", endOfLifeDate="2030-01-01T00:00:00Z",
        eula="e", allowUpdateImage=True)
    out = validate_gallery_image(body)
    assert out["properties"]["purchasePlan"] == {"name": "plan", "publisher": "pub", "product": "prod"}
    assert out["properties"]["architecture"] == "Arm64"
    assert out["properties"]["features"] == [{"name": "SecurityType", "value": "TrustedLaunch"}]
    bad = definition()
    del bad["properties"]["identifier"]["sku"]
    bad["properties"].update(osState="Frozen", purchasePlan={"name": 1}, features="TrustedLaunch",
                             recommended={"vCPUs": {"min": 8, "max": 2}}, endOfLifeDate="next year",
                             hyperVGeneration="V3")
    p = "properties"
    assert errors(validate_gallery_image, bad) == {
        ("MissingRequiredProperty", f"{p}.identifier.sku"), ("InvalidEnumValue", f"{p}.osState"),
        ("InvalidType", f"{p}.purchasePlan.name"), ("InvalidType", f"{p}.features"),
        ("InvalidParameter", f"{p}.recommended.vCPUs.min"), ("InvalidPattern", f"{p}.endOfLifeDate"),
        ("InvalidEnumValue", f"{p}.hyperVGeneration")}
    assert errors(validate_gallery_image, {"location": "westus"}) == {("MissingRequiredProperty", "properties")}


def test_gallery_image_version_fields_and_errors() -> None:
    body = version()
    body["properties"]["publishingProfile"].update(endOfLifeDate="2030-01-01T00:00:00+00:00",
                                                   storageAccountType="standard_zrs", replicationMode="Shallow",
                                                   publishedDate="2026-01-01T00:00:00Z")
    body["properties"]["storageProfile"]["dataDiskImages"] = [
        {"lun": 0, "hostCaching": "ReadOnly", "source": {"id": IMG_ID}, "sizeInGB": 4}]
    out = validate_gallery_image_version(body)["properties"]
    assert out["publishingProfile"]["storageAccountType"] == "Standard_ZRS"
    assert "publishedDate" not in out["publishingProfile"]  # read-only
    assert out["storageProfile"]["dataDiskImages"] == [{"lun": 0, "hostCaching": "ReadOnly",
                                                        "source": {"id": IMG_ID}}]
    pub = "properties.publishingProfile"
    bad = version()
    bad["properties"]["publishingProfile"].update(replicaCount=0, excludeFromLatest="no", targetRegions=[
        {"name": "westus", "storageAccountType": "Fast"}, {"regionalReplicaCount": 2}])
    bad["properties"]["storageProfile"]["dataDiskImages"] = [{"hostCaching": "Always"}]
    assert errors(validate_gallery_image_version, bad) == {
        ("OutOfRange", f"{pub}.replicaCount"), ("InvalidType", f"{pub}.excludeFromLatest"),
        ("InvalidEnumValue", f"{pub}.targetRegions[0].storageAccountType"),
        ("MissingRequiredProperty", f"{pub}.targetRegions[1].name"),
        ("MissingRequiredProperty", "properties.storageProfile.dataDiskImages[0].lun"),
        ("InvalidEnumValue", "properties.storageProfile.dataDiskImages[0].hostCaching")}
    regions = version()
    regions["properties"]["publishingProfile"]["targetRegions"] = [{"name": "East US"}, {"name": "eastus"}]
    assert errors(validate_gallery_image_version, regions) == {
        ("InvalidParameter", f"{pub}.targetRegions")}  # listed twice, and without the version's own westus
    assert errors(validate_gallery_image_version, {"location": "westus", "properties": {}}) == {
        ("MissingRequiredProperty", "properties.storageProfile")}


def test_platform_registration_and_non_objects() -> None:
    assert validate_platform_image({"properties": {"blobUri": "file:///a.vhd", "ostype": "LINUX"}}) == {
        "properties": {"blobUri": "file:///a.vhd", "osType": "Linux"}}
    assert errors(validate_platform_image, {"properties": {"blobUri": 5, "sha256": ["x"]}}) == {
        ("InvalidType", "properties.blobUri"), ("InvalidType", "properties.sha256")}
    for validate in (validate_image, validate_gallery, validate_gallery_image, validate_gallery_image_version):
        with pytest.raises(InvalidRequestContent):
            validate(["not", "an", "object"])


def _deep(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting_is_a_validation_error_not_a_crash(kind: str) -> None:
    nested = _deep(10_000, kind)  # ten times Python's recursion limit
    cases = [
        (validate_gallery, {"location": "westus", "identity": {"x": nested}}, "identity"),
        (validate_gallery, {"location": "westus", "properties": {"sharingProfile": {"communityGalleryInfo": nested}}},
         "properties.sharingProfile.communityGalleryInfo"),
        (validate_gallery_image_version, {**version(), "properties": {**version()["properties"],
                                                                      "securityProfile": nested}},
         "properties.securityProfile"),
        # An object of unknown members is an empty properties object; an array is not an object.
        (validate_image, {**image(), "properties": nested}, "properties.storageProfile" if kind == "dict"
         else "properties"),
        (validate_gallery_image, {**definition(), "tags": {"t": nested}}, "tags.t"),
    ]
    for validate, body, target in cases:
        with pytest.raises(ValidationFailed) as e:
            validate(body)
        assert target in {d.target for d in e.value.details}


def test_random_mutations_never_escape_as_anything_but_validation_errors() -> None:
    rng = random.Random(11)
    values: list[Any] = [None, "", "x", 0, -1, 2**40, 1.5, True, [], {}, ["a"], {"id": 5}, _deep(50, "dict")]
    bodies = [(validate_image, image()), (validate_gallery_image, definition()),
              (validate_gallery_image_version, version()),
              (validate_gallery, {"location": "westus", "properties": {"description": "d"}})]

    def spots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            out.append((node, key))
            spots(child, out)
        return out

    for _ in range(400):
        validate, valid = rng.choice(bodies)
        body = copy.deepcopy(valid)
        for _ in range(rng.randint(1, 3)):
            parent, key = rng.choice(spots(body, []))
            parent[key] = copy.deepcopy(rng.choice(values))
        try:
            validate(body)
        except (ValidationFailed, InvalidRequestContent):
            pass


def test_arm_tag_limits_apply() -> None:
    body = image()
    body["tags"] = {f"t{i}": "v" for i in range(51)}
    assert errors(validate_image, body) == {("OutOfRange", "tags")}
    body["tags"] = {"long": "v" * 257}
    assert errors(validate_gallery, {"location": "westus", "tags": body["tags"]}) == {("OutOfRange", "tags['long']")}
