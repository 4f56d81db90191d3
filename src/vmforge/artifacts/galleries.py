"""Galleries (Microsoft.Compute/galleries) and image definitions (galleries/images): create or update, read,
list, delete. A definition needs its gallery; a gallery or definition with children cannot be deleted (409),
as in Azure. The fields that fix what a definition is (osType, osState, hyperVGeneration, identifier) cannot
change after creation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmforge.artifacts import ids
from vmforge.artifacts.common import keys, new_operation
from vmforge.artifacts.errors import ParentNotFound, ResourceInUse
from vmforge.errors import Conflict, NotFound
from vmforge.service import groups
from vmforge.service.ids import check_group, utcnow
from vmforge.store.artifact_models import Gallery, GalleryImage, GalleryImageVersion
from vmforge.store.db import Database
from vmforge.store.models import Operation
from vmforge.wire.compute import validate_gallery, validate_gallery_image


def find_gallery(s: Session, sub: str, group: str, gallery: str) -> Gallery | None:
    return s.scalar(select(Gallery).where(Gallery.subscription_key == sub.lower(),
                                          Gallery.group_key == group.lower(), Gallery.name_key == gallery.lower()))


def find_definition(s: Session, sub: str, group: str, gallery: str, image: str) -> GalleryImage | None:
    g = find_gallery(s, sub, group, gallery)
    if g is None:
        return None
    return s.scalar(select(GalleryImage).where(GalleryImage.gallery_id == g.id,
                                               GalleryImage.name_key == image.lower()))


def _not_found(kind: str, name: str, group: str) -> NotFound:
    return NotFound(f"The Resource '{kind}/{name}' under resource group '{group}' was not found.", target=name)


class GalleryService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ galleries
    def put_gallery(self, sub: str, group: str, name: str, body: Any) -> tuple[Gallery, bool, Operation]:
        check_group(group)
        groups.require(self.db, sub, group)  # ARM checks the group before the body
        ids.check_name("gallery", name)
        data = validate_gallery(body)
        location, tags, props = data["location"], data.get("tags") or {}, data.get("properties") or {}
        rid = ids.gallery_id(sub, group, name)
        with self.db.session() as s:
            groups.require_in(s, sub, group)
            row = find_gallery(s, sub, group, name)
            created = row is None
            if row is None:
                row = Gallery(**keys(sub, group, name), location=location, tags=tags, properties=props,
                              provisioning_state="Succeeded", created_at=utcnow())
                s.add(row)
            else:
                row.tags, row.properties = tags, props
            s.flush()
            return row, created, new_operation(s, sub, row.location, rid, "compute-put")

    def get_gallery(self, sub: str, group: str, name: str) -> Gallery:
        with self.db.session() as s:
            row = find_gallery(s, sub, group, name)
            if row is None:
                raise _not_found(ids.GALLERY_TYPE, name, group)
            return row

    def list_galleries(self, sub: str, group: str | None = None) -> list[Gallery]:
        q = select(Gallery).where(Gallery.subscription_key == sub.lower())
        if group is not None:
            q = q.where(Gallery.group_key == group.lower())
        with self.db.session() as s:
            return list(s.scalars(q.order_by(Gallery.id)))

    def delete_gallery(self, sub: str, group: str, name: str) -> Operation | None:
        with self.db.session() as s:
            row = find_gallery(s, sub, group, name)
            if row is None:
                return None
            if s.scalar(select(GalleryImage.id).where(GalleryImage.gallery_id == row.id).limit(1)) is not None:
                raise ResourceInUse(f"The gallery '{name}' still contains image definitions; delete them first.",
                                    target=name)
            s.delete(row)
            return new_operation(s, sub, row.location, ids.gallery_id(sub, group, name), "compute-delete")

    # ------------------------------------------------------------------ image definitions
    def put_definition(self, sub: str, group: str, gallery: str, name: str,
                       body: Any) -> tuple[GalleryImage, bool, Operation]:
        check_group(group)
        groups.require(self.db, sub, group)
        ids.check_name("gallery image", name)
        data = validate_gallery_image(body)
        location, tags, props = data["location"], data.get("tags") or {}, data["properties"]
        os_type, os_state = props["osType"], props["osState"]
        gen = props.setdefault("hyperVGeneration", "V1")
        pub, offer, sku = (props["identifier"][k] for k in ("publisher", "offer", "sku"))
        fixed = (os_type, os_state, gen, pub.lower(), offer.lower(), sku.lower())
        with self.db.session() as s:
            groups.require_in(s, sub, group)
            g = find_gallery(s, sub, group, gallery)
            if g is None:
                raise ParentNotFound(f"The gallery '{gallery}' under resource group '{group}' was not found; create "
                                     "it before its image definitions.", target=gallery)
            row = s.scalar(select(GalleryImage).where(GalleryImage.gallery_id == g.id,
                                                      GalleryImage.name_key == name.lower()))
            created = row is None
            if row is None:
                row = GalleryImage(**keys(sub, group, name), gallery_id=g.id, location=location, tags=tags,
                                   properties=props, provisioning_state="Succeeded", created_at=utcnow(),
                                   os_type=os_type, os_state=os_state, hyper_v_generation=gen,
                                   publisher=pub, offer=offer, sku=sku)
                s.add(row)
            else:
                have = (row.os_type, row.os_state, row.hyper_v_generation, row.publisher.lower(),
                        row.offer.lower(), row.sku.lower())
                if have != fixed:
                    raise Conflict("Changing osType, osState, hyperVGeneration or identifier of an image definition "
                                   "is not allowed.", code="PropertyChangeNotAllowed", target="properties")
                row.tags, row.properties = tags, props
            s.flush()
            rid = ids.gallery_image_id(sub, group, g.name, name)
            return row, created, new_operation(s, sub, row.location, rid, "compute-put")

    def get_definition(self, sub: str, group: str, gallery: str, name: str) -> GalleryImage:
        with self.db.session() as s:
            row = find_definition(s, sub, group, gallery, name)
            if row is None:
                raise _not_found(ids.GALLERY_IMAGE_TYPE, f"{gallery}/{name}", group)
            return row

    def list_definitions(self, sub: str, group: str, gallery: str) -> list[GalleryImage]:
        with self.db.session() as s:
            g = find_gallery(s, sub, group, gallery)
            if g is None:
                raise _not_found(ids.GALLERY_TYPE, gallery, group)
            return list(s.scalars(select(GalleryImage).where(GalleryImage.gallery_id == g.id)
                                  .order_by(GalleryImage.id)))

    def delete_definition(self, sub: str, group: str, gallery: str, name: str) -> Operation | None:
        with self.db.session() as s:
            row = find_definition(s, sub, group, gallery, name)
            if row is None:
                return None
            if s.scalar(select(GalleryImageVersion.id).where(GalleryImageVersion.image_id == row.id)
                        .limit(1)) is not None:
                raise ResourceInUse(f"The image definition '{name}' still has versions; delete them first.",
                                    target=name)
            s.delete(row)
            rid = ids.gallery_image_id(sub, group, gallery, name)
            return new_operation(s, sub, row.location, rid, "compute-delete")
