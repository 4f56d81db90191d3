"""Content-addressed, reference-counted image files: ``<data_dir>/blobs/sha256/<ab>/<digest>.qcow2``.

Writing: ``stage`` converts the input to qcow2 in ``blobs/tmp``, verifies it (``qemu-img check``, the virtual
size) and hashes it; ``acquire`` — inside the caller's transaction — counts one more reference and renames
the staged file into place (or drops it when the digest is already stored). Deleting: ``release`` counts one
reference less in the caller's transaction; once the transaction has committed, ``discard`` unlinks files
whose row is gone. All of this runs under ``locked()`` (a thread lock plus ``flock`` on ``blobs/.lock``) so
that an import reusing a file and a delete freeing it can never interleave. ``sweep`` at start removes
temporary files and orphans and repairs reference counts from the tables that point at blobs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vmforge.artifacts import formats
from vmforge.artifacts.errors import InvalidImage, InvalidParameter
from vmforge.disk import qemuimg
from vmforge.service.ids import utcnow
from vmforge.store.artifact_models import (ArtifactBlob, ArtifactDataDisk, GalleryImageVersion, ManagedImage,
                                           PlatformImage)
from vmforge.store.db import Database

log = logging.getLogger("vmforge.artifacts")
TMP_MAX_AGE = 3600.0  # seconds without a write after which a temp file is abandoned
REFERRERS = (ManagedImage, GalleryImageVersion, PlatformImage, ArtifactDataDisk)  # tables with a blob_digest column


@dataclass
class Staged:
    """A verified qcow2 in ``blobs/tmp`` waiting to be committed."""

    digest: str
    path: Path
    size: int
    virtual_size: int
    source_format: str


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.objects = root / "sha256"
        self.tmp = root / "tmp"
        self.durable = durable
        self._thread_lock = threading.Lock()
        for d in (self.objects, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.objects / digest[:2] / f"{digest}.qcow2"

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.root / ".lock", "a+b") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    @contextmanager
    def stage(self, src: Path, *, target: str | None = None, trusted: bool = False,
              source: str | None = None) -> Iterator[Staged]:
        """Detect, convert to qcow2, verify and hash ``src``; the temp file is removed on exit unless acquired.
        ``source`` is the name it came by (its blobUri; messages show it, a ``.vhd`` name claims a VHD).
        ``trusted`` (a build's own output, never a user's file) may be an overlay: conversion flattens it."""
        detected = formats.detect(src, target=target, allow_backing=trusted, source=source)
        tmp = self.tmp / f"{uuid.uuid4().hex}.qcow2"
        try:
            try:
                qemuimg.convert(src, tmp, "qcow2", src_fmt=detected.format,
                                cache="writeback" if self.durable else "unsafe")
                qemuimg.check(tmp, "qcow2")
                out = qemuimg.probe(tmp, "qcow2")
            except qemuimg.DiskError as e:
                raise InvalidImage(f"The image cannot be converted: {e.stderr or e}", target=target) from None
            if out.virtual_size != detected.virtual_size:
                raise InvalidImage("The converted image's size differs from the source's.", target=target)
            if self.durable:
                _fsync(tmp)
            yield Staged(qemuimg.sha256_file(tmp), tmp, tmp.stat().st_size, out.virtual_size, detected.format)
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self, s: Session, item: Staged | str) -> ArtifactBlob:
        """One more reference to a staged file or to a stored digest (caller holds ``locked()``)."""
        digest = item.digest if isinstance(item, Staged) else item
        blob = s.get(ArtifactBlob, digest, with_for_update=True)
        if blob is None:
            if not isinstance(item, Staged):
                raise InvalidParameter("The source image was deleted while this request ran.", code="NotFound")
            blob = ArtifactBlob(digest=digest, size=item.size, virtual_size=item.virtual_size,
                                source_format=item.source_format, refcount=0, created_at=utcnow())
            s.add(blob)
        blob.refcount += 1
        s.flush()
        if isinstance(item, Staged):
            final = self.path(digest)
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(item.path, 0o444)
                os.replace(item.path, final)
                if self.durable:
                    _fsync(final.parent)
        return blob

    def release(self, s: Session, digest: str) -> str | None:
        """One reference less; returns the digest when the row is gone (``discard`` it after commit)."""
        blob = s.get(ArtifactBlob, digest, with_for_update=True)
        if blob is None:
            return None
        blob.refcount -= 1
        if blob.refcount > 0:
            return None
        s.delete(blob)
        return digest

    def discard(self, digests: list[str]) -> None:
        """Unlink the files of freed digests (after the transaction that freed them committed)."""
        for d in digests:
            self.path(d).unlink(missing_ok=True)

    def sweep(self, db: Database) -> dict[str, int]:
        """At start: drop abandoned temp files, repair refcounts, remove unreferenced rows and orphan files."""
        stats = {"tmp": 0, "orphans": 0, "repaired": 0, "missing": 0}
        with self.locked():
            cutoff = time.time() - TMP_MAX_AGE
            for f in self.tmp.iterdir():
                if f.stat().st_mtime < cutoff:  # younger ones may be another process's import in progress
                    f.unlink(missing_ok=True)
                    stats["tmp"] += 1
            with db.session() as s:
                counts: dict[str, int] = {}
                for model in REFERRERS:
                    for digest, n in s.execute(select(model.blob_digest, func.count()).group_by(model.blob_digest)):
                        counts[digest] = counts.get(digest, 0) + n
                for blob in s.scalars(select(ArtifactBlob)):
                    actual = counts.get(blob.digest, 0)
                    if blob.refcount != actual:
                        log.warning("blob %s: refcount %d repaired to %d", blob.digest, blob.refcount, actual)
                        blob.refcount = actual
                        stats["repaired"] += 1
                    if actual == 0:
                        s.delete(blob)
                    elif not self.path(blob.digest).exists():
                        log.error("blob %s is referenced but its file is missing", blob.digest)
                        stats["missing"] += 1
                live = {b for b in counts if counts[b] > 0}
            for f in self.objects.glob("*/*.qcow2"):
                if f.stem not in live:
                    f.unlink(missing_ok=True)
                    stats["orphans"] += 1
        return stats
