"""vmforge.disk.qemuimg: overlays, resize, fixed VHD conversion and check, sha256."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from vmforge.disk import qemuimg
from vmforge.disk.qemuimg import MIB, DiskError

pytestmark = pytest.mark.needs_tools("qemu-img")


def make_raw(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
        f.seek(0)
        f.write(b"vmforge" * 100)
    return path


def test_overlay_info_and_resize(tmp_path: Path) -> None:
    base = make_raw(tmp_path / "base.raw", 4 * MIB)
    overlay = tmp_path / "os.qcow2"
    qemuimg.create_overlay(base, overlay, "raw")
    meta = qemuimg.info(overlay)
    assert meta["format"] == "qcow2"
    assert meta["virtual-size"] == 4 * MIB
    assert meta["backing-filename"] == str(base.resolve())
    qemuimg.resize(overlay, 8 * MIB)
    assert qemuimg.info(overlay)["virtual-size"] == 8 * MIB
    assert base.stat().st_size == 4 * MIB  # the base is untouched


def test_fixed_vhd_rounds_up_to_whole_mib(tmp_path: Path) -> None:
    src = make_raw(tmp_path / "odd.raw", 3 * MIB + 1234)
    vhd = tmp_path / "out.vhd"
    size = qemuimg.convert_fixed_vhd(src, vhd, src_fmt="raw")
    assert size == 4 * MIB
    assert vhd.stat().st_size == 4 * MIB + 512
    assert (vhd.stat().st_size - 512) % MIB == 0
    assert qemuimg.check_fixed_vhd(vhd) == 4 * MIB
    assert qemuimg.info(vhd, "vpc")["virtual-size"] == 4 * MIB
    assert src.stat().st_size == 3 * MIB + 1234  # the source is never modified
    assert not list(tmp_path.glob("*.pad.qcow2"))
    assert vhd.read_bytes()[:700] == src.read_bytes()[:700]


def test_fixed_vhd_from_qcow2_overlay(tmp_path: Path) -> None:
    base = make_raw(tmp_path / "base.raw", 2 * MIB)
    overlay = tmp_path / "os.qcow2"
    qemuimg.create_overlay(base, overlay, "raw")
    vhd = tmp_path / "out.vhd"
    assert qemuimg.convert_fixed_vhd(overlay, vhd) == 2 * MIB
    footer = vhd.read_bytes()[-512:]
    assert footer[:8] == b"conectix" and struct.unpack(">I", footer[60:64])[0] == 2


def test_check_rejects_dynamic_vhd(tmp_path: Path) -> None:
    src = make_raw(tmp_path / "a.raw", 2 * MIB)
    vhd = tmp_path / "dyn.vhd"
    qemuimg.convert(src, vhd, "vpc", src_fmt="raw", options={"subformat": "dynamic"})
    with pytest.raises(DiskError):
        qemuimg.check_fixed_vhd(vhd)


def test_check_rejects_made_up_files(tmp_path: Path) -> None:
    no_footer = make_raw(tmp_path / "plain.raw", 2 * MIB + 512)
    with pytest.raises(DiskError, match="no VHD footer"):
        qemuimg.check_fixed_vhd(no_footer)
    misaligned = tmp_path / "mis.vhd"
    data = 2 * MIB + 4096
    footer = bytearray(512)
    footer[:8] = b"conectix"
    footer[48:56] = struct.pack(">Q", data)
    footer[60:64] = struct.pack(">I", 2)
    misaligned.write_bytes(bytes(data) + bytes(footer))
    with pytest.raises(DiskError, match="whole number of MiB"):
        qemuimg.check_fixed_vhd(misaligned)
    wrong_size = tmp_path / "size.vhd"
    footer[48:56] = struct.pack(">Q", MIB)
    wrong_size.write_bytes(bytes(2 * MIB) + bytes(footer))
    with pytest.raises(DiskError, match="footer says"):
        qemuimg.check_fixed_vhd(wrong_size)


def test_errors_are_disk_errors(tmp_path: Path) -> None:
    with pytest.raises(DiskError, match="qemu-img info failed"):
        qemuimg.info(tmp_path / "missing.qcow2")


def test_sha256_streams(tmp_path: Path) -> None:
    f = tmp_path / "blob"
    f.write_bytes(b"x" * (5 * MIB + 7))
    assert qemuimg.sha256_file(f, chunk=MIB) == hashlib.sha256(f.read_bytes()).hexdigest()
