"""Data disks of managed images and gallery image versions (a build's ``additionalDataDisks``).

Each data disk is a stored qcow2 like the OS disk (content-addressed, reference-counted: one
``ArtifactDataDisk`` row per disk of an artifact, counted in its blob's refcount, swept with the others).
What a Compute client reads is written into the artifact's properties when it is created, as Azure's models
have it: a managed image's ``storageProfile.dataDisks[]`` (``lun``, ``diskSizeGB``, ``blobUri`` — the stored
qcow2, bootable as it is —, ``caching``, ``storageAccountType``), a gallery image version's
``storageProfile.dataDiskImages[]`` (``lun``, ``sizeInGB``, ``hostCaching``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmforge.artifacts.blobstore import BlobStore, Staged
from vmforge.store.artifact_models import ArtifactBlob, ArtifactDataDisk

GIB = 1024**3
IMAGE, VERSION = "image", "version"


def _gib(size: int) -> int:
    return -(-size // GIB)


@contextmanager
def staged_all(blobs: BlobStore, paths: Sequence[Path]) -> Iterator[list[Staged]]:
    """Every data disk file (a build's own output) staged; the temporary files go on exit unless acquired."""
    with ExitStack() as stack:
        yield [stack.enter_context(blobs.stage(Path(p), target=f"dataDisks[{i}]", trusted=True))
               for i, p in enumerate(paths)]


def attach(s: Session, blobs: BlobStore, kind: str, owner_id: int, disks: Sequence[Staged | str]) -> list[ArtifactBlob]:
    """One row per disk, LUN 0, 1, … in order (caller holds ``blobs.locked()``, in its transaction)."""
    out = []
    for lun, item in enumerate(disks):
        blob = blobs.acquire(s, item)
        s.add(ArtifactDataDisk(owner_kind=kind, owner_id=owner_id, lun=lun, blob_digest=blob.digest))
        out.append(blob)
    s.flush()
    return out


def rows(s: Session, kind: str, owner_id: int) -> list[ArtifactDataDisk]:
    return list(s.scalars(select(ArtifactDataDisk).where(ArtifactDataDisk.owner_kind == kind,
                                                         ArtifactDataDisk.owner_id == owner_id)
                          .order_by(ArtifactDataDisk.lun)))


def detach_all(s: Session, blobs: BlobStore, kind: str, owner_id: int) -> list[str]:
    """Drop an artifact's data disks; the digests freed (``blobs.discard`` them after commit)."""
    freed = []
    for row in rows(s, kind, owner_id):
        s.delete(row)
        s.flush()
        if (d := blobs.release(s, row.blob_digest)) is not None:
            freed.append(d)
    return freed


def image_entries(blobs: BlobStore, disks: Sequence[ArtifactBlob]) -> list[dict[str, Any]]:
    """``storageProfile.dataDisks`` of a managed image (Azure's ImageDataDisk)."""
    return [{"lun": lun, "blobUri": blobs.path(b.digest).as_uri(), "caching": "None",
             "storageAccountType": "Standard_LRS", "diskSizeGB": _gib(b.virtual_size)}
            for lun, b in enumerate(disks)]


def version_entries(disks: Sequence[ArtifactBlob]) -> list[dict[str, Any]]:
    """``storageProfile.dataDiskImages`` of a gallery image version (Azure's GalleryDataDiskImage)."""
    return [{"lun": lun, "sizeInGB": _gib(b.virtual_size), "hostCaching": "None"} for lun, b in enumerate(disks)]
