"""The build plan: the steps a template asks for, around the hidden ones AIB also runs.

Building      Source (resolve; ``latest`` → exact version) · Disk (qcow2 overlay, grown to osDiskSizeGB) ·
              Boot (NoCloud seed with a per-run key, or the key injected offline; QEMU; SSH)
Customizing   the template's customizers · Generalize (in-guest deprovision, as AIB's hidden step)
Optimizing    Trim (vmBoot Enabled: discard and zero free blocks) · Capture (power off, flatten, sparsify)
Validating    ValidationBoot (a fresh VM on the built image) · the inVMValidations
Distributing  one step per distributor (each independent)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from vmforge.disk import qemuimg
from vmforge.kinds import make_step
from vmforge.kinds.base import BuildError, Context, Step
from vmforge.machine import inject
from vmforge.machine.firmware import for_generation
from vmforge.machine.guestos import for_os
from vmforge.runner import datadisks, fingerprint
from vmforge.runner.guest import BootWatch, boot
from vmforge.sbom import SbomStep
from vmforge.service.runstate import RunSubState

# cloud-init's marker files: an image has cloud-init if one of these exists in its root file system.
CLOUD_INIT_PATHS = ("/usr/bin/cloud-init", "/usr/local/bin/cloud-init")


def _loop(ctx: Context) -> asyncio.AbstractEventLoop:
    return ctx.state["loop"]


class SourceStep(Step):
    kind = "Source"
    phase = RunSubState.BUILDING

    def run(self, ctx: Context) -> None:
        src = ctx.template["source"]
        resolved = ctx.state["resolved"]
        ctx.os_type = resolved.os_type or "Linux"
        ctx.state["hyper_v_generation"] = resolved.hyper_v_generation
        where = src.get("imageId") or src.get("imageVersionId") or ":".join(
            str(src.get(k)) for k in ("publisher", "offer", "sku", "version"))
        ctx.events.line(f"source {src['type']} {where} → {resolved.path.name} ({ctx.os_type}"
                        + (f", version {resolved.exact_version}" if resolved.exact_version else "") + ")", "source")


def make_overlay(ctx: Context, base: Path, disk: Path) -> bool:
    """A qcow2 overlay ``disk`` on ``base``, grown to vmProfile.osDiskSizeGB when that is larger; whether it
    grew. (Made again, from scratch, when a boot is retried.)"""
    size = (ctx.template.get("vmProfile") or {}).get("osDiskSizeGB") or 0
    virtual = int(qemuimg.info(base, "qcow2")["virtual-size"])
    grow = size * 1024**3 if size * 1024**3 > virtual else None
    disk.unlink(missing_ok=True)
    qemuimg.create_overlay(base, disk, "qcow2", size_bytes=grow)
    return grow is not None


class DiskStep(Step):
    """A qcow2 overlay on the (read-only) source, grown to vmProfile.osDiskSizeGB when that is larger."""

    kind = "Disk"
    phase = RunSubState.BUILDING

    def __init__(self, name: str, base: str, disk_name: str) -> None:
        super().__init__(name, {"base": base})
        self.base_key, self.disk_name = base, disk_name

    def run(self, ctx: Context) -> None:
        base: Path = ctx.state[self.base_key]
        disk = ctx.work_dir / self.disk_name
        grown = make_overlay(ctx, base, disk)
        ctx.state["disk"] = disk
        size = (ctx.template.get("vmProfile") or {}).get("osDiskSizeGB")
        ctx.events.line(f"overlay {disk.name} on {base.name}" + (f", grown to {size} GiB" if grown else ""), "disk")

    def cleanup(self, ctx: Context) -> None:
        (ctx.work_dir / self.disk_name).unlink(missing_ok=True)


class FetchStep(Step):
    """Every download of the template (scriptUri, sourceUri), fetched under the outbound policy and checked
    against its sha256 before the first VM starts: a refused address or a wrong checksum fails the run in
    seconds, naming the step and the URL, instead of minutes later after a boot."""

    kind = "Downloads"
    phase = RunSubState.BUILDING

    def __init__(self, name: str, steps: list[Step]) -> None:
        super().__init__(name, {})
        self.steps = steps

    def run(self, ctx: Context) -> None:
        from vmforge.fetch import safe_url

        count = 0
        for step in self.steps:
            for url, sha256, where in step.downloads():
                try:
                    path = ctx.fetch(url, sha256)
                except BuildError as e:
                    raise BuildError(f"{step.kind} \"{step.name}\" ({where}): {e}", code=e.code) from e
                count += 1
                fingerprint.note_download(ctx.state, url, path)  # a Succeeded run records what it used
                ctx.events.line(f"{where}: {safe_url(url)} → {path.stat().st_size} bytes"
                                + (", sha256 verified" if sha256 else ""), "downloads")
        if not count:
            ctx.events.line("nothing to download", "downloads")


def needs_offline_key(image: Path, work: Path, cache: dict[str, bool]) -> bool:
    """Whether an image lacks cloud-init (then the build key is injected offline). Checked once per image."""
    key = image.name
    if key not in cache:
        raw = work / "probe.raw"
        try:
            qemuimg.convert(image, raw, "raw", src_fmt="qcow2")
            offset = inject.root_offset(raw)
            found = any("Type:" in inject.debugfs(raw, offset, [f"stat {p}"]) for p in CLOUD_INIT_PATHS)
            cache[key] = not found
        except Exception:  # noqa: BLE001 — not ext*, or unreadable: rely on the seed
            cache[key] = False
        finally:
            raw.unlink(missing_ok=True)
    return cache[key]


class BootStep(Step):
    kind = "Boot"
    phase = RunSubState.BUILDING

    def __init__(self, name: str, role: str, probe_cache: dict[str, bool]) -> None:
        super().__init__(name, {"role": role})
        self.role = role
        self.probe_cache = probe_cache

    def run(self, ctx: Context) -> None:
        from vmforge.machine.ssh import generate_keypair, private_openssh

        disk: Path = ctx.state["disk"]
        base: Path = ctx.state["base_for_" + self.role]
        offline = for_os(ctx.os_type).offline_key_injection and needs_offline_key(base, ctx.work_dir,
                                                                                   self.probe_cache)
        keys = generate_keypair() if offline else None
        host = generate_keypair("vmforge-build-host") if offline else None  # the VM's SSH host key, pinned

        def inject_key() -> None:
            raw = ctx.work_dir / f"{self.role}.raw"
            inject.inject_into_image(disk, "qcow2", [keys.public], raw, host_key=(private_openssh(host), host.public))
            disk.unlink(missing_ok=True)
            raw.rename(disk)

        def reset_disk() -> None:  # a boot retried under TCG starts from the disk as it was before
            make_overlay(ctx, base, disk)
            if offline:
                inject_key()

        if offline:
            inject_key()
            ctx.events.line("no cloud-init in the image: the build key and SSH host key were injected offline", "boot")
        fmt = "raw" if offline else "qcow2"
        ctx.state["disk_format"] = fmt
        generation = ctx.state.get("hyper_v_generation")
        firmware = for_generation(generation)
        ctx.events.line(f"firmware: {'UEFI (OVMF)' if firmware == 'uefi' else 'BIOS'} for hyperVGeneration "
                        f"{generation or 'V1'}", "boot")

        def on_vm(vm) -> None:  # noqa: ANN001 — registered at once, so that a cancel during boot reaches it
            ctx.state["vm_" + self.role] = vm
            ctx.state.get("on_vm_started", lambda role: None)(self.role)  # staged in the template's group

        guest, _ = boot(disk, fmt, ctx.work_dir / f"vm-{self.role}", ctx.events, _loop(ctx),
                        vm_size=(ctx.template.get("vmProfile") or {}).get("vmSize"), os_type=ctx.os_type,
                        with_seed=not offline, key=keys, accelerator=ctx.state.get("accelerator"),
                        firmware=firmware, watch=BootWatch(check_run=ctx.check, on_vm=on_vm), reset_disk=reset_disk,
                        host_key=host, guest_policy=ctx.state.get("guest_policy"),
                        metadata_app=ctx.state.get("metadata_app"), data_disks=datadisks.vm_disks(ctx, self.role))
        ctx.guest = guest
        ctx.state["vm_" + self.role] = guest.vm

    def cleanup(self, ctx: Context) -> None:
        """An abnormal ending (failure, cancel, timeout): stop at once, the disk is not kept running."""
        vm = ctx.state.pop("vm_" + self.role, None)
        if ctx.guest is not None and ctx.guest.vm is vm:
            ctx.guest.close()
            ctx.guest = None
        if vm is not None:
            vm.stop(timeout=0)


class PowerOffStep(Step):
    """The validation VM's orderly ending, as the build VM's (Capture): from inside, then ACPI, then a stop."""

    kind = "PowerOff"
    phase = RunSubState.VALIDATING

    def run(self, ctx: Context) -> None:
        ctx.events.line(ctx.guest.poweroff(), "poweroff")


class GeneralizeStep(Step):
    kind = "Generalize"
    phase = RunSubState.CUSTOMIZING

    def run(self, ctx: Context) -> None:
        status = ctx.guest.run(for_os(ctx.os_type).deprovision_command(), source="deprovision")
        if status != 0:
            raise BuildError(f"The deprovision step failed with status {status}.", code="Other")


class TrimStep(Step):
    """vmBoot optimization: hand free blocks back (fstrim with discard=unmap punches holes in the overlay),
    then zero what trim could not reach, so the captured image is smaller and copies faster."""

    kind = "Optimize"
    phase = RunSubState.OPTIMIZING

    def run(self, ctx: Context) -> None:
        disk = Path(ctx.state["disk"])
        before = disk.stat().st_blocks * 512  # the VM holds the image's lock: measure the file itself
        ctx.guest.run(for_os(ctx.os_type).trim_command(), source="optimize")
        after = disk.stat().st_blocks * 512
        ctx.state["optimize_before"] = (before, after)
        ctx.events.line(f"vmBoot optimization: build disk {before / 1e6:.1f} MB allocated before trim, "
                        f"{after / 1e6:.1f} MB after", "optimize")


class CaptureStep(Step):
    """Power the VM off: its overlay is the built image. (Each distributor flattens it into its own sparse
    output — a stored qcow2, a fixed VHD — straight from the overlay, so no intermediate copy is written.)"""

    kind = "Capture"
    phase = RunSubState.OPTIMIZING

    def run(self, ctx: Context) -> None:
        ctx.events.line(ctx.guest.poweroff(), "capture")
        out = Path(ctx.state["disk"])
        if ctx.state.get("disk_format", "qcow2") != "qcow2":  # an offline-injected raw copy: make it qcow2
            flat = ctx.work_dir / "built.qcow2"
            qemuimg.convert(out, flat, "qcow2", src_fmt=ctx.state["disk_format"])
            out.unlink(missing_ok=True)
            out = flat
        ctx.state["image_path"] = out
        ctx.state["base_for_validate"] = out
        ctx.events.line(f"built image {out.name}: {out.stat().st_blocks * 512 / 1e6:.1f} MB written over the "
                        "source", "capture")

    def cleanup(self, ctx: Context) -> None:
        (ctx.work_dir / "built.qcow2").unlink(missing_ok=True)


def plan(ctx: Context, probe_cache: dict[str, bool]) -> list[Step]:
    """Every step of the run, in order (prepared, not yet run)."""
    t: dict[str, Any] = ctx.template
    validate = t.get("validate") or {}
    validations = validate.get("inVMValidations") or []
    customizers = [make_step("customize", c, i) for i, c in enumerate(t.get("customize") or [])]
    validators = [make_step("validate", v, i) for i, v in enumerate(validations)]
    fetch = FetchStep("downloads", validators if validate.get("sourceValidationOnly") else customizers + validators)
    steps: list[Step] = [SourceStep("source"), fetch, DiskStep("build disk", "base_for_build", "build.qcow2"),
                         *datadisks.steps_for_build(t), BootStep("build VM", "build", probe_cache)]
    if validate.get("sourceValidationOnly"):
        steps = [SourceStep("source"), fetch, DiskStep("validation disk", "base_for_build", "validate.qcow2"),
                 *datadisks.steps_for_build(t), BootStep("validation VM", "build", probe_cache)]
        steps += [*validators, PowerOffStep("validation VM")]
    else:
        steps += customizers
        steps.append(GeneralizeStep("deprovision"))
        if ((t.get("optimize") or {}).get("vmBoot") or {}).get("state") == "Enabled":
            steps.append(TrimStep("vmBoot"))
        steps.append(CaptureStep("capture"))
        steps.append(SbomStep("sbom"))  # the built disk's packages, read offline (vmforge.sbom)
        if validations:
            steps += [DiskStep("validation disk", "base_for_validate", "validate.qcow2"),
                      BootStep("validation VM", "validate", probe_cache)]
            for s in steps[-2:]:
                s.phase = RunSubState.VALIDATING
            steps[-1:-1] = datadisks.steps_for_validation(t)  # before the validation VM boots
            steps += [*validators, PowerOffStep("validation VM")]
    return steps


def distribution(ctx: Context) -> list[Step]:
    return [make_step("distribute", d, i) for i, d in enumerate(ctx.template.get("distribute") or [])]
