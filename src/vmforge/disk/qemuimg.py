"""Thin, typed wrappers over ``qemu-img`` for the build engine, plus the fixed-VHD check and streamed sha256.

Every call runs ``qemu-img`` as a subprocess with a timeout and no stdin; any failure (non-zero exit, timeout,
missing binary) raises :class:`DiskError`, which carries ``qemu-img``'s own message.

Azure wants a *fixed* VHD whose virtual size is a whole number of MiB: the file is the raw data plus a 512-byte
footer ("conectix", disk type 2), so ``(file size - 512) % 1 MiB == 0``. :func:`convert_fixed_vhd` rounds the
size up first and uses ``-O vpc -o subformat=fixed,force_size``; :func:`check_fixed_vhd` verifies the result.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

MIB = 1 << 20
VHD_FOOTER_SIZE = 512
VHD_DISK_TYPE_FIXED = 2


class DiskError(Exception):
    """A disk operation failed (``qemu-img`` error or timeout, or a malformed image)."""


def _qemu_img() -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise DiskError("qemu-img not found (install qemu-utils)")
    return exe


def run_qemu_img(args: list[str], *, timeout: float) -> str:
    """Run ``qemu-img ARGS``; return stdout, raise :class:`DiskError` on failure or timeout."""
    cmd = [_qemu_img(), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DiskError(f"qemu-img {args[0]} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        raise DiskError(f"qemu-img {args[0]} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def info(path: Path | str, fmt: str | None = None, *, timeout: float = 60) -> dict[str, Any]:
    """``qemu-img info --output=json`` as a dict. Give ``fmt`` for a fixed VHD (else it is probed as raw)."""
    args = ["info", "--output=json"] + (["-f", fmt] if fmt else []) + [str(path)]
    result: dict[str, Any] = json.loads(run_qemu_img(args, timeout=timeout))
    return result


def create_overlay(base: Path | str, path: Path | str, base_fmt: str, *, size_bytes: int | None = None,
                   timeout: float = 60) -> None:
    """Create a qcow2 overlay ``path`` backed by ``base`` (absolute path recorded; ``base`` is not touched)."""
    args = ["create", "-q", "-f", "qcow2", "-F", base_fmt, "-b", str(Path(base).resolve()), str(path)]
    if size_bytes is not None:
        args.append(str(size_bytes))
    run_qemu_img(args, timeout=timeout)


def resize(path: Path | str, size_bytes: int, *, fmt: str | None = None, timeout: float = 120) -> None:
    """Grow (never shrink) the virtual disk to ``size_bytes``."""
    run_qemu_img(["resize", "-q"] + (["-f", fmt] if fmt else []) + [str(path), str(size_bytes)],
                 timeout=timeout)


def convert(src: Path | str, dst: Path | str, out_fmt: str, *, src_fmt: str | None = None,
            options: dict[str, str] | None = None, compress: bool = False, timeout: float = 3600) -> None:
    """``qemu-img convert`` ``src`` to ``dst`` in ``out_fmt`` with ``-o`` ``options`` (an overlay is flattened)."""
    args = ["convert", "-q"] + (["-f", src_fmt] if src_fmt else []) + ["-O", out_fmt]
    if compress:
        args.append("-c")
    if options:
        args += ["-o", ",".join(f"{k}={v}" for k, v in options.items())]
    run_qemu_img([*args, str(src), str(dst)], timeout=timeout)


def round_up_mib(size: int) -> int:
    """``size`` rounded up to a whole MiB."""
    return -(-size // MIB) * MIB


def convert_fixed_vhd(src: Path | str, dst: Path | str, *, src_fmt: str | None = None,
                      timeout: float = 3600) -> int:
    """Convert ``src`` to an Azure fixed VHD ``dst`` and check it; return its virtual size in bytes.

    When ``src``'s size is not a whole MiB, a throw-away qcow2 overlay of the rounded-up size is converted
    instead, so ``src`` itself is never modified.
    """
    meta = info(src, src_fmt, timeout=60)
    size = int(meta["virtual-size"])
    target = round_up_mib(size)
    fixed = {"subformat": "fixed", "force_size": "on"}
    if target == size:
        convert(src, dst, "vpc", src_fmt=src_fmt, options=fixed, timeout=timeout)
    else:
        pad = Path(str(dst) + ".pad.qcow2")
        try:
            create_overlay(src, pad, src_fmt or str(meta["format"]), size_bytes=target)
            convert(pad, dst, "vpc", src_fmt="qcow2", options=fixed, timeout=timeout)
        finally:
            pad.unlink(missing_ok=True)
    check_fixed_vhd(dst)
    return target


def check_fixed_vhd(path: Path | str) -> int:
    """Verify an Azure fixed VHD (footer cookie "conectix", disk type 2, size aligned to 1 MiB, current size
    in the footer equal to the data); return the virtual size. Raises :class:`DiskError`."""
    p = Path(path)
    total = p.stat().st_size
    if total < VHD_FOOTER_SIZE + MIB:
        raise DiskError(f"{p.name}: too small to be a fixed VHD ({total} bytes)")
    with p.open("rb") as f:
        f.seek(total - VHD_FOOTER_SIZE)
        footer = f.read(VHD_FOOTER_SIZE)
    if footer[:8] != b"conectix":
        raise DiskError(f"{p.name}: no VHD footer (cookie {footer[:8]!r})")
    current_size = struct.unpack(">Q", footer[48:56])[0]
    disk_type = struct.unpack(">I", footer[60:64])[0]
    if disk_type != VHD_DISK_TYPE_FIXED:
        raise DiskError(f"{p.name}: VHD disk type {disk_type}, not fixed ({VHD_DISK_TYPE_FIXED})")
    data = total - VHD_FOOTER_SIZE
    if data % MIB:
        raise DiskError(f"{p.name}: data size {data} is not a whole number of MiB")
    if current_size != data:
        raise DiskError(f"{p.name}: footer says {current_size} bytes, the file holds {data}")
    return data


def sha256_file(path: Path | str, *, chunk: int = 4 * MIB) -> str:
    """Hex sha256 of a file, streamed in ``chunk``-byte reads."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
