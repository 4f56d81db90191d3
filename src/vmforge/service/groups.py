"""Resource groups (``Microsoft.Resources/resourceGroups``): every template, image, gallery and managed identity
lives in one that exists. No HTTP here: the API, the run engine and the CLI call these functions.

``require(db, subscription, group)`` is the one existence check (ARM's 404 ``ResourceGroupNotFound``);
``require_in(s, ...)`` is the same check inside a caller's write transaction, so that a resource is never
inserted into a group whose delete began after a check made outside it. Deleting a group, and everything in
it, is ``vmforge.service.group_delete``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmforge.errors import ArmError, BadRequest, NotFound
from vmforge.service.ids import check_group, decode_token, encode_token, location_key, utcnow
from vmforge.store.db import Database
from vmforge.store.tenancy_models import ResourceGroup

GROUP_TYPE = "Microsoft.Resources/resourceGroups"


@dataclass(frozen=True)
class Group:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, Any] = field(default_factory=dict)
    managed_by: str | None = None
    provisioning_state: str = "Succeeded"
    created_at: datetime | None = None

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": GROUP_TYPE, "location": self.location,
                                "properties": {"provisioningState": self.provisioning_state}}
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.managed_by:
            body["managedBy"] = self.managed_by
        return body


def _group(row: ResourceGroup) -> Group:
    return Group(row.subscription_id, row.name, row.location, dict(row.tags or {}), row.managed_by,
                 row.provisioning_state, row.created_at)


def not_found(subscription: str, group: str) -> ArmError:
    return NotFound(f"Resource group '{group}' could not be found.", code="ResourceGroupNotFound")


def _query(subscription: str, group: str):  # noqa: ANN202
    return select(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower(),
                                       ResourceGroup.group_key == group.lower())


def get(db: Database, subscription: str, group: str) -> Group | None:
    with db.read() as s:
        row = s.scalars(_query(subscription, group)).first()
        return _group(row) if row is not None else None


def require_in(s: Session, subscription: str, group: str) -> ResourceGroup:
    """``require`` inside the caller's write transaction (the row is share-locked where the database can:
    a delete that marks the group cannot commit between this check and the caller's insert)."""
    row = s.scalars(_query(subscription, group).with_for_update(read=True)).first()
    if row is None or row.provisioning_state == "Deleting":
        raise not_found(subscription, group)
    return row


def require(db: Database, subscription: str, group: str) -> Group:
    """The group, or ARM's 404 ``ResourceGroupNotFound`` (also while it is being deleted)."""
    g = get(db, subscription, group)
    if g is None or g.provisioning_state == "Deleting":
        raise not_found(subscription, group)
    return g


def create_or_update(db: Database, subscription: str, group: str, location: str,
                     tags: dict[str, Any] | None = None, managed_by: str | None = None) -> tuple[Group, bool]:
    """Create the group or update its tags (ARM keeps the first location: a different one is a 409
    ``InvalidResourceGroupLocation``); returns it and whether it was created."""
    check_group(group)
    with db.session() as s:
        row = s.scalars(_query(subscription, group).with_for_update()).first()
        if row is not None:
            if row.provisioning_state == "Deleting":
                raise ArmError(f"The resource group '{group}' is in deprovisioning state and cannot perform "
                               "this operation.", code="ResourceGroupBeingDeleted", status=409)
            if row.location.replace(" ", "").lower() != location.replace(" ", "").lower():
                raise ArmError(f"Invalid resource group location '{location}'. The Resource group already exists "
                               f"in location '{row.location}'.", code="InvalidResourceGroupLocation", status=409)
            if tags is not None:
                row.tags = dict(tags)
            if managed_by is not None:
                row.managed_by = managed_by
            return _group(row), False
        row = ResourceGroup(subscription_key=subscription.lower(), group_key=group.lower(),
                            subscription_id=subscription, name=group, location=location.replace(" ", "").lower(),
                            tags=dict(tags or {}), managed_by=managed_by, provisioning_state="Succeeded",
                            created_at=utcnow())
        s.add(row)
        s.flush()
        return _group(row), True


def create_in(s: Session, subscription: str, group: str, location: str, tags: dict[str, Any] | None = None,
              managed_by: str | None = None) -> ResourceGroup:
    """A new group, inserted in the caller's transaction (the caller checked that none exists)."""
    check_group(group)
    row = ResourceGroup(subscription_key=subscription.lower(), group_key=group.lower(), subscription_id=subscription,
                        name=group, location=location_key(location), tags=dict(tags or {}), managed_by=managed_by,
                        provisioning_state="Succeeded", created_at=utcnow())
    s.add(row)
    s.flush()
    return row


