"""Tables of the local "cloud": content-addressed image files and the Microsoft.Compute resources that use them.

Every resource row is keyed by lower-cased ARM path parts (ARM matching is case-insensitive) and keeps the
names as created. A resource that holds image bytes points at one ``ArtifactBlob`` row; the blob's
``refcount`` is the number of such rows and changes in the same transaction as they do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vmforge.store.models import Base, UTCDateTime


class ArtifactBlob(Base):
    """One qcow2 file under ``<data_dir>/blobs/sha256/``; ``digest`` is the sha256 of the file's bytes."""

    __tablename__ = "artifact_blobs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    virtual_size: Mapped[int] = mapped_column(BigInteger)
    source_format: Mapped[str] = mapped_column(String(16))
    refcount: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class _Resource:
    """Columns shared by every ARM resource row."""

    subscription_key: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(90))
    name_key: Mapped[str] = mapped_column(String(80))
    subscription_id: Mapped[str] = mapped_column(String(64))
    resource_group: Mapped[str] = mapped_column(String(90))
    name: Mapped[str] = mapped_column(String(80))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provisioning_state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ManagedImage(_Resource, Base):
    """Microsoft.Compute/images."""

    __tablename__ = "artifact_images"
    __table_args__ = (UniqueConstraint("subscription_key", "group_key", "name_key", name="uq_artifact_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    os_type: Mapped[str] = mapped_column(String(16))
    os_state: Mapped[str] = mapped_column(String(16))
    hyper_v_generation: Mapped[str] = mapped_column(String(4))
    blob_digest: Mapped[str] = mapped_column(ForeignKey("artifact_blobs.digest"), index=True)


class Gallery(_Resource, Base):
    """Microsoft.Compute/galleries."""

    __tablename__ = "artifact_galleries"
    __table_args__ = (UniqueConstraint("subscription_key", "group_key", "name_key", name="uq_artifact_gallery"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class GalleryImage(_Resource, Base):
    """Microsoft.Compute/galleries/images: an image definition."""

    __tablename__ = "artifact_gallery_images"
    __table_args__ = (UniqueConstraint("gallery_id", "name_key", name="uq_artifact_gallery_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("artifact_galleries.id"), index=True)
    os_type: Mapped[str] = mapped_column(String(16))
    os_state: Mapped[str] = mapped_column(String(16))
    hyper_v_generation: Mapped[str] = mapped_column(String(4))
    publisher: Mapped[str] = mapped_column(String(128))
    offer: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))


class GalleryImageVersion(_Resource, Base):
    """Microsoft.Compute/galleries/images/versions; ``major/minor/patch`` order versions numerically."""

    __tablename__ = "artifact_gallery_versions"
    __table_args__ = (UniqueConstraint("image_id", "name_key", name="uq_artifact_gallery_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("artifact_gallery_images.id"), index=True)
    major: Mapped[int] = mapped_column(BigInteger)
    minor: Mapped[int] = mapped_column(BigInteger)
    patch: Mapped[int] = mapped_column(BigInteger)
    exclude_from_latest: Mapped[bool] = mapped_column(Boolean, default=False)
    source_id: Mapped[str] = mapped_column(String(600))
    blob_digest: Mapped[str] = mapped_column(ForeignKey("artifact_blobs.digest"), index=True)


class VersionReplica(Base):
    """One target region of a gallery image version: a label with its replica count (no byte copies)."""

    __tablename__ = "artifact_version_replicas"
    __table_args__ = (UniqueConstraint("version_id", "region_key", name="uq_artifact_replica"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("artifact_gallery_versions.id", ondelete="CASCADE"),
                                            index=True)
    region: Mapped[str] = mapped_column(String(64))
    region_key: Mapped[str] = mapped_column(String(64))
    replica_count: Mapped[int] = mapped_column(Integer)
    storage_account_type: Mapped[str] = mapped_column(String(32))
    exclude_from_latest: Mapped[bool] = mapped_column(Boolean, default=False)


class PlatformImage(Base):
    """A marketplace URN (publisher:offer:sku:version) registered in the local catalog."""

    __tablename__ = "artifact_platform_images"
    __table_args__ = (UniqueConstraint("publisher_key", "offer_key", "sku_key", "version",
                                       name="uq_artifact_platform_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publisher: Mapped[str] = mapped_column(String(128))
    offer: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    publisher_key: Mapped[str] = mapped_column(String(128))
    offer_key: Mapped[str] = mapped_column(String(64))
    sku_key: Mapped[str] = mapped_column(String(64))
    major: Mapped[int] = mapped_column(BigInteger)
    minor: Mapped[int] = mapped_column(BigInteger)
    patch: Mapped[int] = mapped_column(BigInteger)
    os_type: Mapped[str] = mapped_column(String(16))
    hyper_v_generation: Mapped[str] = mapped_column(String(4))
    blob_digest: Mapped[str] = mapped_column(ForeignKey("artifact_blobs.digest"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ArtifactDataDisk(Base):
    """One data disk of a managed image or a gallery image version (``owner_kind`` image | version, ``owner_id``
    the row's id), at ``lun``: a stored qcow2 like the OS disk, counted in its blob's refcount."""

    __tablename__ = "artifact_data_disks"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id", "lun", name="uq_artifact_data_disk"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    lun: Mapped[int] = mapped_column(Integer)
    blob_digest: Mapped[str] = mapped_column(ForeignKey("artifact_blobs.digest"), index=True)
