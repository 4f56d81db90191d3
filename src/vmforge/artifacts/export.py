"""Export a stored image: fixed VHD (Azure's rules), qcow2 or raw — written to a temp name, verified, renamed.

For a fixed VHD (``vmforge.disk.qemuimg.convert_fixed_vhd``) the virtual size is rounded up to a whole MiB first,
without copying: a qcow2 overlay on the stored file, as large as the rounded size, is what ``qemu-img convert -O vpc
-o subformat=fixed,force_size`` reads (past the stored image's end the overlay reads zeros). Output files are sparse
where the image is zero, and not flushed (like ``cp``): exports are outputs, not the store.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from vmforge.artifacts.errors import InvalidParameter
from vmforge.disk import qemuimg

FORMATS = {"vhd": "vpc", "qcow2": "qcow2", "raw": "raw"}


def export_file(src: Path, fmt: str, dest: Path, src_format: str = "qcow2") -> Path:
    """Write ``src`` (a ``src_format`` image) to ``dest`` as ``fmt`` ('vhd' = Azure fixed VHD, 'qcow2', 'raw')."""
    key = fmt.lower()
    if key not in FORMATS:
        raise InvalidParameter(f"Unknown export format '{fmt}'; use vhd, qcow2 or raw.", target="format")
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if key == "vhd":
            qemuimg.convert_fixed_vhd(src, tmp, src_fmt=src_format, cache="unsafe")  # checks what it wrote
        elif key == "qcow2" and src_format == "qcow2":
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
        else:
            qemuimg.convert(src, tmp, FORMATS[key], src_fmt=src_format, cache="unsafe")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
