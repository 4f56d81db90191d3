"""Disk images for the build engine: ``qemu-img`` wrappers (overlays, resize, convert to a fixed VHD),
the fixed-VHD footer check and streamed checksums (:mod:`vmforge.disk.qemuimg`)."""

from vmforge.disk.qemuimg import (
    DiskError,
    check_fixed_vhd,
    convert,
    convert_fixed_vhd,
    create_overlay,
    info,
    resize,
    sha256_file,
)

__all__ = [
    "DiskError",
    "check_fixed_vhd",
    "convert",
    "convert_fixed_vhd",
    "create_overlay",
    "info",
    "resize",
    "sha256_file",
]
