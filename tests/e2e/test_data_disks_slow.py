"""additionalDataDisks and source.planInfo, with one real build and one verification boot.

The test image is registered as a platform image; a template builds from it with a purchase plan and one 1 GiB
data disk, which a Shell customizer partitions, formats and writes a file to, and distributes to a managed
image, a gallery image version and a VHD in the same run; while it runs, the staging group lists the data
disk. Through azure-mgmt-compute: the image lists the data
disk (storageProfile.dataDisks), the version its dataDiskImages, the image definition the purchase plan. Then a
VM is booted (QEMU, test side: vmforge creates no VMs) from the distributed artifacts — the OS disk's VHD, the
managed image's data disk (its blobUri) and the VHD distributor's data disk VHD — and sees both data disks
holding the file.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.conftest import SUBSCRIPTION, Server
from tests.e2e.test_build import compute, imports, log_of, run_template, start_server

pytestmark = pytest.mark.slow

__all__ = ["imports"]  # the fixture, from test_build

OUT = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/out/providers/Microsoft.Compute"
PLATFORM = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/publishers/vmforge"
            "/artifacttypes/vmimage/offers/debian/skus/12/versions/1.0.0")
PLAN = {"planName": "pro-12", "planProduct": "debian-pro", "planPublisher": "vmforge-labs"}

# The customizer: LUN 0 is /dev/vdb (and /dev/disk/by-id/virtio-lun-0); one MBR partition (written with python3,
# which cloud-init brings: minbase has no sfdisk), ext4, a file on it.
CUSTOMIZE = [
    "test -b /dev/vdb && test \"$(readlink -f /dev/disk/by-id/virtio-lun-0)\" = /dev/vdb",
    "test \"$(blockdev --getsize64 /dev/vdb)\" = 1073741824",
    "python3 -c \"import os,struct; f=os.open('/dev/vdb',os.O_RDWR); n=os.lseek(f,0,2)//512; "
    "os.lseek(f,446,0); os.write(f,struct.pack('<B3sB3sII',0,bytes(3),0x83,bytes(3),2048,n-2048)+bytes(48)"
    "+bytes([0x55,0xaa])); os.close(f)\"",
    "blockdev --rereadpt /dev/vdb; udevadm settle || true",
    "mkfs.ext4 -q -L vmfdata /dev/vdb1",
    "mkdir -p /mnt/data && mount /dev/vdb1 /mnt/data",
    "echo \"$MARKER\" > /mnt/data/hello.txt && sync && umount /mnt/data",
]


def path_of(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(unquote(urlparse(uri).path))


def test_data_disk_and_plan_reach_every_output_and_a_booted_vm(tmp_path_factory: pytest.TempPathFactory,
                                                               imports: Path, tmp_path: Path) -> None:
    from vmforge.disk import qemuimg
    from vmforge.kinds.distributors.vhd import data_disk_uri

    marker = f"written-by-the-customizer-{uuid.uuid4().hex[:8]}"
    srv = start_server(tmp_path_factory.mktemp("datadisks"), imports)
    try:
        with srv.http() as h:
            r = h.put(PLATFORM, params={"api-version": "2026-04-01"}, json={"properties": {
                "blobUri": (imports / "debian12.qcow2").as_uri(), "osType": "Linux"}})
            assert r.status_code in (200, 201), r.text
        cc = compute(srv)
        cc.galleries.begin_create_or_update("out", "gal", {"location": "westus"}).result()
        cc.gallery_images.begin_create_or_update("out", "gal", "debian", {"location": "westus", "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
            "identifier": {"publisher": "vmforge", "offer": "debian", "sku": "12"}}}).result()
        body = {"location": "westus", "identity": {"type": "None"}, "properties": {
            "source": {"type": "PlatformImage", "publisher": "vmforge", "offer": "debian", "sku": "12",
                       "version": "latest", "planInfo": PLAN},
            "additionalDataDisks": [{"sizeGB": 1}],
            "customize": [{"type": "Shell", "name": "data-disk", "inline": [f"MARKER={marker}", *CUSTOMIZE]}],
            "distribute": [
                {"type": "ManagedImage", "runOutputName": "img", "imageId": f"{OUT}/images/with-data",
                 "location": "westus"},
                {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": f"{OUT}/galleries/gal/images/debian",
                 "targetRegions": [{"name": "westus"}]},
                {"type": "VHD", "runOutputName": "vhd"}]}}
        client, group, name = run_template(srv, body, wait=False)
        ops = client.virtual_machine_image_templates
        staged = staged_while_running(srv, ops, group, name)
        vm = next(n for rtype, n in staged if rtype == "Microsoft.Compute/virtualMachines")
        assert ("Microsoft.Compute/disks", f"{vm}-datadisk-0") in staged  # listed in the staging group too
        tpl = ops.get(group, name)
        text = log_of(srv, group, name)
        if tpl.last_run_status.run_state != "Succeeded":
            pytest.fail(f"{tpl.last_run_status.message}\n{text[-4000:]}")
        # The template keeps what was sent (2025-10-01, the SDK's version).
        assert tpl.additional_data_disks[0].size_gb == 1
        assert tpl.source.plan_info.plan_name == "pro-12" and tpl.source.plan_info.plan_publisher == "vmforge-labs"
        outputs = {o.name: o for o in ops.list_run_outputs(group, name)}
        assert "data disk LUN 0" in text

        # The managed image lists its data disk.
        image = cc.images.get("out", "with-data")
        (disk,) = image.storage_profile.data_disks
        assert disk.lun == 0 and disk.disk_size_gb == 1
        assert qemuimg.info(path_of(disk.blob_uri), "qcow2")["virtual-size"] == 1024**3
        # The gallery version its dataDiskImages; the definition carries the source's plan.
        version = cc.gallery_image_versions.get("out", "gal", "debian", outputs["sig"].artifact_id.rsplit("/", 1)[1])
        (ddi,) = version.storage_profile.data_disk_images
        assert ddi.lun == 0 and ddi.size_in_gb == 1
        plan = cc.gallery_images.get("out", "gal", "debian").purchase_plan
        assert (plan.name, plan.product, plan.publisher) == ("pro-12", "debian-pro", "vmforge-labs")
        # The VHD distributor wrote one VHD per data disk beside the OS disk's.
        os_vhd = path_of(outputs["vhd"].artifact_uri)
        data_vhd = path_of(data_disk_uri(outputs["vhd"].artifact_uri, 0))
        assert data_vhd.name.endswith("-datadisk-0.vhd") and str(data_vhd) in text
        assert qemuimg.check_fixed_vhd(data_vhd) == 1024**3

        seen = boot_and_read(os_vhd, [(path_of(disk.blob_uri), "qcow2"), (data_vhd, "vpc")], tmp_path)
        assert seen == ["vdb1 vdc1", marker, marker], seen
    finally:
        srv.stop()


def staged_while_running(srv: Server, ops, group: str, name: str) -> set[tuple[str, str]]:  # noqa: ANN001
    """(type, name) of everything seen in the template's staging group while its run was in progress."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    from tests.conftest import StaticToken

    arm = ResourceManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                   connection_verify=srv.cert, retry_total=0)
    staging = ops.get(group, name).exact_staging_resource_group.rsplit("/", 1)[-1]
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 1200
    while True:
        status = ops.get(group, name).last_run_status
        if status is not None and status.run_state not in ("Running", "Canceling"):
            return seen
        seen |= {(r.type, r.name) for r in arm.resources.list_by_resource_group(staging)}
        assert time.monotonic() < deadline, "the build did not end"
        time.sleep(1)


