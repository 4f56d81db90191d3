"""What counts as a disk image (vmforge.artifacts.formats): a VHD needs a valid footer, a raw file a partition
table or a file system; every way an image file enters the store refuses the rest and keeps nothing."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from tests.artifacts.conftest import (MIB, RG, SUB, ImageMaker, file_uri, make_ext4, make_gpt, make_raw, random_file,
                                      run_tool)
from vmforge.artifacts import Artifacts, formats
from vmforge.artifacts.errors import BadImageFormat, InvalidImage
from vmforge.artifacts.platform import Urn

P = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute"


def blank(path: Path, size: int = 4 * MIB) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    return path


def poke(path: Path, offset: int, data: bytes) -> Path:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return path


def rewrite_footer(vhd: Path, *, disk_type: int | None = None, fix_checksum: bool = True,
                   flip: int | None = None) -> Path:
    """Change the last-sector footer of ``vhd``: its disk type, one flipped byte, with or without a new checksum."""
    size = vhd.stat().st_size
    footer = bytearray(vhd.read_bytes()[size - 512:])
    if disk_type is not None:
        footer[60:64] = struct.pack(">I", disk_type)
    if flip is not None:
        footer[flip] ^= 0xFF
    if fix_checksum:
        footer[64:68] = struct.pack(">I", ~(sum(footer[:64]) + sum(footer[68:])) & 0xFFFFFFFF)
    return poke(vhd, size - 512, bytes(footer))


# ------------------------------------------------------------------------------------------ signatures
@pytest.mark.parametrize("offset,magic,name", [
    (1080, b"\x53\xef", "ext2/3/4"),
    (0, b"XFSB", "XFS"),
    (0x10040, b"_BHRfS_M", "btrfs"),
    (3, b"NTFS    ", "NTFS"),
    (3, b"EXFAT   ", "exFAT"),
])
def test_file_system_signatures(tmp_path: Path, offset: int, magic: bytes, name: str) -> None:
    disk = poke(blank(tmp_path / "fs.img"), offset, magic)
    assert formats.disk_signature(disk) == name
    assert formats.disk_signature(blank(tmp_path / "zeros.img")) is None


def test_partition_tables(tmp_path: Path) -> None:
    assert formats.disk_signature(make_raw(tmp_path / "mbr.img", 4 * MIB)) == "MBR partition table"
    assert formats.disk_signature(make_gpt(tmp_path / "gpt.img")) == "GPT partition table"
    # The 0x55AA mark alone, with four empty entries, is no partition table.
    assert formats.disk_signature(poke(blank(tmp_path / "mark.img"), 510, b"\x55\xaa")) is None
    # 'EFI PART' at LBA 1 alone is GPT.
    assert formats.disk_signature(poke(blank(tmp_path / "g.img"), 512, b"EFI PART")) == "GPT partition table"


def test_made_file_systems(tmp_path: Path) -> None:
    assert formats.disk_signature(make_ext4(tmp_path / "ext4.img")) == "ext2/3/4"
    fat = blank(tmp_path / "fat.img", 8 * MIB)
    run_tool("mkfs.vfat", str(fat))
    assert formats.disk_signature(fat) == "FAT"


# ------------------------------------------------------------------------------------------ detect
@pytest.mark.parametrize("kind", ["raw", "qcow2", "vhdx", "vhd-dynamic", "vhd-fixed"])
def test_real_images_are_detected(image_in: ImageMaker, kind: str) -> None:
    src = image_in(kind)
    named = src.rename(src.with_suffix(".vhd")) if kind.startswith("vhd-") else src
    expected = {"raw": "raw", "qcow2": "qcow2", "vhdx": "vhdx"}.get(kind, "vpc")
    assert formats.detect(named).format == expected


def test_bare_file_systems_and_gpt_are_raw_disks(tmp_path: Path) -> None:
    assert formats.detect(make_ext4(tmp_path / "root.ext4")).format == "raw"
    assert formats.detect(make_gpt(tmp_path / "gpt.raw")).format == "raw"


def test_random_bytes_are_no_disk(tmp_path: Path) -> None:
    with pytest.raises(BadImageFormat) as e:
        formats.detect(random_file(tmp_path / "x.vhd"), target="t", source="https://acct.example/c/x.vhd?sig=S")
    assert e.value.code == "BadImageFormat" and e.value.status == 400 and e.value.target == "t"
    assert "'https://acct.example/c/x.vhd'" in e.value.message and "VHD footer" in e.value.message
    assert "sig=" not in e.value.message
    with pytest.raises(BadImageFormat) as e:
        formats.detect(random_file(tmp_path / "x.img"))
    assert "neither a partition table" in e.value.message
    with pytest.raises(BadImageFormat):  # zeros too: an empty disk is nothing to boot
        formats.detect(blank(tmp_path / "zeros.raw"))
    # The name the blob has, not the local file's, says what is claimed.
    with pytest.raises(BadImageFormat, match="VHD footer"):
        formats.detect(make_raw(tmp_path / "dl-1234", 4 * MIB), source="file:///imports/disk.VHD")
    # Export of a local file asks for no disk signature.
    assert formats.detect(blank(tmp_path / "plain.raw"), require_disk=False).format == "raw"


def test_a_vhd_name_needs_a_vhd(image_in: ImageMaker) -> None:
    qcow = image_in("qcow2")
    with pytest.raises(BadImageFormat, match="VHD footer"):
        formats.detect(qcow, source=file_uri(qcow.with_name("disk.vhd")))


def test_broken_vhd_footers(image_in: ImageMaker) -> None:
    with pytest.raises(BadImageFormat, match="checksum"):
        formats.detect(rewrite_footer(image_in("vhd-fixed"), flip=30, fix_checksum=False))
    with pytest.raises(BadImageFormat, match="differencing"):
        formats.detect(rewrite_footer(image_in("vhd-fixed"), disk_type=4))
    with pytest.raises(BadImageFormat, match="disk type 7"):
        formats.detect(rewrite_footer(image_in("vhd-fixed"), disk_type=7))
    # A dynamic VHD is read from its header copy; its footer at the end must be whole as well.
    with pytest.raises(BadImageFormat, match="checksum"):
        formats.detect(rewrite_footer(image_in("vhd-dynamic"), flip=20, fix_checksum=False))


def test_vhd_footer_fields(image_in: ImageMaker) -> None:
    footer = formats.read_vhd_footer(image_in("vhd-fixed"))
    assert footer is not None and footer.problem() is None
    assert footer.disk_type == 2 and footer.current_size == 64 * MIB and footer.checksum_ok


# ------------------------------------------------------------------------------------------ every entry
def test_every_entry_into_the_store_refuses_and_keeps_nothing(artifacts: Artifacts, imports: Path,
                                                               raw_image: Path) -> None:
    junk = random_file(imports / "junk.img")
    with pytest.raises(BadImageFormat) as e:
        artifacts.images.put(SUB, RG, "x", {"location": "westus", "properties": {"storageProfile": {"osDisk": {
            "osType": "Linux", "osState": "Generalized", "blobUri": file_uri(junk)}}}})
    assert e.value.target == "properties.storageProfile.osDisk.blobUri" and file_uri(junk) in e.value.message
    with pytest.raises(BadImageFormat) as e:
        artifacts.platform.register(Urn.parse("P:o:s:1.0.0"), junk)
    assert str(junk) in e.value.message
    artifacts.galleries.put_gallery(SUB, RG, "gal", {"location": "westus"})
    artifacts.galleries.put_definition(SUB, RG, "gal", "def", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})
    with pytest.raises(InvalidImage):  # a build's output too
        artifacts.create_gallery_version(f"{P}/galleries/gal/images/def/versions/1.0.0", location="westus",
                                         source_id="/build/output", path=junk)
    assert artifacts.images.list(SUB) == [] and artifacts.platform.list_all() == []
    assert artifacts.versions.list(SUB, RG, "gal", "def") == []
    assert list(artifacts.blobs.objects.rglob("*.qcow2")) == [] and list(artifacts.blobs.tmp.iterdir()) == []
    # A real disk still goes in.
    assert artifacts.images.put(SUB, RG, "ok", {"location": "westus", "properties": {"storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "blobUri": file_uri(raw_image)}}}})[1]
