"""ManagedImage: register the built image as ``imageId`` in ``location`` (a Microsoft.Compute image)."""

from __future__ import annotations

from vmforge.kinds import register
from vmforge.kinds.base import Context, Step


@register("distribute", "ManagedImage")
class ManagedImageStep(Step):
    kind = "ManagedImage"

    def run(self, ctx: Context) -> None:
        o = self.options
        ctx.require("write", o["imageId"], f"ManagedImage \"{o['runOutputName']}\"")
        ctx.artifacts.register_managed_image(
            ctx.state["image_path"], o["imageId"], location=o["location"], os_type=ctx.os_type,
            os_state="Generalized", hyper_v_generation=ctx.state.get("hyper_v_generation", "V1"),
            tags=o.get("artifactTags") or {}, data_disks=ctx.state.get("data_disks") or [])
        ctx.outputs[o["runOutputName"]] = {"artifact_id": o["imageId"]}
        disks = len(ctx.state.get("data_disks") or [])
        ctx.events.line(f"managed image {o['imageId']} created"
                        + (f" with {disks} data disk(s) (storageProfile.dataDisks)" if disks else ""), self.kind)
