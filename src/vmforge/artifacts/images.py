"""Managed images (Microsoft.Compute/images): create from a VHD/qcow2/raw/VHDX blobUri or from another
image's disk, read, list, delete. The import is done inside the PUT, so that a bad source is a 4xx with
nothing stored; the PUT then reports an already finished asynchronous operation, as ARM clients expect."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmforge.artifacts import datadisks, ids
from vmforge.artifacts.blobstore import BlobStore, Staged
from vmforge.artifacts.common import keys, new_operation
from vmforge.artifacts.errors import InvalidParameter
from vmforge.artifacts.sources import SourcePolicy, fetched
from vmforge.errors import Conflict, ErrorDetail, NotFound, ValidationFailed
from vmforge.service import groups
from vmforge.service.ids import check_group, utcnow
from vmforge.store.artifact_models import ManagedImage
from vmforge.store.db import Database
from vmforge.store.models import Operation
from vmforge.wire.compute import validate_image
from vmforge.wire.errors import INVALID

OSDISK = "properties.storageProfile.osDisk"


@dataclass
class ImageSpec:
    """A validated image PUT body."""

    location: str
    tags: dict[str, str]
    os_type: str
    os_state: str
    hyper_v_generation: str
    blob_uri: str | None
    copy_from: str | None  # id of a managed image or gallery image version whose disk is shared
    properties: dict[str, Any]


def parse_image(body: Any) -> ImageSpec:
    """The body checked against the Compute wire model (``vmforge.wire.compute.Image``), then against what
    vmforge can build an image from."""
    data = validate_image(body)
    props = data["properties"]
    limits: list[ErrorDetail] = []
    if "sourceVirtualMachine" in props:
        limits.append(ErrorDetail(INVALID, "vmforge has no virtual machines to capture; create the image from "
                                           "storageProfile.osDisk.blobUri.", "properties.sourceVirtualMachine"))
    storage = props.get("storageProfile") or {}
    if storage.get("dataDisks"):
        limits.append(ErrorDetail(INVALID, "vmforge imports an image's OS disk only; an image gets data disks from "
                                           "a build's additionalDataDisks.",
                                  "properties.storageProfile.dataDisks"))
    if limits:
        raise ValidationFailed.from_details(limits)
    osdisk = storage["osDisk"]
    copy_from = _copied_from(osdisk)
    return ImageSpec(data["location"], data.get("tags") or {}, osdisk["osType"], osdisk["osState"],
                     props.get("hyperVGeneration", "V1"), osdisk.get("blobUri"), copy_from, props)


def _copied_from(disk: dict[str, Any]) -> str | None:
    """The managedDisk.id or snapshot.id a disk is copied from (the wire model lets only one carry a value)."""
    return next((ref["id"] for ref in (disk.get("managedDisk"), disk.get("snapshot")) if ref and ref.get("id")),
                None)


def _same_source(row: ManagedImage, spec: ImageSpec) -> bool:
    disk = row.properties.get("storageProfile", {}).get("osDisk", {})
    mine = (disk.get("blobUri"), _copied_from(disk))
    theirs = (spec.blob_uri, spec.copy_from)
    return (str(mine).lower() == str(theirs).lower() and row.os_type == spec.os_type
            and row.os_state == spec.os_state and row.hyper_v_generation == spec.hyper_v_generation)


class ImageService:
    def __init__(self, db: Database, blobs: BlobStore, policy: SourcePolicy) -> None:
        self.db, self.blobs, self.policy = db, blobs, policy

    @staticmethod
    def find(s: Session, sub: str, group: str, name: str) -> ManagedImage | None:
        return s.scalar(select(ManagedImage).where(
            ManagedImage.subscription_key == sub.lower(), ManagedImage.group_key == group.lower(),
            ManagedImage.name_key == name.lower()))

    def get(self, sub: str, group: str, name: str) -> ManagedImage:
        with self.db.session() as s:
            row = self.find(s, sub, group, name)
            if row is None:
                raise NotFound(f"The Resource '{ids.IMAGE_TYPE}/{name}' under resource group '{group}' was not "
                               "found.", target=name)
            return row

    def list(self, sub: str, group: str | None = None) -> list[ManagedImage]:
        q = select(ManagedImage).where(ManagedImage.subscription_key == sub.lower())
        if group is not None:
            q = q.where(ManagedImage.group_key == group.lower())
        with self.db.session() as s:
            return list(s.scalars(q.order_by(ManagedImage.id)))

    def put(self, sub: str, group: str, name: str, body: Any) -> tuple[ManagedImage, bool, Operation]:
        check_group(group)
        groups.require(self.db, sub, group)  # before the (slow) import of the source
        ids.check_name("image", name)
        spec = parse_image(body)
        rid = ids.image_id(sub, group, name)
        with self.db.session() as s:
            row = self.find(s, sub, group, name)
            if row is not None:
                if not _same_source(row, spec):
                    raise Conflict("Changing the source, osType, osState or hyperVGeneration of an existing image "
                                   "is not allowed; delete it first.", code="PropertyChangeNotAllowed",
                                   target=OSDISK)
                row.tags = spec.tags
                return row, False, new_operation(s, sub, row.location, rid, "compute-put")
        with self._content(spec) as content:
            return self._create(sub, group, name, spec, content)

    def register(self, sub: str, group: str, name: str, path: Path, *, location: str, os_type: str = "Linux",
                 os_state: str = "Generalized", hyper_v_generation: str = "V1",
                 tags: dict[str, str] | None = None, data_disks: list[Path] | None = None) -> ManagedImage:
        """Create an image from a trusted local file (a build's output): no import-root check. ``data_disks``
        (qcow2 files, LUN 0, 1, … in order) become its ``storageProfile.dataDisks``."""
        check_group(group)
        groups.require(self.db, sub, group)
        ids.check_name("image", name)
        spec = parse_image({"location": location, "tags": tags or {}, "properties": {
            "hyperVGeneration": hyper_v_generation, "storageProfile": {"osDisk": {
                "osType": os_type, "osState": os_state, "blobUri": Path(path).resolve().as_uri()}}}})
        with self.blobs.stage(Path(path), target="path", trusted=True) as staged, \
                datadisks.staged_all(self.blobs, data_disks or []) as disks:
            return self._create(sub, group, name, spec, staged, disks)[0]

    def _create(self, sub: str, group: str, name: str, spec: ImageSpec, content: Staged | str,
                data_disks: list[Staged] | None = None) -> tuple[ManagedImage, bool, Operation]:
        with self.blobs.locked(), self.db.session() as s:
            groups.require_in(s, sub, group)
            if self.find(s, sub, group, name) is not None:
                raise Conflict(f"The image '{name}' already exists (created by a concurrent request?).",
                               code="Conflict")
            blob = self.blobs.acquire(s, content)
            row = ManagedImage(**keys(sub, group, name), location=spec.location, tags=spec.tags,
                               properties=spec.properties, provisioning_state="Succeeded", created_at=utcnow(),
                               os_type=spec.os_type, os_state=spec.os_state,
                               hyper_v_generation=spec.hyper_v_generation, blob_digest=blob.digest)
            s.add(row)
            s.flush()
            if data_disks:
                blobs = datadisks.attach(s, self.blobs, datadisks.IMAGE, row.id, data_disks)
                props = dict(row.properties)
                props["storageProfile"] = {**props.get("storageProfile", {}),
                                           "dataDisks": datadisks.image_entries(self.blobs, blobs)}
                row.properties = props
                s.flush()
            return row, True, new_operation(s, sub, spec.location, ids.image_id(sub, group, name), "compute-put")

    @contextmanager
    def _content(self, spec: ImageSpec) -> Iterator[Staged | str]:
        """A staged import of the blobUri, or the digest of the disk to share."""
        if spec.copy_from:
            yield self._digest_of(spec.copy_from)
            return
        target = f"{OSDISK}.blobUri"
        with fetched(spec.blob_uri or "", self.policy, target=target) as path, \
                self.blobs.stage(Path(path), target=target, source=spec.blob_uri) as staged:
            yield staged

    def _digest_of(self, resource_id: str) -> str:
        target = f"{OSDISK}.managedDisk.id"
        p = ids.parse(resource_id, target=target)
        with self.db.session() as s:
            if p.kind == "image":
                row = self.find(s, p.subscription, p.group, p.names[0])
            elif p.kind == "version":
                from vmforge.artifacts.gallery_versions import find_version

                row = find_version(s, p.subscription, p.group, *p.names)
            else:
                raise InvalidParameter("Copy from a managed image or a gallery image version.", target=target)
            if row is None:
                raise InvalidParameter(f"The source '{resource_id}' does not exist.", target=target)
            return row.blob_digest

    def delete(self, sub: str, group: str, name: str) -> Operation | None:
        with self.blobs.locked():
            with self.db.session() as s:
                row = self.find(s, sub, group, name)
                if row is None:
                    return None
                extra = datadisks.detach_all(s, self.blobs, datadisks.IMAGE, row.id)
                s.delete(row)
                s.flush()  # the row goes before the blob it points at
                freed = self.blobs.release(s, row.blob_digest)
                op = new_operation(s, sub, row.location, ids.image_id(sub, group, name), "compute-delete")
            self.blobs.discard(([freed] if freed else []) + extra)
        return op

