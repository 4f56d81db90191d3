"""Disk image formats: detection by content (never by file name) and the fixed-VHD footer.

Accepted in: qcow2, raw, VHD (``vpc``: fixed or dynamic), VHDX. ``qemu-img`` probes a fixed VHD as raw
(its only metadata is a 512-byte footer at the end), so a "raw" file whose last sector starts with
``conectix`` is re-probed as ``vpc``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from vmforge.artifacts import qemu
from vmforge.artifacts.errors import InvalidImage, UnsupportedImageFormat

MIB = 1024 * 1024
ACCEPTED = ("qcow2", "raw", "vpc", "vhdx")
_CHECKABLE = ("qcow2", "vhdx")
_ARCHIVES = {
    b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2", b"PK\x03\x04": "zip",
    b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z",
}
VHD_COOKIE = b"conectix"
VHD_FIXED = 2


@dataclass(frozen=True)
class Detected:
    """A probed input: its qemu format name and virtual size in bytes."""

    format: str
    virtual_size: int


@dataclass(frozen=True)
class VhdFooter:
    cookie: bytes
    current_size: int
    disk_type: int


def read_vhd_footer(path: Path) -> VhdFooter | None:
    """The footer in the file's last 512 bytes, or None when the file is shorter than a sector."""
    size = path.stat().st_size
    if size < 512:
        return None
    with open(path, "rb") as f:
        f.seek(size - 512)
        footer = f.read(512)
    current_size = struct.unpack(">Q", footer[48:56])[0]
    disk_type = struct.unpack(">I", footer[60:64])[0]
    return VhdFooter(footer[:8], current_size, disk_type)


def is_azure_fixed_vhd(path: Path) -> bool:
    """Azure's rules: footer 'conectix', disk type 2 (fixed), data size a whole number of MiB."""
    size = path.stat().st_size
    footer = read_vhd_footer(path)
    return (footer is not None and footer.cookie == VHD_COOKIE and footer.disk_type == VHD_FIXED
            and (size - 512) % MIB == 0 and footer.current_size == size - 512)


def _sniff_archive(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, name in _ARCHIVES.items():
        if head.startswith(magic):
            return name
    return None


def detect(path: Path, *, target: str | None = None, allow_backing: bool = False) -> Detected:
    """Probe ``path`` and check it is a whole, self-contained image in an accepted format.

    Raises ``UnsupportedImageFormat`` or ``InvalidImage`` (``target`` names the request field).
    """
    if path.stat().st_size == 0:
        raise InvalidImage("The image file is empty.", target=target)
    archive = _sniff_archive(path)
    if archive:
        raise UnsupportedImageFormat(
            f"The file is a {archive} archive, not a disk image; decompress it first. Accepted formats: "
            "qcow2, raw, VHD (fixed or dynamic), VHDX.", target=target)
    try:
        probed = qemu.info(path)
        if probed.format == "raw":
            footer = read_vhd_footer(path)
            if footer is not None and footer.cookie == VHD_COOKIE:
                probed = qemu.info(path, "vpc")
    except qemu.QemuImgError as e:
        raise InvalidImage(f"The image cannot be read: {e.stderr or e}", target=target) from None
    if probed.format not in ACCEPTED:
        raise UnsupportedImageFormat(
            f"The image format '{probed.format}' is not supported. Accepted formats: qcow2, raw, VHD (fixed or "
            "dynamic), VHDX.", target=target)
    if probed.data_file or (probed.backing_file and not allow_backing):
        raise InvalidImage("Images that refer to other files (a backing file or an external data file) are not "
                           "accepted; flatten the image first.", target=target)
    size = path.stat().st_size if probed.format == "raw" else probed.virtual_size  # qemu rounds raw up
    if size <= 0 or size % 512:
        raise InvalidImage(f"The image's size ({size} bytes) is not a positive whole "
                           "number of 512-byte sectors.", target=target)
    if probed.format in _CHECKABLE:
        try:
            qemu.check(path, probed.format)
        except qemu.QemuImgError as e:
            raise InvalidImage(f"The {probed.format} image is corrupt: {e.stderr or e}", target=target) from None
    return Detected(probed.format, probed.virtual_size)


def round_up_mib(size: int) -> int:
    return -(-size // MIB) * MIB