def contents(s: Session, subscription: str, group: str) -> list[dict[str, Any]]:
    """Every resource the group holds, as ARM's generic resource list shows them (``id``, ``name``, ``type``,
    ``location``, ``tags``): image templates, managed images, galleries with their image definitions and
    versions, user-assigned identities, and what runs have staged there."""
    from vmforge.service.ids import TemplatePath
    from vmforge.store.artifact_models import Gallery, GalleryImage, GalleryImageVersion, ManagedImage
    from vmforge.store.models import Template
    from vmforge.store.tenancy_models import ManagedIdentity, StagingResource

    sub, key = subscription.lower(), group.lower()
    base = f"/subscriptions/{subscription}/resourceGroups/{group}/providers"
    out: list[dict[str, Any]] = []

    def add(rid: str, name: str, rtype: str, location: str, tags: dict[str, Any] | None) -> None:
        item: dict[str, Any] = {"id": rid, "name": name, "type": rtype, "location": location}
        if tags:
            item["tags"] = dict(tags)
        out.append(item)

    for t in s.scalars(select(Template).where(Template.subscription_key == sub, Template.group_key == key,
                                              Template.provisioning_state != "Deleting").order_by(Template.id)):
        add(TemplatePath(t.subscription_id, t.resource_group, t.name).resource_id(), t.name,
            "Microsoft.VirtualMachineImages/imageTemplates", t.location, t.tags)
    for i in s.scalars(select(ManagedImage).where(ManagedImage.subscription_key == sub, ManagedImage.group_key == key)
                       .order_by(ManagedImage.id)):
        add(f"{base}/Microsoft.Compute/images/{i.name}", i.name, "Microsoft.Compute/images", i.location, i.tags)
    for g in s.scalars(select(Gallery).where(Gallery.subscription_key == sub, Gallery.group_key == key)
                       .order_by(Gallery.id)):
        gid = f"{base}/Microsoft.Compute/galleries/{g.name}"
        add(gid, g.name, "Microsoft.Compute/galleries", g.location, g.tags)
        for d in s.scalars(select(GalleryImage).where(GalleryImage.gallery_id == g.id).order_by(GalleryImage.id)):
            add(f"{gid}/images/{d.name}", f"{g.name}/{d.name}", "Microsoft.Compute/galleries/images", d.location,
                d.tags)
            for v in s.scalars(select(GalleryImageVersion).where(GalleryImageVersion.image_id == d.id)
                               .order_by(GalleryImageVersion.id)):
                add(f"{gid}/images/{d.name}/versions/{v.name}", f"{g.name}/{d.name}/{v.name}",
                    "Microsoft.Compute/galleries/images/versions", v.location, v.tags)
    for m in s.scalars(select(ManagedIdentity).where(ManagedIdentity.subscription_key == sub,
                                                     ManagedIdentity.group_key == key).order_by(ManagedIdentity.name_key)):
        add(f"{base}/Microsoft.ManagedIdentity/userAssignedIdentities/{m.name}", m.name,
            "Microsoft.ManagedIdentity/userAssignedIdentities", m.location, m.tags)
    for r in s.scalars(select(StagingResource).where(StagingResource.subscription_key == sub,
                                                     StagingResource.group_key == key).order_by(StagingResource.id)):
        add(f"{base}/{r.type}/{r.name}", r.name, r.type, r.location, r.tags)
    return out


def ensure(db: Database, subscription: str, group: str, location: str) -> Group:
    """The group, created in ``location`` when missing (``vmforge --create-group``, tests)."""
    g = get(db, subscription, group)
    return g if g is not None else create_or_update(db, subscription, group, location)[0]


def list_groups(db: Database, subscription: str) -> list[Group]:
    with db.read() as s:
        rows = s.scalars(select(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower())
                         .order_by(ResourceGroup.group_key))
        return [_group(r) for r in rows]


def update(db: Database, subscription: str, group: str, tags: dict[str, Any] | None,
           managed_by: str | None = None) -> Group:
    """ARM's PATCH of a group: the tags given replace the group's (absent: kept)."""
    with db.session() as s:
        row = s.scalars(_query(subscription, group).with_for_update()).first()
        if row is None or row.provisioning_state == "Deleting":
            raise not_found(subscription, group)
        if tags is not None:
            row.tags = dict(tags)
        if managed_by is not None:
            row.managed_by = managed_by
        return _group(row)


