"""Tables of artifact lineage and revocation (``vmforge.artifacts.lineage``).

``ArtifactLineage``: one row per artifact vmforge knows the origin or the revocation of — a managed image, a
gallery image version (keyed by its lower-cased resource id) or a VHD (keyed by its URI). A row written by a run
names the run (template id + run id), the template revision (its ``version`` counter and a sha256 of the
properties the run built) and the exact source (a platform URN with its version, a managed image id or a gallery
image version id). ``artifact_created_at`` ties the row to the artifact it was written for: an artifact deleted
and created again under the same id is another artifact, and the old row no longer applies to it.

``RevocationEvent``: the audit trail, one row per revoke or unrevoke that changed an artifact (who, when, why).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vmforge.store.models import Base, UTCDateTime


class ArtifactLineage(Base):
    __tablename__ = "artifact_lineage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_key: Mapped[str] = mapped_column(String(2000), unique=True)
    artifact_id: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(32))  # ManagedImage | SharedImageVersion | VHD
    artifact_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The run that distributed it (none for an artifact made through the Compute API, then revoked).
    template_id: Mapped[str | None] = mapped_column(String(600), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run_output: Mapped[str | None] = mapped_column(String(64), nullable=True)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    template_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The exact source: PlatformImage (publisher:offer:sku:version) | ManagedImage | SharedImageVersion (ids).
    source_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source_ref: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    source_key: Mapped[str | None] = mapped_column(String(2000), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # principal object id
    revoked_by_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set when the revocation came from revoking an ancestor with cascade: that ancestor's id.
    revoked_via: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # Whether the revocation covers descendants: those distributed later (by a run that was already past its
    # source check) are revoked as they appear.
    revoke_cascade: Mapped[bool] = mapped_column(Boolean, default=False)


class RevocationEvent(Base):
    __tablename__ = "artifact_revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lineage_id: Mapped[int] = mapped_column(ForeignKey("artifact_lineage.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # revoke | unrevoke
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    principal_id: Mapped[str] = mapped_column(String(64))
    principal_name: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    via: Mapped[str | None] = mapped_column(String(2000), nullable=True)
