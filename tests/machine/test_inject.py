"""Offline key injection into an ext4 root file system inside a raw disk (MBR and GPT), no loop devices."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmforge.disk import qemuimg
from vmforge.machine import MachineError
from vmforge.machine.inject import debugfs, inject_authorized_keys, inject_into_image, root_offset

pytestmark = pytest.mark.needs_tools("mkfs.ext4", "sfdisk", "debugfs", "qemu-img")
MIB = 1 << 20


def make_disk(tmp: Path, label: str) -> Path:
    """A 24 MiB raw disk: one Linux partition at 1 MiB holding a tiny root with /etc/passwd."""
    root = tmp / "root"
    (root / "etc").mkdir(parents=True)
    (root / "root").mkdir(mode=0o700)
    (root / "home" / "packer").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                         "packer:x:1000:1000::/home/packer:/bin/bash\n")
    disk = tmp / f"{label}.raw"
    with disk.open("wb") as f:
        f.truncate(24 * MIB)
    table = "label: dos\nstart=2048, type=83\n" if label == "dos" else \
        "label: gpt\nstart=2048, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=table, text=True, check=True, capture_output=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={MIB}", "-d", str(root), str(disk), "20M"],
                   check=True, capture_output=True)
    return disk


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_inject_root_and_user(tmp_path: Path, label: str) -> None:
    disk = make_disk(tmp_path, label)
    assert root_offset(disk) == MIB
    inject_authorized_keys(disk, ["ssh-ed25519 AAAAone k1", "ssh-ed25519 AAAAtwo k2"])
    inject_authorized_keys(disk, ["ssh-ed25519 AAAAthree k3"])  # replaces, not appends
    assert debugfs(disk, MIB, ["cat /root/.ssh/authorized_keys"]) == "ssh-ed25519 AAAAthree k3\n"
    stat = debugfs(disk, MIB, ["stat /root/.ssh/authorized_keys"])
    assert "Mode:  0600" in stat and "User:     0" in stat
    inject_authorized_keys(disk, ["ssh-ed25519 AAAAp kp"], user="packer")
    stat = debugfs(disk, MIB, ["stat /home/packer/.ssh"])
    assert "Mode:  0700" in stat and "User:  1000" in stat
    fsck = subprocess.run(["e2fsck", "-fn", f"{disk}?offset={MIB}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_inject_into_qcow2_makes_a_raw_copy(tmp_path: Path) -> None:
    disk = make_disk(tmp_path, "dos")
    qcow = tmp_path / "src.qcow2"
    qemuimg.convert(disk, qcow, "qcow2", src_fmt="raw")
    out = inject_into_image(qcow, "qcow2", ["ssh-ed25519 AAAAq kq"], tmp_path / "out.raw")
    assert debugfs(out, MIB, ["cat /root/.ssh/authorized_keys"]) == "ssh-ed25519 AAAAq kq\n"


def test_unknown_user_and_no_ext(tmp_path: Path) -> None:
    disk = make_disk(tmp_path, "dos")
    with pytest.raises(MachineError, match="not found"):
        inject_authorized_keys(disk, ["k"], user="nobody-here")
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(4 * MIB))
    with pytest.raises(MachineError, match="no ext2/3/4"):
        root_offset(blank)
