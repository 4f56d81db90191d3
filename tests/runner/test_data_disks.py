"""additionalDataDisks in the build plan, on the QEMU command line and through the VHD distributor (no VM)."""

from __future__ import annotations

from pathlib import Path

from vmforge.disk import qemuimg
from vmforge.events import RunEvents
from vmforge.kinds.base import Context
from vmforge.kinds.distributors.vhd import VhdStep, data_disk_uri
from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.runner.build import plan
from vmforge.runner.datadisks import DataDisksStep, ValidationDataDisksStep, vm_disks

GIB = 1024**3


def ctx(tmp: Path, template: dict) -> Context:
    return Context(run_id=7, work_dir=tmp, data_dir=tmp, events=RunEvents(tmp / "log"), template=template,
                   template_name="tpl", template_location="westus", cancel_requested=lambda: False,
                   fetch=lambda url, sha: tmp, artifacts=None)


def names(steps) -> list[str]:  # noqa: ANN001
    return [f"{s.kind}:{s.name}" for s in steps]


def test_plan_makes_the_disks_before_each_vm_boots(tmp_path: Path) -> None:
    t = {"source": {"type": "ManagedImage"}, "additionalDataDisks": [{"sizeGB": 2}, {"sizeGB": 1}],
         "customize": [{"type": "Shell", "name": "c", "inline": ["true"]}],
         "validate": {"inVMValidations": [{"type": "Shell", "name": "v", "inline": ["true"]}]},
         "distribute": [{"type": "VHD", "runOutputName": "vhd"}]}
    got = names(plan(ctx(tmp_path, t), {}))
    assert got.index("DataDisks:data disks") == got.index("Boot:build VM") - 1
    assert got.index("Disk:build disk") < got.index("DataDisks:data disks")
    assert got.index("DataDisks:validation data disks") == got.index("Boot:validation VM") - 1
    assert got.index("Capture:capture") < got.index("DataDisks:validation data disks")
    steps = plan(ctx(tmp_path, t), {})
    (dd,) = [s for s in steps if isinstance(s, DataDisksStep)]
    assert dd.sizes == [2, 1] and dd.options == {"sizesGB": [2, 1]}  # part of the content-addressed step id
    assert not [s for s in plan(ctx(tmp_path, {**t, "additionalDataDisks": None}), {}) if s.kind == "DataDisks"]


def test_blank_disks_then_validation_overlays(tmp_path: Path) -> None:
    c = ctx(tmp_path, {})
    step = DataDisksStep("data disks", [3, 1])
    step.run(c)
    disks = vm_disks(c, "build")
    assert [d.name for d in disks] == ["data-0.qcow2", "data-1.qcow2"] and c.state["data_disks"] == disks
    assert [qemuimg.info(d, "qcow2")["virtual-size"] for d in disks] == [3 * GIB, GIB]
    assert all(d.stat().st_blocks * 512 < 1024 * 1024 for d in disks)  # sparse
    ValidationDataDisksStep("validation data disks").run(c)
    overlays = vm_disks(c, "validate")
    assert [qemuimg.info(o, "qcow2").get("backing-filename") for o in overlays] == [str(d.resolve()) for d in disks]
    step.cleanup(c)
    assert not any(d.exists() for d in disks)


def test_data_disks_follow_the_os_disk_in_lun_order(tmp_path: Path) -> None:
    d0, d1 = tmp_path / "data-0.qcow2", tmp_path / "data-1.qcow2"
    vm = BuildVM(VMSpec(disk=tmp_path / "os.qcow2", workdir=tmp_path, seed=tmp_path / "seed.iso", accel="tcg",
                        network="restricted", data_disks=[d0, d1]))
    joined = " ".join(vm.command())
    at = [joined.index(x) for x in ("drive=os,bootindex=0", f"file={d0},format=qcow2,if=none,id=data0",
                                    "drive=data0,serial=lun-0", f"file={d1},format=qcow2,if=none,id=data1",
                                    "drive=data1,serial=lun-1")]
    assert at == sorted(at)
    assert joined.count("bootindex") == 1  # only the OS disk boots
    assert "id=data" not in " ".join(BuildVM(VMSpec(disk=tmp_path / "os.qcow2", workdir=tmp_path, accel="tcg",
                                                     network="restricted")).command())


def test_data_disk_uri_rule() -> None:
    assert data_disk_uri("file:///v/t-vhd-run3.vhd", 0) == "file:///v/t-vhd-run3-datadisk-0.vhd"
    assert data_disk_uri("https://acct.blob.core.windows.net/c/img.VHD", 2) == \
        "https://acct.blob.core.windows.net/c/img-datadisk-2.vhd"
    assert data_disk_uri("https://acct.blob.core.windows.net/c/img", 1) == \
        "https://acct.blob.core.windows.net/c/img-datadisk-1.vhd"
    # Never after the query string: the blob name would be the OS disk's again.
    assert data_disk_uri("https://acct.blob.core.windows.net/c/img.vhd?sv=1&sig=x", 0) == \
        "https://acct.blob.core.windows.net/c/img-datadisk-0.vhd?sv=1&sig=x"


def test_vhd_distributor_writes_one_vhd_per_data_disk(tmp_path: Path) -> None:
    c = ctx(tmp_path, {})
    os_disk = tmp_path / "built.qcow2"
    qemuimg.create_blank(os_disk, 64 * 1024 * 1024)
    DataDisksStep("data disks", [1, 2]).run(c)
    c.state["image_path"] = os_disk
    VhdStep("vhd", {"type": "VHD", "runOutputName": "vhd"}).run(c)
    uri = c.outputs["vhd"]["artifact_uri"]
    assert uri == (tmp_path / "vhds" / "imagebuilder" / "tpl-vhd-run7.vhd").resolve().as_uri()
    assert qemuimg.check_fixed_vhd(Path(uri.removeprefix("file://"))) == 64 * 1024 * 1024
    for lun, size in ((0, GIB), (1, 2 * GIB)):
        path = Path(data_disk_uri(uri, lun).removeprefix("file://"))
        assert qemuimg.check_fixed_vhd(path) == size
        assert f"data disk LUN {lun}: fixed VHD ({size} bytes) written to {path.as_uri()}" in \
            (tmp_path / "log").read_text()
    assert not list(tmp_path.glob("*.vhd"))  # the temporary VHDs are gone
