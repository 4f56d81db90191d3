"""``additionalDataDisks``: one blank qcow2 per entry in the run directory (``data-<lun>.qcow2``, sized
``sizeGB`` GiB, sparse), attached to the build VM after its OS disk in LUN order, so that a Linux guest sees
LUN 0, 1, … as ``/dev/vdb``, ``/dev/vdc``, … (and as ``/dev/disk/by-id/virtio-lun-<n>``). Customizers partition,
format and fill them; after the capture they are the data disks every distributor hands on. A validation VM
gets overlays of them (what validation writes is not distributed), in the same order.

Bound: at most ``MAX_DATA_DISKS`` disks of at most ``MAX_SIZE_GB`` GiB each (``vmforge.wire.template.DataDisk``
checks both at PUT).
"""

from __future__ import annotations

from pathlib import Path

from vmforge.disk import qemuimg
from vmforge.kinds.base import Context, Step
from vmforge.service.runstate import RunSubState

GIB = 1024**3


def vm_disks(ctx: Context, role: str) -> list[Path]:
    """The data disks the VM of ``role`` (build | validate) is started with."""
    return list(ctx.state.get(f"vm_data_disks_{role}") or [])


class DataDisksStep(Step):
    """The build VM's blank data disks (``properties.additionalDataDisks``)."""

    kind = "DataDisks"
    phase = RunSubState.BUILDING

    def __init__(self, name: str, sizes_gb: list[int]) -> None:
        super().__init__(name, {"sizesGB": sizes_gb})
        self.sizes = sizes_gb

    def run(self, ctx: Context) -> None:
        disks = []
        for lun, size in enumerate(self.sizes):
            disk = ctx.work_dir / f"data-{lun}.qcow2"
            disk.unlink(missing_ok=True)
            qemuimg.create_blank(disk, size * GIB)
            disks.append(disk)
            ctx.events.line(f"data disk LUN {lun}: {disk.name}, {size} GiB (the guest's /dev/vd{chr(ord('b') + lun)})",
                            "disk")
        ctx.state["data_disks"] = disks
        ctx.state["vm_data_disks_build"] = disks

    def cleanup(self, ctx: Context) -> None:
        for lun in range(len(self.sizes)):
            (ctx.work_dir / f"data-{lun}.qcow2").unlink(missing_ok=True)


class ValidationDataDisksStep(Step):
    """Overlays of the built data disks for the validation VM."""

    kind = "DataDisks"
    phase = RunSubState.VALIDATING

    def run(self, ctx: Context) -> None:
        overlays = []
        for lun, disk in enumerate(ctx.state.get("data_disks") or []):
            overlay = ctx.work_dir / f"validate-data-{lun}.qcow2"
            overlay.unlink(missing_ok=True)
            qemuimg.create_overlay(disk, overlay, "qcow2")
            overlays.append(overlay)
        ctx.state["vm_data_disks_validate"] = overlays
        ctx.events.line(f"{len(overlays)} data disk(s) attached to the validation VM as overlays", "disk")

    def cleanup(self, ctx: Context) -> None:
        for p in ctx.state.pop("vm_data_disks_validate", None) or []:
            Path(p).unlink(missing_ok=True)


def steps_for_build(template: dict) -> list[Step]:
    sizes = [d["sizeGB"] for d in template.get("additionalDataDisks") or []]
    return [DataDisksStep("data disks", sizes)] if sizes else []


def steps_for_validation(template: dict) -> list[Step]:
    return [ValidationDataDisksStep("validation data disks")] if template.get("additionalDataDisks") else []
