"""Disk image formats: detection by content, and what counts as a disk image at all.

Accepted in: qcow2, raw, VHD (``vpc``: fixed or dynamic), VHDX. ``qemu-img`` probes a fixed VHD as raw
(its only metadata is a 512-byte footer at the end), so a "raw" file whose last sector starts with
``conectix`` is re-probed as ``vpc``.

Azure refuses a blob that is not a VHD; the store is as strict about what enters it (``require_disk``):

- a VHD (probed as one, or named ``*.vhd``) needs a valid footer at its end: cookie ``conectix``, the right
  checksum, disk type 2 (fixed) or 3 (dynamic);
- a raw file needs a partition table (an MBR with the 0x55AA mark and at least one partition entry, or a GPT
  header 'EFI PART' at LBA 1) or a file system's signature (ext2/3/4, XFS, btrfs, NTFS, exFAT, FAT, ...).

Anything else (random bytes, an empty disk) is a ``BadImageFormat`` that names the blob without its query
string (a SAS token stays out of errors).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vmforge.artifacts.errors import BadImageFormat, InvalidImage, UnsupportedImageFormat
from vmforge.disk import qemuimg
from vmforge.disk.qemuimg import VHD_COOKIE, VhdFooter, read_vhd_footer
from vmforge.fetch import safe_url

__all__ = ["ACCEPTED", "MIB", "Detected", "VhdFooter", "detect", "disk_signature", "is_azure_fixed_vhd",
           "read_vhd_footer", "round_up_mib"]

MIB = qemuimg.MIB
ACCEPTED = ("qcow2", "raw", "vpc", "vhdx")
_CHECKABLE = ("qcow2", "vhdx")
_ARCHIVES = {
    b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2", b"PK\x03\x04": "zip",
    b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z",
}
# (offset, magic, name) of file systems and volume headers that may fill a whole raw disk.
_SIGNATURES = (
    (1080, b"\x53\xef", "ext2/3/4"),  # s_magic 0xEF53 (little-endian) in the superblock at 1024
    (0, b"XFSB", "XFS"),
    (0x10040, b"_BHRfS_M", "btrfs"),  # superblock at 64 KiB, magic at +0x40
    (3, b"NTFS    ", "NTFS"),
    (3, b"EXFAT   ", "exFAT"),
    (0, b"LUKS\xba\xbe", "LUKS"),
    (0x8001, b"CD001", "ISO 9660"),
)
_HEAD = 0x10048  # enough bytes for every signature above
_MBR_MARK = b"\x55\xaa"
_ACCEPTED_TEXT = "Accepted formats: qcow2, raw, VHD (fixed or dynamic), VHDX."


@dataclass(frozen=True)
class Detected:
    """A probed input: its qemu format name and virtual size in bytes."""

    format: str
    virtual_size: int


def is_azure_fixed_vhd(path: Path) -> bool:
    """Azure's rules: footer 'conectix', disk type 2 (fixed), data size a whole number of MiB."""
    try:
        qemuimg.check_fixed_vhd(path)
    except qemuimg.DiskError:
        return False
    return True


