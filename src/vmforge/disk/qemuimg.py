"""The one wrapper over ``qemu-img`` (build engine and artifact store), plus the VHD footer and streamed sha256.

Every call runs ``qemu-img`` as a subprocess with a timeout and no stdin; any failure (non-zero exit, timeout,
missing binary) raises :class:`DiskError`, which carries ``qemu-img``'s own message (``stderr``). Images from
users are untrusted: a crafted header can make ``qemu-img info`` or ``check`` allocate or loop, so those calls
take ``limits=UNTRUSTED`` (address space and CPU time of the child, as OpenStack does) besides their timeout.

Azure wants a *fixed* VHD whose virtual size is a whole number of MiB: the file is the raw data plus a 512-byte
footer ("conectix", disk type 2), so ``(file size - 512) % 1 MiB == 0``. :func:`convert_fixed_vhd` rounds the
size up first and uses ``-O vpc -o subformat=fixed,force_size``; :func:`check_fixed_vhd` verifies the result.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
VHD_FOOTER_SIZE = 512
VHD_COOKIE = b"conectix"
VHD_DISK_TYPE_FIXED = 2
VHD_DISK_TYPE_DYNAMIC = 3
VHD_DISK_TYPE_DIFFERENCING = 4


class DiskError(Exception):
    """A disk operation failed (``qemu-img`` error or timeout, or a malformed image); ``stderr`` holds
    ``qemu-img``'s own message when it gave one."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


@dataclass(frozen=True)
class Limits:
    """Resource limits of a ``qemu-img`` child (set before exec)."""

    memory_bytes: int
    cpu_seconds: int

    def apply(self) -> None:
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))


UNTRUSTED = Limits(memory_bytes=1 << 30, cpu_seconds=30)  # for probing and checking images from users


def _qemu_img() -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise DiskError("qemu-img not found (install qemu-utils)")
    return exe


def run_qemu_img(args: list[str], *, timeout: float, limits: Limits | None = None) -> str:
    """Run ``qemu-img ARGS`` (under ``limits`` if given); return stdout, raise :class:`DiskError` on failure or
    timeout."""
    cmd = [_qemu_img(), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              preexec_fn=limits.apply if limits else None)
    except subprocess.TimeoutExpired:
        message = f"qemu-img {args[0]} timed out after {timeout:g} s"
        raise DiskError(message, message) from None
    if proc.returncode != 0:
        stderr = proc.stderr.strip()
        raise DiskError(f"qemu-img {args[0]} failed: {stderr or proc.returncode}", stderr)
    return proc.stdout


