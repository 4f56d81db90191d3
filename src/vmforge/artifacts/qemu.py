"""The few ``qemu-img`` calls the artifact store needs.

Untrusted images are probed with resource limits (address space and CPU time), as OpenStack does, because a
crafted header can make ``qemu-img info`` allocate or loop. Every call has a timeout. (The build engine's
own wrappers live in ``vmforge.disk``; this module stays self-contained so the store works without them.)
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
INFO_MEMORY_LIMIT = 1 << 30  # bytes of address space for a probe
INFO_CPU_SECONDS = 30


class QemuImgError(Exception):
    """``qemu-img`` failed; ``stderr`` holds its message."""

    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(stderr.strip() or f"qemu-img {' '.join(args)} failed")
        self.stderr = stderr.strip()


def _limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (INFO_MEMORY_LIMIT, INFO_MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (INFO_CPU_SECONDS, INFO_CPU_SECONDS))


def run(args: list[str], *, timeout: float, limited: bool = False) -> str:
    """Run ``qemu-img ARGS`` and return its stdout; raise ``QemuImgError`` on failure or timeout."""
    try:
        proc = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, preexec_fn=_limits if limited else None)
    except subprocess.TimeoutExpired:
        raise QemuImgError(args, f"qemu-img {args[0]} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise QemuImgError(args, proc.stderr)
    return proc.stdout


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` says about a file."""

    format: str
    virtual_size: int
    actual_size: int
    backing_file: str | None
    data_file: str | None
    raw: dict[str, Any]


def info(path: Path, fmt: str | None = None, *, timeout: float = 60) -> ImageInfo:
    """Probe ``path`` (format detected by content unless ``fmt`` is given), with resource limits."""
    args = ["info", "--output=json"]
    if fmt:
        args += ["-f", fmt]
    out = run([*args, str(path)], timeout=timeout, limited=True)
    d = json.loads(out)
    specific = (d.get("format-specific") or {}).get("data") or {}
    return ImageInfo(
        format=d.get("format", ""),
        virtual_size=int(d.get("virtual-size", 0)),
        actual_size=int(d.get("actual-size", 0)),
        backing_file=d.get("backing-filename") or d.get("full-backing-filename"),
        data_file=specific.get("data-file"),
        raw=d,
    )


def check(path: Path, fmt: str, *, timeout: float = 600) -> None:
    """Consistency check (qcow2, vhdx); raises ``QemuImgError`` when the image is corrupt."""
    run(["check", "-q", "-f", fmt, str(path)], timeout=timeout, limited=True)


def convert(src: Path, src_fmt: str, dst: Path, dst_fmt: str, *, options: str | None = None,
            cache: str = "writeback", timeout: float = 3600) -> None:
    """``qemu-img convert`` with sparse output (zeros are not written). ``cache='unsafe'`` skips the final
    flush (for outputs whose durability the caller handles, or does not need)."""
    args = ["convert", "-q", "-t", cache, "-f", src_fmt, "-O", dst_fmt]
    if options:
        args += ["-o", options]
    run([*args, str(src), str(dst)], timeout=timeout)


def overlay(backing: Path, backing_fmt: str, dst: Path, size: int | None = None) -> None:
    """A qcow2 overlay on ``backing`` (optionally larger: reads past the backing's end are zeros)."""
    args = ["create", "-q", "-f", "qcow2", "-F", backing_fmt, "-b", str(backing.resolve()), str(dst)]
    if size is not None:
        args.append(str(size))
    run(args, timeout=60)
