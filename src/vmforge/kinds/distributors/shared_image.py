"""SharedImage: publish the built image as a new version of the gallery image definition ``galleryImageId``,
numbered by ``versioning`` (Latest with an optional major, or Source), replicated (as recorded labels) to
``targetRegions`` or ``replicationRegions``."""

from __future__ import annotations

from vmforge.kinds import register
from vmforge.kinds.base import Context, Step


def target_regions(o: dict, default_location: str) -> tuple[list[dict], str]:
    if o.get("targetRegions"):
        regions = [{"name": r["name"], "regionalReplicaCount": r.get("replicaCount", 1),
                    "storageAccountType": r.get("storageAccountType", "Standard_LRS")} for r in o["targetRegions"]]
    else:
        sat = o.get("storageAccountType", "Standard_LRS")
        regions = [{"name": n, "regionalReplicaCount": 1, "storageAccountType": sat}
                   for n in (o.get("replicationRegions") or [default_location])]
    return regions, regions[0]["name"]


@register("distribute", "SharedImage")
class SharedImageStep(Step):
    kind = "SharedImage"

    def run(self, ctx: Context) -> None:
        o = self.options
        definition = o["galleryImageId"].rstrip("/")
        low = definition.lower()
        if "/versions/" in low:  # a version named explicitly
            version_id = definition
        else:
            version = ctx.artifacts.next_version(definition, o.get("versioning"), ctx.state.get("source_version"))
            version_id = f"{definition}/versions/{version}"
        ctx.require("write", version_id, f"SharedImage \"{o['runOutputName']}\"")
        regions, location = target_regions(o, ctx.template_location)
        planned = ctx.artifacts.purchase_plan(definition, ctx.template["source"].get("planInfo"))
        if planned:
            ctx.events.line(planned, self.kind)
        ctx.artifacts.create_gallery_version(
            version_id, location=location, source_id=ctx.state.get("source_id") or version_id,
            path=ctx.state["image_path"], target_regions=regions,
            exclude_from_latest=bool(o.get("excludeFromLatest", False)), tags=o.get("artifactTags") or {},
            data_disks=ctx.state.get("data_disks") or [])
        ctx.outputs[o["runOutputName"]] = {"artifact_id": version_id}
        ctx.events.line(f"gallery image version {version_id} created in {', '.join(r['name'] for r in regions)}",
                        self.kind)
