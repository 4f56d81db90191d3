"""Disk images for the build engine and the artifact store: the one ``qemu-img`` wrapper (probes with resource
limits, checks, overlays, resize, convert to a fixed VHD), the VHD footer and streamed checksums
(:mod:`vmforge.disk.qemuimg`)."""

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
