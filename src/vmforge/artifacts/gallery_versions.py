"""Gallery image versions (galleries/images/versions): created from a managed image or another version
(``storageProfile.source.id``) by sharing its stored disk, one replica set per target region (a label with
its replica count: no bytes are copied), ``excludeFromLatest`` per version and per region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vmforge.artifacts import datadisks, ids
from vmforge.artifacts.blobstore import BlobStore, Staged
from vmforge.artifacts.common import keys, new_operation
from vmforge.artifacts.errors import InvalidParameter, ParentNotFound
from vmforge.artifacts.galleries import find_definition
from vmforge.artifacts.versions import Candidate, latest, parse_version
from vmforge.errors import Conflict, ErrorDetail, NotFound, ValidationFailed
from vmforge.service import groups
from vmforge.service.ids import check_group, location_key, utcnow
from vmforge.store.artifact_models import ArtifactBlob, GalleryImageVersion, ManagedImage, VersionReplica
from vmforge.store.db import Database
from vmforge.store.models import Operation
from vmforge.wire.compute import validate_gallery_image_version
from vmforge.wire.errors import MISSING

PUB = "properties.publishingProfile"
SRC = "properties.storageProfile.source.id"


@dataclass
class Region:
    name: str
    replicas: int
    storage: str
    exclude: bool


def find_version(s: Session, sub: str, group: str, gallery: str, image: str, version: str) -> GalleryImageVersion | None:
    d = find_definition(s, sub, group, gallery, image)
    if d is None:
        return None
    if version.lower() == "latest":
        rows = list(s.scalars(select(GalleryImageVersion).where(GalleryImageVersion.image_id == d.id)))
        from vmforge.artifacts.lineage import revoked_version_keys  # latest skips revoked versions

        revoked = revoked_version_keys(s, rows, lambda r: ids.version_id(sub, group, gallery, image, r.name))
        name = latest(Candidate(r.name, r.exclude_from_latest or r.name_key in revoked) for r in rows)
        return next((r for r in rows if r.name == name), None)
    return s.scalar(select(GalleryImageVersion).where(GalleryImageVersion.image_id == d.id,
                                                      GalleryImageVersion.name_key == version.lower()))


def replicas(s: Session, version_id: int) -> list[VersionReplica]:
    return list(s.scalars(select(VersionReplica).where(VersionReplica.version_id == version_id)
                          .order_by(VersionReplica.id)))


@dataclass
class VersionSpec:
    """A validated version PUT body."""

    location: str
    tags: dict[str, str]
    properties: dict[str, Any]
    source_id: str
    regions: list[Region]
    exclude: bool


def _parse(body: Any) -> VersionSpec:
    """The body checked against the Compute wire model (``vmforge.wire.compute.GalleryImageVersion``; region
    rules included), then for what vmforge needs: a ``storageProfile.source.id``."""
    data = validate_gallery_image_version(body)
    location, props = data["location"], data["properties"]
    source_id = (props["storageProfile"].get("source") or {}).get("id")
    if not source_id:
        raise ValidationFailed.from_details([ErrorDetail(
            MISSING, "The property 'id' is required: vmforge creates a version from a managed image or another "
                     "gallery image version named by storageProfile.source.id.", SRC)])
    pub = props.get("publishingProfile") or {}
    count, stype = pub.get("replicaCount", 1), pub.get("storageAccountType", "Standard_LRS")
    exclude = pub.get("excludeFromLatest", False)
    regions = [Region(r["name"], r.get("regionalReplicaCount", count), r.get("storageAccountType", stype),
                      r.get("excludeFromLatest", exclude)) for r in pub.get("targetRegions") or []]
    if not regions:
        regions.append(Region(location, count, stype, exclude))
    return VersionSpec(location, data.get("tags") or {}, props, source_id, regions, exclude)


class GalleryVersionService:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db, self.blobs = db, blobs

    def put(self, sub: str, group: str, gallery: str, image: str, name: str,
            body: Any, staged: Staged | None = None,
            data_disks: list[Staged] | None = None) -> tuple[GalleryImageVersion, bool, Operation]:
        """Create or update a version. ``staged`` (the build engine's output) replaces reading the disk of
        ``storageProfile.source.id``, which is then only recorded; ``data_disks`` (the build's, LUN 0, 1, …)
        become its ``dataDiskImages``. Without ``staged``, the source's data disks are shared with it."""
        check_group(group)
        groups.require(self.db, sub, group)
        major, minor, patch = parse_version(name, target="galleryImageVersionName")
        spec = _parse(body)
        location, tags, props, source_id = spec.location, spec.tags, spec.properties, spec.source_id
        regions, exclude = spec.regions, spec.exclude
        with self.blobs.locked(), self.db.session() as s:
            groups.require_in(s, sub, group)
            d = find_definition(s, sub, group, gallery, image)
            if d is None:
                raise ParentNotFound(f"The image definition '{gallery}/{image}' under resource group '{group}' was "
                                     "not found; create it before its versions.", target=image)
            if location_key(location) != location_key(d.location):
                raise InvalidParameter(f"The version's location '{location}' must be its gallery image's location "
                                       f"'{d.location}'.", target="location")
            row = s.scalar(select(GalleryImageVersion).where(GalleryImageVersion.image_id == d.id,
                                                             GalleryImageVersion.name_key == name.lower()))
            created = row is None
            if row is None:
                content = staged or self._source_digest(s, source_id, d.os_type, d.hyper_v_generation)
                blob = self.blobs.acquire(s, content)
                row = GalleryImageVersion(**keys(sub, group, name), image_id=d.id, location=location, tags=tags,
                                          properties=props, provisioning_state="Succeeded", created_at=utcnow(),
                                          major=major, minor=minor, patch=patch, exclude_from_latest=exclude,
                                          source_id=source_id, blob_digest=blob.digest)
                s.add(row)
                s.flush()
                disks: list[Staged | str] = list(data_disks or []) if staged is not None else \
                    self._source_data_disks(s, source_id)
                if disks:
                    datadisks.attach(s, self.blobs, datadisks.VERSION, row.id, disks)
            else:
                if source_id.lower() != row.source_id.lower():
                    raise Conflict("Changing storageProfile.source of an image version is not allowed.",
                                   code="PropertyChangeNotAllowed", target=SRC)
                row.tags, row.properties, row.exclude_from_latest = tags, props, exclude
                s.execute(delete(VersionReplica).where(VersionReplica.version_id == row.id))
            self._describe_data_disks(s, row)
            for r in regions:
                s.add(VersionReplica(version_id=row.id, region=r.name, region_key=location_key(r.name),
                                     replica_count=r.replicas, storage_account_type=r.storage,
                                     exclude_from_latest=r.exclude))
            rid = ids.version_id(sub, group, gallery, image, name)
            return row, created, new_operation(s, sub, location, rid, "compute-put")

    def _describe_data_disks(self, s: Session, row: GalleryImageVersion) -> None:
        """``storageProfile.dataDiskImages`` as stored (what a body said about them is not what there is)."""
        disks = datadisks.rows(s, datadisks.VERSION, row.id)
        props = dict(row.properties)
        storage = dict(props.get("storageProfile") or {})
        storage.pop("dataDiskImages", None)
        if disks:
            storage["dataDiskImages"] = datadisks.version_entries(
                [s.get(ArtifactBlob, d.blob_digest) for d in disks])
        props["storageProfile"] = storage
        row.properties = props
        s.flush()

    def _source_data_disks(self, s: Session, source_id: str) -> list[Staged | str]:
        """The data disks' digests of the source (a managed image or a version), LUN order; [] for none."""
        p = ids.parse(source_id, target=SRC)
        if p.kind == "image":
            from vmforge.artifacts.images import ImageService

            src = ImageService.find(s, p.subscription, p.group, p.names[0])
            kind = datadisks.IMAGE
        elif p.kind == "version":
            src, kind = find_version(s, p.subscription, p.group, *p.names), datadisks.VERSION
        else:
            return []
        return [d.blob_digest for d in datadisks.rows(s, kind, src.id)] if src is not None else []

    def _source_digest(self, s: Session, source_id: str, os_type: str, generation: str) -> str:
        p = ids.parse(source_id, target=SRC)
        src: ManagedImage | GalleryImageVersion | None
        if p.kind == "image":
            from vmforge.artifacts.images import ImageService

            src = ImageService.find(s, p.subscription, p.group, p.names[0])
            kinds = (src.os_type, src.hyper_v_generation) if src else None
        elif p.kind == "version":
            src = find_version(s, p.subscription, p.group, *p.names)
            d = find_definition(s, p.subscription, p.group, p.names[0], p.names[1]) if src else None
            kinds = (d.os_type, d.hyper_v_generation) if d else None
        else:
            raise InvalidParameter("The source must be a managed image or a gallery image version.", target=SRC)
        if src is None or kinds is None:
            raise InvalidParameter(f"The source '{source_id}' was not found.", code="NotFound", target=SRC)
        if kinds != (os_type, generation):
            raise InvalidParameter(f"The source is {kinds[0]} {kinds[1]}; the image definition is {os_type} "
                                   f"{generation}.", target=SRC)
        return src.blob_digest

    def get(self, sub: str, group: str, gallery: str, image: str, name: str) -> tuple[GalleryImageVersion,
                                                                                     list[VersionReplica]]:
        with self.db.session() as s:
            row = find_version(s, sub, group, gallery, image, name)
            if row is None:
                raise NotFound(f"The Resource '{ids.GALLERY_VERSION_TYPE}/{gallery}/{image}/{name}' under resource "
                               f"group '{group}' was not found.", target=name)
            return row, replicas(s, row.id)

    def list(self, sub: str, group: str, gallery: str, image: str) -> list[tuple[GalleryImageVersion,
                                                                                 list[VersionReplica]]]:
        with self.db.session() as s:
            d = find_definition(s, sub, group, gallery, image)
            if d is None:
                raise NotFound(f"The Resource '{ids.GALLERY_IMAGE_TYPE}/{gallery}/{image}' under resource group "
                               f"'{group}' was not found.", target=image)
            rows = s.scalars(select(GalleryImageVersion).where(GalleryImageVersion.image_id == d.id).order_by(
                GalleryImageVersion.major, GalleryImageVersion.minor, GalleryImageVersion.patch))
            return [(r, replicas(s, r.id)) for r in rows]

    def delete(self, sub: str, group: str, gallery: str, image: str, name: str) -> Operation | None:
        if name.lower() == "latest":
            raise InvalidParameter("'latest' names no version to delete.", target=name)
        with self.blobs.locked():
            with self.db.session() as s:
                row = find_version(s, sub, group, gallery, image, name)
                if row is None:
                    return None
                s.execute(delete(VersionReplica).where(VersionReplica.version_id == row.id))
                extra = datadisks.detach_all(s, self.blobs, datadisks.VERSION, row.id)
                s.delete(row)
                s.flush()  # the row goes before the blob it points at
                freed = self.blobs.release(s, row.blob_digest)
                rid = ids.version_id(sub, group, gallery, image, name)
                op = new_operation(s, sub, row.location, rid, "compute-delete")
            self.blobs.discard(([freed] if freed else []) + extra)
        return op