def _sniff_archive(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, name in _ARCHIVES.items():
        if head.startswith(magic):
            return name
    return None


def _has_mbr_partition(sector: bytes) -> bool:
    """The 0x55AA mark and at least one plausible entry (boot flag 0 or 0x80, a type, a length)."""
    if len(sector) < 512 or sector[510:512] != _MBR_MARK:
        return False
    for i in range(4):
        status, ptype, _start, count = struct.unpack("<B3xB3xII", sector[446 + 16 * i: 462 + 16 * i])
        if status in (0x00, 0x80) and ptype != 0 and count > 0:
            return True
    return False


def _is_fat(sector: bytes) -> bool:
    return sector[510:512] == _MBR_MARK and (sector[54:57] == b"FAT" or sector[82:87] == b"FAT32")


def disk_signature(path: Path) -> str | None:
    """What makes ``path`` (raw bytes) a disk: a partition table or a file system's name; None for neither."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if any(head[lba:lba + 8] == b"EFI PART" for lba in (512, 4096)):  # GPT at LBA 1 (512 or 4096-byte sectors)
        return "GPT partition table"
    if _is_fat(head):  # before the MBR: a FAT boot sector carries the mark too
        return "FAT"
    for offset, magic, name in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    if _has_mbr_partition(head):
        return "MBR partition table"
    return None


def _claims_vhd(name: str) -> bool:
    """Whether a blob's name (a URI or a path; the query string ignored) says it is a VHD."""
    path = urlsplit(name).path if "://" in name else name
    return path.lower().endswith(".vhd")


def _probe(path: Path, shown: str, target: str | None) -> qemuimg.ImageInfo:
    """``qemu-img info`` (resource-limited); a VHD footer at the end is validated and makes it ``vpc``."""
    try:
        probed = qemuimg.probe(path)
        footer = read_vhd_footer(path)
        if probed.format == "vpc" or (probed.format == "raw" and footer is not None
                                      and footer.cookie == VHD_COOKIE):
            problem = footer.problem() if footer is not None else "no VHD footer"
            if problem:
                raise BadImageFormat(f"'{shown}' is not a valid VHD: {problem}.", target=target)
            if probed.format == "raw":
                probed = qemuimg.probe(path, "vpc")
    except qemuimg.DiskError as e:
        raise InvalidImage(f"The image '{shown}' cannot be read: {e.stderr or e}", target=target) from None
    return probed


def detect(path: Path, *, target: str | None = None, allow_backing: bool = False, source: str | None = None,
           require_disk: bool = True) -> Detected:
    """Probe ``path`` and check it is a whole, self-contained image in an accepted format.

    ``source`` is the name the image came by (a blobUri, a path; ``path`` itself when not given): it is what
    messages show and what says "this is a VHD". ``require_disk`` (every import) also refuses what is not a
    disk image (see the module doc); exporting a local file does not ask that. Raises
    ``UnsupportedImageFormat``, ``InvalidImage`` or ``BadImageFormat`` (``target`` names the request field).
    """
    shown = safe_url(source or str(path))
    if path.stat().st_size == 0:
        raise InvalidImage(f"The image file '{shown}' is empty.", target=target)
    archive = _sniff_archive(path)
    if archive:
        raise UnsupportedImageFormat(
            f"'{shown}' is a {archive} archive, not a disk image; decompress it first. {_ACCEPTED_TEXT}",
            target=target)
    probed = _probe(path, shown, target)
    if require_disk and probed.format != "vpc" and _claims_vhd(source or path.name):
        raise BadImageFormat(f"'{shown}' is named as a VHD but is not one: it has no valid VHD footer (a "
                             f"'conectix' cookie in its last 512 bytes); qemu-img reads it as {probed.format}.",
                             target=target)
    if probed.format not in ACCEPTED:
        raise UnsupportedImageFormat(f"The image format '{probed.format}' of '{shown}' is not supported. "
                                     f"{_ACCEPTED_TEXT}", target=target)
    if probed.data_file or (probed.backing_file and not allow_backing):
        raise InvalidImage(f"'{shown}' refers to other files (a backing file or an external data file), which is "
                           "not accepted; flatten the image first.", target=target)
    size = path.stat().st_size if probed.format == "raw" else probed.virtual_size  # qemu rounds raw up
    if size <= 0 or size % 512:
        raise InvalidImage(f"The size of '{shown}' ({size} bytes) is not a positive whole number of 512-byte "
                           "sectors.", target=target)
    if require_disk and probed.format == "raw" and disk_signature(path) is None:
        raise BadImageFormat(
            f"'{shown}' is not a disk image: as a raw image it needs a partition table (MBR or GPT) or a file "
            "system (ext2/3/4, XFS, btrfs, NTFS, FAT, ...), and it has neither a partition table nor a file "
            f"system signature. {_ACCEPTED_TEXT}", target=target)
    if probed.format in _CHECKABLE:
        try:
            qemuimg.check(path, probed.format)
        except qemuimg.DiskError as e:
            raise InvalidImage(f"The {probed.format} image '{shown}' is corrupt: {e.stderr or e}",
                               target=target) from None
    return Detected(probed.format, probed.virtual_size)


def round_up_mib(size: int) -> int:
    return qemuimg.round_up_mib(size)
