"""Fixtures of the artifact tests: a migrated SQLite database, an ``Artifacts`` over a temp data dir, and small
disk images made with qemu-img (64 MiB raw with an MBR and a few MiB of random data, and its conversions)."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmforge.artifacts import Artifacts
from vmforge.service import groups
from vmforge.store.db import Database

MIB = 1024 * 1024


def write_mbr(path: Path, size: int, *, part_type: int = 0x83) -> None:
    """An MBR at sector 0 of ``path``: one partition of ``part_type`` from 1 MiB to the end, the 0x55AA mark."""
    entry = struct.pack("<B3sB3sII", 0x80, b"\0\0\0", part_type, b"\0\0\0", 2048, size // 512 - 2048)
    with open(path, "r+b") as f:
        f.seek(446)
        f.write(entry + bytes(48) + b"\x55\xaa")


def make_raw(path: Path, size: int = 64 * MIB, seed: int = 1) -> Path:
    """A sparse raw disk of ``size`` bytes with 1 MiB of seeded random bytes at three places (the first holds
    boot code bytes and an MBR partition table: a raw file with neither a table nor a file system is no disk)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    rnd = random.Random(seed)
    with open(path, "r+b") as f:
        for off in (0, size // 2, size - MIB):
            f.seek(off)
            f.write(rnd.randbytes(MIB))
    write_mbr(path, size)
    return path


def random_file(path: Path, size: int = 64 * 1024, seed: int = 7) -> Path:
    """Seeded random bytes: no disk image whatever its name says."""
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def run_tool(tool: str, *args: str, stdin: str | None = None) -> None:
    """Run a disk tool (sfdisk, mkfs.*) or skip the test without it."""
    from tests.conftest import missing_dependency

    exe = shutil.which(tool) or next((p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if Path(p).exists()), None)
    if exe is None:
        missing_dependency(f"{tool} is not installed")
    subprocess.run([exe, *args], input=stdin, text=True, check=True, capture_output=True)


def make_gpt(path: Path, size: int = 8 * MIB) -> Path:
    """A raw disk with a GPT (protective MBR, 'EFI PART' at LBA 1) and one Linux partition, made by sfdisk."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    run_tool("sfdisk", "-q", str(path), stdin="label: gpt\nstart=2048, type=linux\n")
    return path


def make_ext4(path: Path, size: int = 8 * MIB) -> Path:
    """A bare ext4 file system (no partition table), made by mkfs.ext4."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    run_tool("mkfs.ext4", "-q", "-F", str(path))
    return path


def convert(src: Path, dst: Path, fmt: str, options: str | None = None) -> Path:
    args = ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt]
    if options:
        args += ["-o", options]
    subprocess.run([*args, str(src), str(dst)], check=True)
    return dst


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def db(data_dir: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{data_dir / 'vmforge.db'}")
    database.migrate()
    yield database
    database.dispose()


# The subscription and resource group the artifact tests put their images and galleries into.
SUB, RG = "00000000-1111-2222-3333-444444444444", "rg1"


@pytest.fixture
def artifacts(db: Database, data_dir: Path) -> Artifacts:
    """The artifact services over a fresh database that holds the group ``RG`` of ``SUB`` (artifacts are
    created only in a group that exists)."""
    groups.ensure(db, SUB, RG, "westus")
    return Artifacts(db, data_dir, [data_dir / "imports"], durable=False)


@pytest.fixture
def imports(artifacts: Artifacts, data_dir: Path) -> Path:
    return data_dir / "imports"


@pytest.fixture
def raw_image(imports: Path) -> Path:
    return make_raw(imports / "disk.img")


ImageMaker = Callable[[str], Path]


@pytest.fixture
def image_in(imports: Path, raw_image: Path) -> ImageMaker:
    """``image_in('vhd-fixed')`` -> the test disk in that format, under the import root."""
    def make(kind: str) -> Path:
        fmt, opts = {"raw": ("raw", None), "qcow2": ("qcow2", None), "vhdx": ("vhdx", None),
                     "vhd-dynamic": ("vpc", "subformat=dynamic,force_size"), "vhd-fixed": ("vpc", "subformat=fixed,force_size")}[kind]
        return convert(raw_image, imports / f"disk.{kind}.bin", fmt, opts)
    return make


def file_uri(p: Path) -> str:
    return Path(os.path.abspath(p)).as_uri()
