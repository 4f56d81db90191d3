"""The platform image catalog: marketplace URNs (publisher:offer:sku:version) registered from local files, and
optionally a catalog file mapping URNs to download URLs with sha256 (fetched once, verified, then registered
like a local file). ``version: latest`` resolves to the highest registered version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmforge.artifacts.blobstore import BlobStore
from vmforge.artifacts.errors import InvalidParameter
from vmforge.artifacts.sources import SourcePolicy, fetched
from vmforge.artifacts.versions import latest_platform
from vmforge.errors import Conflict, NotFound
from vmforge.service.ids import utcnow
from vmforge.store.artifact_models import PlatformImage
from vmforge.store.db import Database
from vmforge.wire.compute import HYPERV_GENERATIONS, OS_TYPES

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_VERSION = re.compile(r"^\d{1,10}(\.\d{1,10}){0,3}$")


@dataclass(frozen=True)
class Urn:
    publisher: str
    offer: str
    sku: str
    version: str

    @classmethod
    def parse(cls, text: str) -> Urn:
        parts = text.split(":")
        if len(parts) != 4 or not all(_PART.match(p) for p in parts):
            raise InvalidParameter(f"'{text}' is not a platform image URN publisher:offer:sku:version.", target="urn")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


def _numbers(version: str) -> tuple[int, int, int]:
    nums = [int(p) for p in version.split(".")] + [0, 0, 0]
    return nums[0], nums[1], nums[2]


def _enum(value: object, allowed: tuple[str, ...], what: str) -> str:
    for a in allowed:
        if isinstance(value, str) and a.lower() == value.lower():
            return a
    raise InvalidParameter(f"{what} '{value}' is invalid; allowed: {', '.join(allowed)}.", target=what)


class PlatformCatalog:
    def __init__(self, db: Database, blobs: BlobStore, policy: SourcePolicy, catalog_file: Path | None = None) -> None:
        self.db, self.blobs, self.policy, self.catalog_file = db, blobs, policy, catalog_file

    @staticmethod
    def _query(publisher: str, offer: str, sku: str):  # noqa: ANN205
        return select(PlatformImage).where(PlatformImage.publisher_key == publisher.lower(),
                                           PlatformImage.offer_key == offer.lower(),
                                           PlatformImage.sku_key == sku.lower())

    def register(self, urn: Urn, path: Path, *, os_type: str = "Linux", hyper_v_generation: str = "V1",
                 source: str | None = None, target: str = "file") -> PlatformImage:
        """Import ``path`` (any accepted format) and register it under ``urn`` (an exact version). ``source`` is
        the URI it was read from (messages name it; ``path`` by default), ``target`` the field that gave it."""
        if not _VERSION.match(urn.version):
            raise InvalidParameter(f"Register an exact version (digits and dots), not '{urn.version}'.",
                                   target="version")
        os_type = _enum(os_type, OS_TYPES, "osType")
        gen = _enum(hyper_v_generation, HYPERV_GENERATIONS, "hyperVGeneration")
        with self.db.session() as s:
            if s.scalar(self._query(urn.publisher, urn.offer, urn.sku).where(PlatformImage.version == urn.version)):
                raise Conflict(f"The platform image {urn} is already registered.", code="Conflict")
        with self.blobs.stage(path, target=target, source=source) as staged, self.blobs.locked(), \
                self.db.session() as s:
            q = self._query(urn.publisher, urn.offer, urn.sku).where(PlatformImage.version == urn.version)
            if s.scalar(q) is not None:
                raise Conflict(f"The platform image {urn} is already registered.", code="Conflict")
            blob = self.blobs.acquire(s, staged)
            row = PlatformImage(publisher=urn.publisher, offer=urn.offer, sku=urn.sku, version=urn.version,
                                publisher_key=urn.publisher.lower(), offer_key=urn.offer.lower(),
                                sku_key=urn.sku.lower(), **dict(zip(("major", "minor", "patch"), _numbers(urn.version))),
                                os_type=os_type, hyper_v_generation=gen, blob_digest=blob.digest, created_at=utcnow())
            s.add(row)
            s.flush()
            return row

    def list_versions(self, publisher: str, offer: str, sku: str) -> list[PlatformImage]:
        with self.db.session() as s:
            rows = list(s.scalars(self._query(publisher, offer, sku)))
        order = {v: i for i, v in enumerate(sorted((r.version for r in rows), key=_sort_key))}
        return sorted(rows, key=lambda r: order[r.version])

    def list_all(self) -> list[PlatformImage]:
        with self.db.session() as s:
            return list(s.scalars(select(PlatformImage).order_by(PlatformImage.id)))

    def find(self, s: Session, urn: Urn) -> PlatformImage | None:
        rows = list(s.scalars(self._query(urn.publisher, urn.offer, urn.sku)))
        want = latest_platform(r.version for r in rows) if urn.version.lower() == "latest" else urn.version
        return next((r for r in rows if r.version == want), None)

    def resolve(self, urn: Urn) -> PlatformImage:
        """The registered image for ``urn`` (``latest`` = highest version); pulled from the catalog file if needed."""
        with self.db.session() as s:
            row = self.find(s, urn)
        if row is None and self.catalog_file is not None:
            row = self._pull(urn)
        if row is None:
            raise NotFound(f"The platform image {urn} is not in the local catalog; register it with 'vmforge image "
                           "import FILE --platform URN'.", code="PlatformImageNotFound", target="source")
        return row

    def _pull(self, urn: Urn) -> PlatformImage | None:
        entries = self.catalog_entries()
        keys = {k.lower(): k for k in entries}
        if urn.version.lower() == "latest":
            prefix = f"{urn.publisher}:{urn.offer}:{urn.sku}:".lower()
            best = latest_platform(k.split(":")[3] for k in keys if k.startswith(prefix))
            if best is None:
                return None
            urn = Urn(urn.publisher, urn.offer, urn.sku, best)
        key = keys.get(str(urn).lower())
        if key is None:
            return None
        e = entries[key]
        return self.register_uri(Urn.parse(key), e["url"], sha256=e["sha256"], target="catalog",
                                 os_type=e.get("osType", "Linux"),
                                 hyper_v_generation=e.get("hyperVGeneration", "V1"))

    def register_uri(self, urn: Urn, uri: str, *, sha256: str | None = None, target: str = "blobUri",
                     os_type: str = "Linux", hyper_v_generation: str = "V1") -> PlatformImage:
        """Read ``uri`` (file:// under an import root, a blob account, http(s); checked against ``sha256`` when
        given) and ``register`` it."""
        with fetched(uri, self.policy, sha256=sha256, target=target) as path:
            return self.register(urn, Path(path), os_type=os_type, hyper_v_generation=hyper_v_generation,
                                 source=uri, target=target)

    def catalog_entries(self) -> dict[str, dict[str, Any]]:
        """``{"urn": {"url": ..., "sha256": ..., "osType"?: ..., "hyperVGeneration"?: ...}}`` from the file."""
        if self.catalog_file is None or not self.catalog_file.exists():
            return {}
        data = json.loads(self.catalog_file.read_text())
        for urn, e in data.items():
            Urn.parse(urn)
            if not isinstance(e, dict) or not e.get("url") or not re.fullmatch(r"[0-9a-fA-F]{64}", e.get("sha256", "")):
                raise InvalidParameter(f"Catalog entry '{urn}' needs a 'url' and a 64-hex-digit 'sha256'.",
                                       target=urn)
        return data


def _sort_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in v.split("."))
