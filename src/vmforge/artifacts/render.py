"""ARM JSON of the Microsoft.Compute resources, with the read-only fields Azure fills."""

from __future__ import annotations

import copy
from typing import Any

from vmforge.artifacts import ids
from vmforge.service.ids import iso
from vmforge.store.artifact_models import (
    Gallery,
    GalleryImage,
    GalleryImageVersion,
    ManagedImage,
    PlatformImage,
    VersionReplica,
)

GIB = 1024**3


def _gib(size: int) -> int:
    return -(-size // GIB)


def _envelope(rid: str, name: str, rtype: str, location: str, tags: dict[str, str], props: dict[str, Any]) -> dict:
    body: dict[str, Any] = {"id": rid, "name": name, "type": rtype, "location": location}
    if tags:
        body["tags"] = tags
    body["properties"] = props
    return body


def image(row: ManagedImage, virtual_size: int) -> dict[str, Any]:
    props = copy.deepcopy(row.properties)
    storage = props.setdefault("storageProfile", {})
    disk = storage.setdefault("osDisk", {})
    disk.update(osType=row.os_type, osState=row.os_state)
    disk.setdefault("caching", "ReadWrite")
    disk.setdefault("storageAccountType", "Standard_LRS")
    disk["diskSizeGB"] = _gib(virtual_size)
    storage.setdefault("dataDisks", [])
    props["hyperVGeneration"] = row.hyper_v_generation
    props["provisioningState"] = row.provisioning_state
    rid = ids.image_id(row.subscription_id, row.resource_group, row.name)
    return _envelope(rid, row.name, ids.IMAGE_TYPE, row.location, row.tags, props)


def gallery(row: Gallery) -> dict[str, Any]:
    props = copy.deepcopy(row.properties)
    props["identifier"] = {"uniqueName": f"{row.subscription_id}-{row.name.upper()}"}
    props["provisioningState"] = row.provisioning_state
    rid = ids.gallery_id(row.subscription_id, row.resource_group, row.name)
    return _envelope(rid, row.name, ids.GALLERY_TYPE, row.location, row.tags, props)


def definition(row: GalleryImage, gallery_name: str) -> dict[str, Any]:
    props = copy.deepcopy(row.properties)
    props["identifier"] = {"publisher": row.publisher, "offer": row.offer, "sku": row.sku}
    props["provisioningState"] = row.provisioning_state
    rid = ids.gallery_image_id(row.subscription_id, row.resource_group, gallery_name, row.name)
    return _envelope(rid, row.name, ids.GALLERY_IMAGE_TYPE, row.location, row.tags, props)


def version(row: GalleryImageVersion, regions: list[VersionReplica], gallery_name: str, image_name: str,
            virtual_size: int, *, expand_replication: bool = False) -> dict[str, Any]:
    props = copy.deepcopy(row.properties)
    pub = props.setdefault("publishingProfile", {})
    pub["targetRegions"] = [{"name": r.region, "regionalReplicaCount": r.replica_count,
                             "storageAccountType": r.storage_account_type,
                             "excludeFromLatest": r.exclude_from_latest} for r in regions]
    pub.setdefault("replicaCount", regions[0].replica_count if regions else 1)
    pub["excludeFromLatest"] = row.exclude_from_latest
    pub.setdefault("storageAccountType", "Standard_LRS")
    pub["publishedDate"] = iso(row.created_at)
    storage = props.setdefault("storageProfile", {})
    storage["source"] = {**storage.get("source", {}), "id": row.source_id}
    storage["osDiskImage"] = {"sizeInGB": _gib(virtual_size), "hostCaching": "ReadWrite"}
    props["provisioningState"] = row.provisioning_state
    if expand_replication:
        props["replicationStatus"] = {
            "aggregatedState": "Completed",
            "summary": [{"region": r.region, "state": "Completed", "details": "", "progress": 100} for r in regions],
        }
    rid = ids.version_id(row.subscription_id, row.resource_group, gallery_name, image_name, row.name)
    return _envelope(rid, row.name, ids.GALLERY_VERSION_TYPE, row.location, row.tags, props)


def platform_ref(sub: str, location: str, row: PlatformImage) -> dict[str, Any]:
    """A VirtualMachineImageResource (what the versions list returns)."""
    return {"id": platform_id(sub, location, row), "name": row.version, "location": location}


def platform_image(sub: str, location: str, row: PlatformImage, virtual_size: int) -> dict[str, Any]:
    """A VirtualMachineImage (GET of one version)."""
    return {
        **platform_ref(sub, location, row),
        "properties": {
            "osDiskImage": {"operatingSystem": row.os_type, "sizeInGb": _gib(virtual_size)},
            "dataDiskImages": [],
            "hyperVGeneration": row.hyper_v_generation,
            "architecture": "x64",
            "imageDeprecationStatus": {"imageState": "Active"},
        },
    }


def platform_id(sub: str, location: str, row: PlatformImage) -> str:
    return (f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{location}/Publishers/{row.publisher}"
            f"/ArtifactTypes/VMImage/Offers/{row.offer}/Skus/{row.sku}/Versions/{row.version}")
