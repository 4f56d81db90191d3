"""Export a stored image: fixed VHD (Azure's rules), qcow2 or raw — written to a temp name, verified, renamed.

For a fixed VHD the virtual size is rounded up to a whole MiB first, without copying: a qcow2 overlay on the
stored file, as large as the rounded size, is what ``qemu-img convert -O vpc -o subformat=fixed,force_size``
reads (past the stored image's end the overlay reads zeros). Output files are sparse where the image is zero, and not flushed (like ``cp``): exports are outputs, not
the store.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from vmforge.artifacts import formats, qemu
from vmforge.artifacts.errors import InvalidParameter

FORMATS = {"vhd": "vpc", "qcow2": "qcow2", "raw": "raw"}


def export_file(src: Path, fmt: str, dest: Path, src_format: str = "qcow2") -> Path:
    """Write ``src`` (a ``src_format`` image) to ``dest`` as ``fmt`` ('vhd' = Azure fixed VHD, 'qcow2', 'raw')."""
    key = fmt.lower()
    if key not in FORMATS:
        raise InvalidParameter(f"Unknown export format '{fmt}'; use vhd, qcow2 or raw.", target="format")
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    overlay = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.overlay.qcow2")
    try:
        if key == "vhd":
            size = qemu.info(src, src_format).virtual_size
            qemu.overlay(src, src_format, overlay, formats.round_up_mib(size))
            qemu.convert(overlay, "qcow2", tmp, "vpc", options="subformat=fixed,force_size", cache="unsafe")
            if not formats.is_azure_fixed_vhd(tmp):
                raise RuntimeError(f"qemu-img wrote {tmp} that is not an Azure fixed VHD")
        elif key == "qcow2" and src_format == "qcow2":
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
        else:
            qemu.convert(src, src_format, tmp, FORMATS[key], cache="unsafe")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        overlay.unlink(missing_ok=True)
    return dest
