"""cloud-init NoCloud seeds: an ISO 9660 image labelled ``cidata`` holding ``user-data`` and ``meta-data``.

The user-data gives the public key to root (``disable_root: false``) and to a default sudo user, sets the
hostname, and keeps first boot short: ``locale: false`` (minbase images carry no locales), no package
update/upgrade. The meta-data's ``instance-id`` is new for every seed, so every boot of a built image is a
fresh instance to cloud-init. The ISO is written with genisoimage, xorriso or cloud-localds (the first found).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vmforge.machine import MachineError


@dataclass(frozen=True)
class SeedConfig:
    """What goes into a NoCloud seed."""

    authorized_keys: list[str]
    hostname: str = "vmforge-build"
    user: str = "vmforge"
    instance_id: str = field(default_factory=lambda: f"vmforge-{uuid.uuid4()}")
    extra: dict[str, Any] = field(default_factory=dict)  # merged into user-data last


def user_data(cfg: SeedConfig) -> str:
    """The ``#cloud-config`` user-data document."""
    doc: dict[str, Any] = {
        "hostname": cfg.hostname,
        "preserve_hostname": False,
        "locale": False,
        "package_update": False,
        "package_upgrade": False,
        "package_reboot_if_required": False,
        "disable_root": False,
        "ssh_pwauth": False,
        "ssh_authorized_keys": list(cfg.authorized_keys),
        "users": [{
            "name": cfg.user,
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": True,
            "ssh_authorized_keys": list(cfg.authorized_keys),
        }],
    }
    doc.update(cfg.extra)
    return "#cloud-config\n" + str(yaml.safe_dump(doc, sort_keys=False))


def meta_data(cfg: SeedConfig) -> str:
    """The meta-data document (instance-id and local-hostname)."""
    return str(yaml.safe_dump({"instance-id": cfg.instance_id, "local-hostname": cfg.hostname}, sort_keys=False))


def iso_command(out: Path, files: list[Path]) -> list[str]:
    """The command that writes the ``cidata`` ISO ``out`` from ``files``."""
    if exe := shutil.which("genisoimage"):
        return [exe, "-quiet", "-output", str(out), "-volid", "cidata", "-joliet", "-rock", *map(str, files)]
    if exe := shutil.which("xorriso"):
        return [exe, "-as", "mkisofs", "-quiet", "-output", str(out), "-volid", "cidata", "-joliet", "-rock",
                *map(str, files)]
    if exe := shutil.which("cloud-localds"):
        return [exe, str(out), *map(str, files)]
    raise MachineError("no ISO writer found: install genisoimage (or xorriso, or cloud-image-utils)")


def make_seed(cfg: SeedConfig, out: Path, *, timeout: float = 60) -> Path:
    """Write the NoCloud seed ISO to ``out`` and return it."""
    with tempfile.TemporaryDirectory(prefix="vmforge-seed-") as tmp:
        ud, md = Path(tmp) / "user-data", Path(tmp) / "meta-data"
        ud.write_text(user_data(cfg))
        md.write_text(meta_data(cfg))
        try:
            proc = subprocess.run(iso_command(out, [ud, md]), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise MachineError(f"writing the seed ISO timed out after {timeout:g} s") from None
        if proc.returncode != 0:
            raise MachineError(f"writing the seed ISO failed: {proc.stderr.strip()}")
    return out
