"""Fixtures of the artifact tests: a migrated SQLite database, an ``Artifacts`` over a temp data dir, and small
disk images made with qemu-img (64 MiB raw with a few MiB of random data, and its conversions)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmforge.artifacts import Artifacts
from vmforge.store.db import Database

MIB = 1024 * 1024


def make_raw(path: Path, size: int = 64 * MIB, seed: int = 1) -> Path:
    """A sparse raw disk of ``size`` bytes with 1 MiB of seeded random bytes at three places."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    rnd = __import__("random").Random(seed)
    with open(path, "r+b") as f:
        for off in (0, size // 2, size - MIB):
            f.seek(off)
            f.write(rnd.randbytes(MIB))
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


@pytest.fixture
def artifacts(db: Database, data_dir: Path) -> Artifacts:
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