# ---------------------------------------------------------------------- request bodies and list filters
MAX_TAGS = 50
_TAG_NAME_FORBIDDEN = set("<>%&\\?/")


def check_tags(tags: Any, target: str = "tags") -> dict[str, str] | None:
    """ARM's limits on tags (at most 50; names of 1-512 characters without ``<>%&\\?/``, values of at most
    256); None when absent. Raises 400 naming the first violation."""
    if tags is None:
        return None
    if not isinstance(tags, dict):
        raise BadRequest(f"'{target}' must be an object of string values.", code="InvalidRequestContent",
                         target=target)
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"The resource has {len(tags)} tags; at most {MAX_TAGS} are allowed.",
                         code="InvalidTagCount", target=target)
    for name, value in tags.items():
        if not name or len(name) > 512 or _TAG_NAME_FORBIDDEN & set(name):
            raise BadRequest(f"The tag name '{name}' is invalid: use 1-512 characters, none of '<>%&\\?/'.",
                             code="InvalidTagNameCharacters", target=f"{target}.{name}")
        if not isinstance(value, str):
            raise BadRequest(f"The value of tag '{name}' must be a string.", code="InvalidRequestContent",
                             target=f"{target}.{name}")
        if len(value) > 256:
            raise BadRequest(f"The value of tag '{name}' is longer than 256 characters.",
                             code="InvalidTagValueLength", target=f"{target}.{name}")
    return dict(tags)


def parse_put(body: Any) -> tuple[str, dict[str, str], str | None]:
    """``(location, tags, managedBy)`` of a PUT body; the location normalized (``West US`` is ``westus``)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="InvalidRequestContent")
    location = body.get("location")
    if not isinstance(location, str) or not location_key(location):
        raise BadRequest("The location property is required for this definition.", code="LocationRequired",
                         target="location")
    managed_by = body.get("managedBy")
    if managed_by is not None and not isinstance(managed_by, str):
        raise BadRequest("'managedBy' must be a string.", code="InvalidRequestContent", target="managedBy")
    return location_key(location), check_tags(body.get("tags")) or {}, managed_by


_FILTER = re.compile(r"^\s*tagname\s+eq\s+'((?:[^']|'')*)'(?:\s+and\s+tagvalue\s+eq\s+'((?:[^']|'')*)')?\s*$",
                     re.IGNORECASE)


def parse_filter(text: str | None) -> tuple[str, str | None] | None:
    """The one ``$filter`` ARM accepts on a group list: ``tagName eq 'x'`` optionally ``and tagValue eq 'y'``
    (quotes doubled inside). Anything else is ARM's 400 ``InvalidFilterInQueryString``."""
    if text is None or not text.strip():
        return None
    m = _FILTER.match(text)
    if m is None:
        raise BadRequest(f"Invalid $filter '{text}' specified in the query string.",
                         code="InvalidFilterInQueryString", target="$filter")
    value = m.group(2)
    return m.group(1).replace("''", "'"), value.replace("''", "'") if value is not None else None


def _matches(tags: dict[str, Any], wanted: tuple[str, str | None]) -> bool:
    """Tag names compare without case, as ARM's do; values exactly."""
    name, value = wanted
    return any(k.lower() == name.lower() and (value is None or v == value) for k, v in (tags or {}).items())


def list_page(db: Database, subscription: str, skip_token: str | None, limit: int,
              tag_filter: tuple[str, str | None] | None = None) -> tuple[list[Group], str | None]:
    """One page of a subscription's groups in creation order (those being deleted included, as ARM lists
    them), and the ``$skipToken`` of the next page or None."""
    after = decode_token(skip_token)
    q = (select(ResourceGroup).where(ResourceGroup.subscription_key == subscription.lower(),
                                     ResourceGroup.id > after).order_by(ResourceGroup.id))
    page: list[ResourceGroup] = []
    with db.read() as s:
        for row in s.scalars(q).yield_per(500):
            if tag_filter is None or _matches(row.tags, tag_filter):
                page.append(row)
                if len(page) > limit:
                    break
        more = len(page) > limit
        page = page[:limit]
        return [_group(r) for r in page], encode_token(page[-1].id) if more and page else None
