"""Microsoft.Compute bodies over the wire: malformed ones (wrong type, missing required property, bad enum value),
which the SDK cannot send, go through raw httpx and get 400 ValidationFailed whose details carry the exact JSON
path, with nothing stored; valid ones round-trip through azure-mgmt-compute, the fields vmforge models but does
not interpret (purchasePlan, features, recommended, endOfLifeDate, ...) included."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port

MIB = 1024 * 1024
RG = "rg-wire"
RGP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute"
IMAGES, GALLERIES = "2026-04-01", "2026-03-03"


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("imports")
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed,force_size", str(d / "disk.vhd"),
                    str(8 * MIB)], check=True)
    return d


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("vmforge-compute-wire") / "data", free_port(), ["--import-root", str(imports)])
    s.start()
    s.ensure_group(SUBSCRIPTION, RG)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(srv: Server) -> Iterator[httpx.Client]:
    with srv.http() as c:
        yield c


@pytest.fixture(scope="module")
def client(srv: Server):  # noqa: ANN201
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                   connection_verify=srv.cert, polling_interval=0.05, retry_total=0)


def image_body(uri: str) -> dict[str, Any]:
    return {"location": "westus", "properties": {"hyperVGeneration": "V2", "storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "blobUri": uri}}}}


def definition_body() -> dict[str, Any]:
    return {"location": "westus", "properties": {"osType": "Linux", "osState": "Generalized",
                                                 "hyperVGeneration": "V2",
                                                 "identifier": {"publisher": "me", "offer": "o", "sku": "s"}}}


def refused(http: httpx.Client, url: str, version: str, body: Any) -> set[tuple[str, str | None]]:
    """PUT ``body``; assert 400 ValidationFailed and that nothing was stored; the (code, target) of each detail."""
    r = http.put(url, params={"api-version": version}, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "ValidationFailed" and set(error) == {"code", "message", "target", "details"}
    assert error["target"] == error["details"][0].get("target")
    assert http.get(url, params={"api-version": version}).status_code == 404
    return {(d["code"], d.get("target")) for d in error["details"]}


def test_malformed_image_bodies(http: httpx.Client, imports: Path) -> None:
    url, osdisk = f"{RGP}/images/bad", "properties.storageProfile.osDisk"
    body = image_body((imports / "disk.vhd").as_uri())
    body["properties"]["storageProfile"]["osDisk"].update(osType="Plan9", diskSizeGB="8")
    del body["properties"]["storageProfile"]["osDisk"]["osState"]
    assert refused(http, url, IMAGES, body) == {
        ("InvalidEnumValue", f"{osdisk}.osType"), ("MissingRequiredProperty", f"{osdisk}.osState"),
        ("InvalidType", f"{osdisk}.diskSizeGB")}
    body = image_body((imports / "disk.vhd").as_uri())
    body["properties"]["hyperVGeneration"] = "V9"
    body["tags"] = {"team": ["a"]}
    assert refused(http, url, IMAGES, body) == {("InvalidEnumValue", "properties.hyperVGeneration"),
                                                ("InvalidType", "tags.team")}
    assert refused(http, url, IMAGES, {"location": "westus"}) == {("MissingRequiredProperty", "properties")}
    r = http.put(url, params={"api-version": IMAGES}, json=["not", "an", "object"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"


def test_malformed_gallery_definition_version_bodies(http: httpx.Client, client, imports: Path) -> None:  # noqa: ANN001
    gal = f"{RGP}/galleries/wiregal"
    assert refused(http, gal, GALLERIES, {"location": "westus", "properties": {"description": 5}}) == {
        ("InvalidType", "properties.description")}
    assert refused(http, gal, GALLERIES, {"properties": {}}) == {("MissingRequiredProperty", "location")}
    client.galleries.begin_create_or_update(RG, "wiregal", {"location": "westus"}).result()

    definition = f"{gal}/images/def"
    body = definition_body()
    del body["properties"]["identifier"]["sku"]
    body["properties"].update(osState="Frozen", features="TrustedLaunch", purchasePlan={"name": 1})
    assert refused(http, definition, GALLERIES, body) == {
        ("MissingRequiredProperty", "properties.identifier.sku"), ("InvalidEnumValue", "properties.osState"),
        ("InvalidType", "properties.features"), ("InvalidType", "properties.purchasePlan.name")}
    client.gallery_images.begin_create_or_update(RG, "wiregal", "def", definition_body()).result()

    src = client.images.begin_create_or_update(RG, "src", image_body((imports / "disk.vhd").as_uri())).result()
    ver, pub = f"{definition}/versions/1.0.0", "properties.publishingProfile"
    body = {"location": "westus", "properties": {
        "publishingProfile": {"replicaCount": 0, "targetRegions": [{"name": "westus", "storageAccountType": "Fast"},
                                                                   {"regionalReplicaCount": 1}]},
        "storageProfile": {"source": {"id": src.id}, "dataDiskImages": [{"hostCaching": "ReadOnly"}]}}}
    assert refused(http, ver, GALLERIES, body) == {
        ("OutOfRange", f"{pub}.replicaCount"), ("InvalidEnumValue", f"{pub}.targetRegions[0].storageAccountType"),
        ("MissingRequiredProperty", f"{pub}.targetRegions[1].name"),
        ("MissingRequiredProperty", "properties.storageProfile.dataDiskImages[0].lun")}
    assert refused(http, ver, GALLERIES, {"location": "westus", "properties": {}}) == {
        ("MissingRequiredProperty", "properties.storageProfile")}
    assert refused(http, ver, GALLERIES, {"location": "westus", "properties": {"storageProfile": {}}}) == {
        ("MissingRequiredProperty", "properties.storageProfile.source.id")}


def test_malformed_platform_registration(srv: Server, http: httpx.Client) -> None:
    url = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/publishers/Contoso"
           "/artifacttypes/vmimage/offers/Wire/skus/1/versions/1.0.0")
    r = http.put(url, params={"api-version": IMAGES}, json={"properties": {"blobUri": 5, "osType": "Plan9"}})
    assert r.status_code == 400, r.text
    assert {(d["code"], d["target"]) for d in r.json()["error"]["details"]} == {
        ("InvalidType", "properties.blobUri"), ("InvalidEnumValue", "properties.osType")}


def test_lenient_and_modelled_fields_round_trip_through_the_sdk(http: httpx.Client, client, imports: Path) -> None:  # noqa: ANN001
    from azure.mgmt.compute.models import (
        GalleryImage,
        GalleryImageFeature,
        GalleryImageIdentifier,
        ImagePurchasePlan,
        RecommendedMachineConfiguration,
        ResourceRange,
    )

    # As Azure's Compute RP, vmforge ignores members it does not know and takes enum values in any case.
    body = image_body((imports / "disk.vhd").as_uri())
    body["properties"]["storageProfile"]["osDisk"].update(osType="linux", caching="readonly", futureField=1)
    r = http.put(f"{RGP}/images/lenient", params={"api-version": IMAGES}, json=body)
    assert r.status_code == 201, r.text
    disk = r.json()["properties"]["storageProfile"]["osDisk"]
    assert disk["osType"] == "Linux" and disk["caching"] == "ReadOnly" and "futureField" not in disk
    img = client.images.get(RG, "lenient")
    assert img.storage_profile.os_disk.caching == "ReadOnly"

    client.galleries.begin_create_or_update(RG, "rtgal", {"location": "westus",
                                                          "properties": {"description": "round trip"}}).result()
    d = client.gallery_images.begin_create_or_update(RG, "rtgal", "def", GalleryImage(
        location="westus", os_type="Linux", os_state="Generalized", hyper_v_generation="V2", architecture="x64",
        identifier=GalleryImageIdentifier(publisher="me", offer="o", sku="s"),
        purchase_plan=ImagePurchasePlan(name="plan", publisher="pub", product="prod"),
        features=[GalleryImageFeature(name="SecurityType", value="TrustedLaunch")],
        recommended=RecommendedMachineConfiguration(v_cp_us=ResourceRange(min=1, max=4)),
        eula="use it")).result()
    got = client.gallery_images.get(RG, "rtgal", "def")
    for m in (d, got):
        assert (m.purchase_plan.name, m.purchase_plan.publisher, m.purchase_plan.product) == ("plan", "pub", "prod")
        assert [(f.name, f.value) for f in m.features] == [("SecurityType", "TrustedLaunch")]
        assert (m.recommended.v_cp_us.min, m.recommended.v_cp_us.max) == (1, 4)
        assert m.architecture == "x64" and m.eula == "use it" and m.hyper_v_generation == "V2"

    v = client.gallery_image_versions.begin_create_or_update(RG, "rtgal", "def", "1.0.0", {
        "location": "westus", "properties": {
            "publishingProfile": {"endOfLifeDate": "2030-01-01T00:00:00Z", "replicationMode": "Shallow",
                                  "targetRegions": [{"name": "westus", "storageAccountType": "Standard_ZRS"}]},
            "storageProfile": {"source": {"id": img.id}}}}).result()
    got = client.gallery_image_versions.get(RG, "rtgal", "def", "1.0.0")
    for m in (v, got):
        assert m.publishing_profile.end_of_life_date.year == 2030
        assert m.publishing_profile.replication_mode == "Shallow"
        assert [(t.name, t.storage_account_type) for t in m.publishing_profile.target_regions] == [
            ("westus", "Standard_ZRS")]
