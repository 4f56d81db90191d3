"""``Artifacts``: the artifact services of one data dir, and the small API the build engine calls."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from vmforge.artifacts import datadisks, ids, plans
from vmforge.artifacts.blobstore import BlobStore
from vmforge.artifacts.errors import InvalidParameter
from vmforge.artifacts.export import export_file
from vmforge.artifacts.galleries import GalleryService, find_definition
from vmforge.artifacts.gallery_versions import GalleryVersionService, find_version
from vmforge.artifacts.images import ImageService
from vmforge.artifacts.platform import PlatformCatalog, Urn
from vmforge.artifacts.sources import SourcePolicy
from vmforge.artifacts.versions import next_gallery_version
from vmforge.errors import NotFound
from vmforge.store.artifact_models import ArtifactBlob, GalleryImageVersion, ManagedImage
from vmforge.store.db import Database


@dataclass(frozen=True)
class ResolvedSource:
    """An image template source made concrete: the qcow2 to boot, and the exact version it was."""

    path: Path
    kind: str  # PlatformImage | ManagedImage | SharedImageVersion
    exact_version: str | None  # a platform version, or a version's full resource id
    os_type: str
    hyper_v_generation: str


def blob_accounts_from_env() -> dict[str, object]:
    """``VMFORGE_BLOB_CONNECTION_STRING``: one Azure Blob account whose blobs blobUri may name with its key."""
    conn = os.environ.get("VMFORGE_BLOB_CONNECTION_STRING")
    if not conn:
        return {}
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient.from_connection_string(conn)
    return {svc.url.rstrip("/"): svc.credential}


class Artifacts:
    def __init__(self, db: Database, data_dir: Path, import_roots: list[Path] | None = None, *,
                 catalog_file: Path | None = None, durable: bool = True) -> None:
        self.db = db
        self.blobs = BlobStore(data_dir / "blobs", durable=durable)
        roots = import_roots or [data_dir / "imports"]
        for r in roots:
            r.mkdir(parents=True, exist_ok=True)
        self.policy = SourcePolicy(import_roots=roots, tmp_dir=self.blobs.tmp, blob_accounts=blob_accounts_from_env())
        self.images = ImageService(db, self.blobs, self.policy)
        self.galleries = GalleryService(db)
        self.versions = GalleryVersionService(db, self.blobs)
        default_catalog = data_dir / "catalog.json"
        self.platform = PlatformCatalog(db, self.blobs, self.policy,
                                        catalog_file or (default_catalog if default_catalog.exists() else None))

    def sweep(self) -> dict[str, int]:
        return self.blobs.sweep(self.db)

    def virtual_sizes(self, digests: list[str]) -> dict[str, int]:
        with self.db.session() as s:
            rows = s.execute(select(ArtifactBlob.digest, ArtifactBlob.virtual_size)
                             .where(ArtifactBlob.digest.in_(set(digests))))
            return {d: v for d, v in rows}

    # ----------------------------------------------------------------- the build engine's API
    def open_image(self, resource_id: str) -> Path:
        """The stored qcow2 of a managed image or gallery image version id (``versions/latest`` resolved).
        Read-only: boot it through an overlay, never write to it."""
        return self.blobs.path(self._row(resource_id).blob_digest)

    def _row(self, resource_id: str) -> ManagedImage | GalleryImageVersion:
        p = ids.parse(resource_id, target="imageId")
        with self.db.session() as s:
            if p.kind == "image":
                row = ImageService.find(s, p.subscription, p.group, p.names[0])
            elif p.kind == "version":
                row = find_version(s, p.subscription, p.group, *p.names)
            else:
                raise InvalidParameter("Name a managed image or a gallery image version.", target="imageId")
        if row is None:
            raise NotFound(f"The image '{resource_id}' was not found.", target="imageId")
        return row

    def resolve_source(self, source: dict[str, Any]) -> ResolvedSource:
        """Resolve an image template's ``source`` (PlatformImage, ManagedImage or SharedImageVersion)."""
        kind = source.get("type")
        if kind == "PlatformImage":
            urn = Urn(source["publisher"], source["offer"], source["sku"], source.get("version") or "latest")
            row = self.platform.resolve(urn)
            return ResolvedSource(self.blobs.path(row.blob_digest), kind, row.version, row.os_type,
                                  row.hyper_v_generation)
        if kind == "ManagedImage":
            img = self._row(source["imageId"])
            assert isinstance(img, ManagedImage)
            return ResolvedSource(self.blobs.path(img.blob_digest), kind, None, img.os_type, img.hyper_v_generation)
        if kind == "SharedImageVersion":
            p = ids.parse(source["imageVersionId"], target="source.imageVersionId")
            if p.kind != "version":
                raise InvalidParameter("imageVersionId must name a gallery image version.", target="source")
            with self.db.session() as s:
                row = find_version(s, p.subscription, p.group, *p.names)
                d = find_definition(s, p.subscription, p.group, p.names[0], p.names[1])
            if row is None or d is None:
                raise NotFound(f"The image version '{source['imageVersionId']}' was not found.", target="source")
            exact = ids.version_id(p.subscription, p.group, p.names[0], p.names[1], row.name)
            return ResolvedSource(self.blobs.path(row.blob_digest), kind, exact, d.os_type, d.hyper_v_generation)
        raise InvalidParameter(f"Unknown source type '{kind}'.", target="source.type")

    def next_version(self, gallery_image_id: str, versioning: dict[str, Any] | None = None,
                     source_version: str | None = None) -> str:
        """The version number for the next SharedImage distribution into a definition (AIB's schemes)."""
        p = ids.parse(gallery_image_id, target="galleryImageId")
        if p.kind != "gallery image":
            raise InvalidParameter("Name a gallery image definition.", target="galleryImageId")
        rows = self.versions.list(p.subscription, p.group, *p.names)
        v = versioning or {}
        return next_gallery_version([r.name for r, _ in rows], v.get("scheme", "Latest"), major=v.get("major", -1),
                                    source_version=source_version)

    def register_managed_image(self, path: Path, resource_id: str, *, location: str, **kw: Any) -> ManagedImage:
        p = ids.parse(resource_id, target="imageId")
        if p.kind != "image":
            raise InvalidParameter("Name a managed image.", target="imageId")
        return self.images.register(p.subscription, p.group, p.names[0], path, location=location, **kw)

    def create_gallery_version(self, version_id: str, *, location: str, source_id: str, path: Path | None = None,
                               target_regions: list[dict[str, Any]] | None = None, exclude_from_latest: bool = False,
                               replica_count: int = 1, storage_account_type: str = "Standard_LRS",
                               tags: dict[str, str] | None = None,
                               data_disks: list[Path] | None = None) -> GalleryImageVersion:
        """Publish a version from ``path`` (a build's output, with its ``data_disks``) or, without it, from
        ``source_id``'s disks."""
        p = ids.parse(version_id, target="galleryImageId")
        if p.kind != "version":
            raise InvalidParameter("Name a gallery image version.", target="galleryImageId")
        body = {"location": location, "tags": tags or {}, "properties": {
            "publishingProfile": {"targetRegions": target_regions, "excludeFromLatest": exclude_from_latest,
                                  "replicaCount": replica_count, "storageAccountType": storage_account_type},
            "storageProfile": {"source": {"id": source_id}}}}
        if path is None:
            return self.versions.put(p.subscription, p.group, *p.names, body)[0]
        with self.blobs.stage(Path(path), target="path", trusted=True) as staged, \
                datadisks.staged_all(self.blobs, data_disks or []) as disks:
            return self.versions.put(p.subscription, p.group, *p.names, body, staged=staged, data_disks=disks)[0]

    def open_data_disks(self, resource_id: str) -> list[Path]:
        """The stored qcow2 of each data disk of a managed image or gallery image version, LUN 0, 1, … (read-only,
        as ``open_image``)."""
        row = self._row(resource_id)
        kind = datadisks.IMAGE if isinstance(row, ManagedImage) else datadisks.VERSION
        with self.db.session() as s:
            return [self.blobs.path(d.blob_digest) for d in datadisks.rows(s, kind, row.id)]

    def purchase_plan(self, gallery_image_id: str, plan: dict[str, str] | None) -> str:
        """A build's ``source.planInfo`` passed to the image definition of a SharedImage distribution (the one
        Compute resource with a purchase plan field): recorded as its ``purchasePlan`` when it has none, checked
        when it has one. Returns what was done, for the log; raises ``InvalidParameter`` on a mismatch."""
        return plans.apply_to_definition(self.db, gallery_image_id, plan)

    def export(self, image: str | Path, fmt: str, dest: Path) -> Path:
        """Write a managed image / gallery version (by id) or a local image file to ``dest`` as vhd|qcow2|raw."""
        if isinstance(image, str) and image.lower().startswith("/subscriptions/"):
            return export_file(self.open_image(image), fmt, dest)
        from vmforge.artifacts import formats

        src = Path(image)
        return export_file(src, fmt, dest, formats.detect(src, require_disk=False).format)
