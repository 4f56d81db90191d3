"""The reference build, three ways, in one run on one machine — and the floor and vmforge again on a source
that ignores the ACPI power button (the test image with systemd-logind masked, as a debootstrap minbase image
without logind or acpid is):

* floor   — a hand-run cycle with vmforge's machine layer: qcow2 overlay, boot with a NoCloud seed, 3 SSH
            commands, 20 MiB upload + ``sha256sum -c``, power off, fixed-VHD convert;
* vmforge — the same work as an image template run through the API (3 Shell customizers, a 20 MiB File with
            its sha256, the hidden deprovision, VHD + ManagedImage distribution), POST run → terminal state;
* packer  — Debian's ``packer`` (1.6.6) qemu builder with the equivalent template (accelerator tcg, OS disk
            first in qemuargs, the same seed ISO), then the same fixed-VHD convert.

    .venv/bin/python -m bench.build_compare [--runs 3] [--skip-packer]

Reports medians and the ratios vmforge/floor (goal ≤ 1.05×) on both sources, and vmforge/packer.
The floor powers the ACPI image off with the power button and the other one from inside over SSH (``sync;
poweroff``, what Packer's ``shutdown_command`` does): the cheapest way each can be powered off.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.server
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

from bench.common import ROOT, save, start_server

SUB = "00000000-0000-0000-0000-0000000000b1"
V = "2025-10-01"
COMMANDS = ["uname -a", "cat /etc/os-release", "df -h /"]
PAYLOAD_MIB = 20


def test_image() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "build-test-image")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def no_acpi_image(image: Path, tmp: Path) -> Path:
    """The test image with systemd-logind masked (written offline with debugfs): nothing in it handles the ACPI
    power button any more."""
    from vmforge.disk import qemuimg
    from vmforge.machine import inject

    raw = tmp / "noacpi.raw"
    qemuimg.convert(image, raw, "raw", src_fmt="qcow2")
    offset = inject.root_offset(raw)
    inject.debugfs(raw, offset, ["symlink /etc/systemd/system/systemd-logind.service /dev/null"], write=True)
    assert "/dev/null" in inject.debugfs(raw, offset, ["stat /etc/systemd/system/systemd-logind.service"])
    out = tmp / "noacpi.qcow2"
    qemuimg.convert(raw, out, "qcow2", src_fmt="raw")
    raw.unlink()
    return out


def floor(image: Path, payload: Path, digest: str, work: Path, acpi: bool = True) -> float:
    from vmforge.disk import qemuimg
    from vmforge.machine.qemu import BuildVM, VMSpec
    from vmforge.machine.seed import SeedConfig, make_seed
    from vmforge.machine.ssh import SSHSession, generate_keypair

    work.mkdir(parents=True)
    t0 = time.perf_counter()
    overlay = work / "overlay.qcow2"
    qemuimg.create_overlay(image, overlay, "qcow2")
    keys = generate_keypair()
    seed = make_seed(SeedConfig(authorized_keys=[keys.public]), work / "seed.iso")
    with BuildVM(VMSpec(disk=overlay, workdir=work / "vm", seed=seed)) as vm:
        async def session() -> None:
            ssh = SSHSession(vm.ssh_port, keys.private)
            await ssh.wait_ready(600, interval=0.25)
            for cmd in COMMANDS:
                assert await ssh.run(cmd) == 0
            await ssh.upload(payload, "/tmp/payload.bin")
            assert await ssh.run(f"echo '{digest}  /tmp/payload.bin' | sha256sum -c") == 0
            if not acpi:  # what Packer's shutdown_command does
                try:
                    await ssh.run("sync; poweroff", timeout=15)
                except Exception:  # noqa: BLE001 — the connection drops as the guest goes down
                    pass
            await ssh.close()

        asyncio.run(session())
        assert vm.wait(120) if not acpi else vm.powerdown(120)
    qemuimg.convert_fixed_vhd(overlay, work / "out.vhd", src_fmt="qcow2")
    return time.perf_counter() - t0


def packer(image: Path, payload: Path, digest: str, work: Path) -> float:
    from vmforge.disk import qemuimg
    from vmforge.machine.seed import SeedConfig, make_seed
    from vmforge.machine.ssh import generate_keypair

    work.mkdir(parents=True)
    keys = generate_keypair()
    key_file = work / "id_ed25519"
    key_file.write_bytes(keys.private.export_private_key("openssh"))
    key_file.chmod(0o600)
    seed = make_seed(SeedConfig(authorized_keys=[keys.public]), work / "seed.iso")
    out_dir = work / "out"
    tpl = {
        "builders": [{
            "type": "qemu", "accelerator": "tcg", "disk_image": True, "iso_url": str(image), "iso_checksum": "none",
            "skip_resize_disk": True, "format": "qcow2", "headless": True, "vm_name": "packer.qcow2",
            "output_directory": str(out_dir), "communicator": "ssh", "ssh_username": "root",
            "ssh_private_key_file": str(key_file), "ssh_timeout": "15m", "shutdown_command": "poweroff",
            "memory": 4096, "cpus": 2, "net_device": "virtio-net", "disk_interface": "virtio",
            "qemuargs": [["-drive", f"file={out_dir}/packer.qcow2,if=virtio,cache=writeback,format=qcow2"],
                         ["-drive", f"file={seed},media=cdrom,readonly=on"]],
        }],
        "provisioners": [{"type": "shell", "inline": [c]} for c in COMMANDS] + [
            {"type": "file", "source": str(payload), "destination": "/tmp/payload.bin"},
            {"type": "shell", "inline": [f"echo '{digest}  /tmp/payload.bin' | sha256sum -c"]},
        ],
    }
    (work / "template.json").write_text(json.dumps(tpl))
    t0 = time.perf_counter()
    subprocess.run(["packer", "build", "-color=false", str(work / "template.json")], check=True, cwd=work,
                   stdout=open(work / "packer.log", "wb"), stderr=subprocess.STDOUT,
                   env={**os.environ, "PACKER_LOG": "0", "CHECKPOINT_DISABLE": "1"})
    qemuimg.convert_fixed_vhd(out_dir / "packer.qcow2", work / "out.vhd", src_fmt="qcow2")
    return time.perf_counter() - t0


class Files:
    def __init__(self, root: Path) -> None:
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def vmforge_runs(image: Path, payload: Path, digest: str, runs: int, tmp: Path) -> list[float]:
    imports = tmp / f"imports-{uuid.uuid4().hex[:8]}"
    imports.mkdir()
    os.link(image, imports / "src.qcow2") if image.stat().st_dev == imports.stat().st_dev else \
        shutil.copy(image, imports / "src.qcow2")
    files = Files(payload.parent)
    srv = start_server("--import-root", str(imports), "--allow-fetch-from", "127.0.0.0/8")
    times = []
    try:
        with srv.client() as h:
            img = f"/subscriptions/{SUB}/resourceGroups/src/providers/Microsoft.Compute/images/debian12"
            r = h.put(img, params={"api-version": "2026-04-01"}, json={"location": "westus", "properties": {
                "hyperVGeneration": "V1", "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized",
                                                                        "blobUri": (imports / "src.qcow2").as_uri()}}}})
            assert r.status_code in (200, 201), r.text
            for i in range(runs):
                name = f"ref-{uuid.uuid4().hex[:6]}"
                tpl = f"/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"
                body = {"location": "westus", "identity": {"type": "None"}, "properties": {
                    "source": {"type": "ManagedImage", "imageId": img},
                    "customize": [{"type": "Shell", "name": f"cmd{j}", "inline": [c]} for j, c in enumerate(COMMANDS)]
                    + [{"type": "File", "name": "payload", "sourceUri": f"{files.base}/{payload.name}",
                        "destination": "/tmp/payload.bin", "sha256Checksum": digest}],
                    "distribute": [{"type": "VHD", "runOutputName": "vhd"},
                                   {"type": "ManagedImage", "runOutputName": "mi", "location": "westus",
                                    "imageId": f"/subscriptions/{SUB}/resourceGroups/out/providers/Microsoft.Compute/images/{name}"}]}}
                assert h.put(tpl, params={"api-version": V}, json=body).status_code == 201
                while h.get(tpl, params={"api-version": V}).json()["properties"]["provisioningState"] != "Succeeded":
                    time.sleep(0.05)
                t0 = time.perf_counter()
                assert h.post(tpl + "/run", params={"api-version": V}).status_code == 202
                while True:
                    st = h.get(tpl, params={"api-version": V}).json()["properties"]["lastRunStatus"]
                    if st["runState"] not in ("Running", "Canceling"):
                        break
                    time.sleep(0.2)
                elapsed = time.perf_counter() - t0
                assert st["runState"] == "Succeeded", st
                times.append(elapsed)
                print(f"vmforge run {i + 1}: {elapsed:.1f} s", flush=True)
    finally:
        srv.stop()
        files.httpd.shutdown()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-packer", action="store_true")
    args = ap.parse_args()
    image = test_image()
    tmp = Path(tempfile.mkdtemp(prefix="vmforge-bench-build-"))
    payload = tmp / "payload.bin"
    payload.write_bytes(os.urandom(PAYLOAD_MIB * 1024 * 1024))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    result: dict = {"runs": args.runs}
    try:
        quiet = no_acpi_image(image, tmp)
        floors, packers, vm, floors_q, vm_q = [], [], [], [], []
        for i in range(args.runs):  # interleaved, so that load drifts hit every way alike
            floors.append(floor(image, payload, digest, tmp / f"floor{i}"))
            print(f"floor run {i + 1}: {floors[-1]:.1f} s", flush=True)
            shutil.rmtree(tmp / f"floor{i}", ignore_errors=True)
            if not args.skip_packer and shutil.which("packer"):
                packers.append(packer(image, payload, digest, tmp / f"packer{i}"))
                print(f"packer run {i + 1}: {packers[-1]:.1f} s", flush=True)
                shutil.rmtree(tmp / f"packer{i}", ignore_errors=True)
            vm += vmforge_runs(image, payload, digest, 1, tmp)
            floors_q.append(floor(quiet, payload, digest, tmp / f"floorq{i}", acpi=False))
            print(f"floor (no ACPI) run {i + 1}: {floors_q[-1]:.1f} s", flush=True)
            shutil.rmtree(tmp / f"floorq{i}", ignore_errors=True)
            vm_q += vmforge_runs(quiet, payload, digest, 1, tmp)
        result["noacpi_floor_s"] = [round(x, 1) for x in floors_q]
        result["noacpi_vmforge_s"] = [round(x, 1) for x in vm_q]
        result["noacpi_floor_median_s"] = round(statistics.median(floors_q), 1)
        result["noacpi_vmforge_median_s"] = round(statistics.median(vm_q), 1)
        result["noacpi_vmforge_over_floor"] = round(statistics.median(vm_q) / statistics.median(floors_q), 3)
        result["floor_s"] = [round(x, 1) for x in floors]
        result["vmforge_s"] = [round(x, 1) for x in vm]
        result["floor_median_s"] = round(statistics.median(floors), 1)
        result["vmforge_median_s"] = round(statistics.median(vm), 1)
        result["vmforge_over_floor"] = round(statistics.median(vm) / statistics.median(floors), 3)
        if packers:
            result["packer_s"] = [round(x, 1) for x in packers]
            result["packer_median_s"] = round(statistics.median(packers), 1)
            result["vmforge_over_packer"] = round(statistics.median(vm) / statistics.median(packers), 3)
        print(json.dumps(result, indent=2))
        print("saved", save("build_compare", result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
