"""A PlatformImage source's ``planInfo`` (AIB: planName, planProduct, planPublisher) on the distributed artifacts.

Of the Compute resources a build distributes to, only the gallery image *definition* has a purchase plan field
(``properties.purchasePlan``: name, product, publisher); a managed image and a gallery image version have
none, and a VM made from them names the plan itself. So a SharedImage distribution of a build whose source has a
plan records it on the definition when the definition has none, and fails — naming both plans — when the
definition has another one (Azure lets nobody change a definition's purchase plan, and a VM created from a
version under a definition with the wrong plan would not be the marketplace image's terms).
"""

from __future__ import annotations

from typing import Any

from vmforge.artifacts import ids
from vmforge.artifacts.errors import InvalidParameter
from vmforge.artifacts.galleries import find_definition
from vmforge.store.db import Database

FIELDS = (("planName", "name"), ("planProduct", "product"), ("planPublisher", "publisher"))


def purchase_plan(plan_info: dict[str, Any] | None) -> dict[str, str] | None:
    """AIB's planInfo as Compute's ImagePurchasePlan (``name``, ``product``, ``publisher``)."""
    if not plan_info:
        return None
    return {compute: plan_info[aib] for aib, compute in FIELDS if plan_info.get(aib)}


def _show(plan: dict[str, Any]) -> str:
    return "/".join(str(plan.get(k)) for k in ("publisher", "product", "name"))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(str(a.get(k) or "").lower() == str(b.get(k) or "").lower() for _, k in FIELDS)


def apply_to_definition(db: Database, gallery_image_id: str, plan_info: dict[str, Any] | None) -> str:
    """Record or check the plan on the definition of ``gallery_image_id`` (a definition or a version id)."""
    plan = purchase_plan(plan_info)
    if plan is None:
        return ""
    p = ids.parse(gallery_image_id, target="galleryImageId")
    if p.kind not in ("gallery image", "version"):
        raise InvalidParameter("Name a gallery image definition.", target="galleryImageId")
    with db.session() as s:
        d = find_definition(s, p.subscription, p.group, p.names[0], p.names[1])
        if d is None:
            return ""  # the version's creation reports the missing definition
        have = (d.properties or {}).get("purchasePlan")
        if have:
            if not _same(have, plan):
                raise InvalidParameter(
                    f"The image definition's purchasePlan {_show(have)} differs from the template's "
                    f"source.planInfo {_show(plan)}; a definition's purchase plan cannot change: distribute to a "
                    "definition with the same plan, or with none.", code="PurchasePlanMismatch",
                    target="galleryImageId")
            return f"purchase plan {_show(plan)}: the image definition already has it"
        d.properties = {**(d.properties or {}), "purchasePlan": plan}
        s.flush()
    return f"purchase plan {_show(plan)} (source.planInfo) recorded on the image definition"