def info(path: Path | str, fmt: str | None = None, *, timeout: float = 60,
         limits: Limits | None = None) -> dict[str, Any]:
    """``qemu-img info --output=json`` as a dict. Give ``fmt`` for a fixed VHD (else it is probed as raw)."""
    args = ["info", "--output=json"] + (["-f", fmt] if fmt else []) + [str(path)]
    result: dict[str, Any] = json.loads(run_qemu_img(args, timeout=timeout, limits=limits))
    return result


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` says about a file, the fields that decide whether it may be stored."""

    format: str
    virtual_size: int
    actual_size: int
    backing_file: str | None
    data_file: str | None


def probe(path: Path | str, fmt: str | None = None, *, timeout: float = 60,
          limits: Limits | None = UNTRUSTED) -> ImageInfo:
    """:func:`info` of a possibly hostile file (resource-limited unless ``limits=None``), as an ``ImageInfo``."""
    d = info(path, fmt, timeout=timeout, limits=limits)
    specific = (d.get("format-specific") or {}).get("data") or {}
    return ImageInfo(format=d.get("format", ""), virtual_size=int(d.get("virtual-size", 0)),
                     actual_size=int(d.get("actual-size", 0)),
                     backing_file=d.get("backing-filename") or d.get("full-backing-filename"),
                     data_file=specific.get("data-file"))


def check(path: Path | str, fmt: str, *, timeout: float = 600, limits: Limits | None = UNTRUSTED) -> None:
    """``qemu-img check`` (qcow2, vhdx): raises :class:`DiskError` when the image is corrupt."""
    run_qemu_img(["check", "-q", "-f", fmt, str(path)], timeout=timeout, limits=limits)


def create_overlay(base: Path | str, path: Path | str, base_fmt: str, *, size_bytes: int | None = None,
                   timeout: float = 60) -> None:
    """Create a qcow2 overlay ``path`` backed by ``base`` (absolute path recorded; ``base`` is not touched)."""
    args = ["create", "-q", "-f", "qcow2", "-F", base_fmt, "-b", str(Path(base).resolve()), str(path)]
    if size_bytes is not None:
        args.append(str(size_bytes))
    run_qemu_img(args, timeout=timeout)


def create_blank(path: Path | str, size_bytes: int, *, timeout: float = 60) -> None:
    """Create an empty (sparse) qcow2 of ``size_bytes`` at ``path``."""
    run_qemu_img(["create", "-q", "-f", "qcow2", str(path), str(size_bytes)], timeout=timeout)


def resize(path: Path | str, size_bytes: int, *, fmt: str | None = None, timeout: float = 120) -> None:
    """Grow (never shrink) the virtual disk to ``size_bytes``."""
    run_qemu_img(["resize", "-q"] + (["-f", fmt] if fmt else []) + [str(path), str(size_bytes)],
                 timeout=timeout)


def convert(src: Path | str, dst: Path | str, out_fmt: str, *, src_fmt: str | None = None,
            options: dict[str, str] | None = None, compress: bool = False, cache: str | None = None,
            timeout: float = 3600) -> None:
    """``qemu-img convert`` ``src`` to ``dst`` in ``out_fmt`` with ``-o`` ``options`` (an overlay is flattened;
    zeros are not written). ``cache='unsafe'`` skips the final flush, for outputs whose durability the caller
    handles or does not need."""
    args = ["convert", "-q"] + (["-t", cache] if cache else []) + (["-f", src_fmt] if src_fmt else [])
    args += ["-O", out_fmt]
    if compress:
        args.append("-c")
    if options:
        args += ["-o", ",".join(f"{k}={v}" for k, v in options.items())]
    run_qemu_img([*args, str(src), str(dst)], timeout=timeout)


def round_up_mib(size: int) -> int:
    """``size`` rounded up to a whole MiB."""
    return -(-size // MIB) * MIB


def convert_fixed_vhd(src: Path | str, dst: Path | str, *, src_fmt: str | None = None, cache: str | None = None,
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
        convert(src, dst, "vpc", src_fmt=src_fmt, options=fixed, cache=cache, timeout=timeout)
    else:
        pad = Path(str(dst) + ".pad.qcow2")
        try:
            create_overlay(src, pad, src_fmt or str(meta["format"]), size_bytes=target)
            convert(pad, dst, "vpc", src_fmt="qcow2", options=fixed, cache=cache, timeout=timeout)
        finally:
            pad.unlink(missing_ok=True)
    check_fixed_vhd(dst)
    return target


@dataclass(frozen=True)
class VhdFooter:
    """The 512-byte VHD footer (big-endian fields): cookie, current (virtual) size, disk type, checksum."""

    cookie: bytes
    current_size: int
    disk_type: int
    checksum_ok: bool

    @classmethod
    def parse(cls, raw: bytes) -> VhdFooter:
        checksum = struct.unpack(">I", raw[64:68])[0]
        computed = ~(sum(raw[:64]) + sum(raw[68:VHD_FOOTER_SIZE])) & 0xFFFFFFFF  # one's complement of the byte sum
        return cls(raw[:8], struct.unpack(">Q", raw[48:56])[0], struct.unpack(">I", raw[60:64])[0],
                   checksum == computed)

    def problem(self) -> str | None:
        """Why this is no usable VHD footer, or None: the cookie, the checksum, a fixed (2) or dynamic (3) disk."""
        if self.cookie != VHD_COOKIE:
            return f"no VHD footer (cookie {self.cookie!r}, not 'conectix')"
        if not self.checksum_ok:
            return "the VHD footer's checksum is wrong"
        if self.disk_type == VHD_DISK_TYPE_DIFFERENCING:
            return "a differencing VHD (disk type 4) needs its parent; merge it into a fixed or dynamic VHD first"
        if self.disk_type not in (VHD_DISK_TYPE_FIXED, VHD_DISK_TYPE_DYNAMIC):
            return f"VHD disk type {self.disk_type} is neither fixed (2) nor dynamic (3)"
        return None


def read_vhd_footer(path: Path | str) -> VhdFooter | None:
    """The footer in the file's last 512 bytes, or None when the file is shorter than that."""
    p = Path(path)
    total = p.stat().st_size
    if total < VHD_FOOTER_SIZE:
        return None
    with p.open("rb") as f:
        f.seek(total - VHD_FOOTER_SIZE)
        return VhdFooter.parse(f.read(VHD_FOOTER_SIZE))


def check_fixed_vhd(path: Path | str) -> int:
    """Verify an Azure fixed VHD (footer cookie "conectix", disk type 2, size aligned to 1 MiB, current size
    in the footer equal to the data, checksum); return the virtual size. Raises :class:`DiskError`."""
    p = Path(path)
    total = p.stat().st_size
    if total < VHD_FOOTER_SIZE + MIB:
        raise DiskError(f"{p.name}: too small to be a fixed VHD ({total} bytes)")
    footer = read_vhd_footer(p)
    assert footer is not None
    if footer.cookie != VHD_COOKIE:
        raise DiskError(f"{p.name}: no VHD footer (cookie {footer.cookie!r})")
    if footer.disk_type != VHD_DISK_TYPE_FIXED:
        raise DiskError(f"{p.name}: VHD disk type {footer.disk_type}, not fixed ({VHD_DISK_TYPE_FIXED})")
    data = total - VHD_FOOTER_SIZE
    if data % MIB:
        raise DiskError(f"{p.name}: data size {data} is not a whole number of MiB")
    if footer.current_size != data:
        raise DiskError(f"{p.name}: footer says {footer.current_size} bytes, the file holds {data}")
    if not footer.checksum_ok:
        raise DiskError(f"{p.name}: the VHD footer's checksum is wrong")
    return data


def sha256_file(path: Path | str, *, chunk: int = 4 * MIB) -> str:
    """Hex sha256 of a file, streamed in ``chunk``-byte reads."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