def boot_and_read(os_vhd: Path, data: list[tuple[Path, str]], tmp: Path) -> list[str]:
    """Boot overlays of the OS VHD and the data disks (LUN 0, 1, …) and read each data disk's file."""
    from vmforge.disk import qemuimg
    from vmforge.machine.qemu import BuildVM, VMSpec
    from vmforge.machine.seed import SeedConfig, make_seed
    from vmforge.machine.ssh import SSHSession, generate_keypair

    overlay = tmp / "os.qcow2"
    qemuimg.create_overlay(os_vhd, overlay, "vpc")
    disks = []
    for lun, (path, fmt) in enumerate(data):
        disks.append(tmp / f"data-{lun}.qcow2")
        qemuimg.create_overlay(path, disks[-1], fmt)
    keys = generate_keypair()
    seed = make_seed(SeedConfig(authorized_keys=[keys.public]), tmp / "seed.iso")
    script = ("S=$([ \"$(id -u)\" = 0 ] || echo sudo -n); udevadm settle 2>/dev/null; "
              "ls /dev | grep -E '^vd[b-z][0-9]$' | sort | tr '\\n' ' ' | sed 's/ $//'; echo; "
              "for d in vdb1 vdc1; do $S mkdir -p /mnt/$d && $S mount -o ro /dev/$d /mnt/$d && cat /mnt/$d/hello.txt;"
              " done")
    with BuildVM(VMSpec(disk=overlay, workdir=tmp / "vm", seed=seed, data_disks=disks)) as vm:
        async def read() -> list[str]:
            ssh = SSHSession(vm.ssh_port, keys.private)
            await ssh.wait_ready(300)
            lines: list[str] = []
            rc = await ssh.run(script, on_line=lambda _s, line: lines.append(line))
            await ssh.close()
            assert rc == 0, lines
            return lines

        return asyncio.run(read())
