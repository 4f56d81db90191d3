"""cloud-init NoCloud seeds: an ISO 9660 image labelled ``cidata`` holding ``user-data`` and ``meta-data``.

The user-data gives the public key to root (``disable_root: false``) and to a default sudo user, installs the
build VM's SSH host key that vmforge made (``ssh_keys`` with ``ssh_deletekeys: true`` and ``ssh_genkeytypes:
[]``: the image's own host keys are deleted and no other type is generated, so sshd serves only the pinned
key; the deprovision step deletes it again before capture), sets the hostname, and keeps first boot short: ``locale: false`` (minbase images carry no locales), no package
update/upgrade. The meta-data's ``instance-id`` is new for every seed, so every boot of a built image is a
fresh instance to cloud-init. The ISO is written with genisoimage, xorriso or cloud-localds (the first found).

Windows images read the same kind of seed with cloudbase-init's ``NoCloudConfigDriveService`` (label ``cidata``,
files ``meta-data`` and ``user-data``; the image's ``cloudbase-init.conf`` must list that service in
``metadata_services`` — it is not in cloudbase-init's default list). What it reads, from cloudbase-init's
``nocloudservice.py`` and its cloud-config plugins (``cloudconfigplugins/``):

- meta-data: ``instance-id``, ``local-hostname`` (SetHostNamePlugin), ``public-keys`` (a list) and
  ``admin-username`` (CreateUserPlugin and SetUserSSHPublicKeysPlugin act on that user instead of the conf's
  ``username``). No ``admin-password``: an injected clear-text password makes cloudbase-init's default
  ``first_logon_behaviour`` expire it at first logon, which would break the password fallback.
- No SSH host key: cloudbase-init has no setting for one (Windows OpenSSH makes its own keys at first start),
  so a Windows build VM's host key is pinned on first use instead (see :mod:`vmforge.machine.ssh`).
- ``#cloud-config`` user-data, handled by plugins in the order of the document's keys (unless the image sets
  ``cloud_config_plugins``): ``users`` (``name``, ``passwd`` — clear text, at most 20 characters, unlike
  cloud-init's hash —, ``groups``, ``ssh_authorized_keys``), ``write_files`` (``path``, ``content``) and
  ``runcmd`` (joined into one script run by cmd.exe). Windows OpenSSH reads an administrator's keys only from
  ``C:\\ProgramData\\ssh\\administrators_authorized_keys``, and only when that file is writable by SYSTEM and
  Administrators alone: hence the file and the ``icacls`` line.
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
    host_key: tuple[str, str] | None = None  # ed25519 (private key in OpenSSH format, public key line)


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
    if cfg.host_key is not None:
        doc.update({"ssh_deletekeys": True, "ssh_genkeytypes": [],
                    "ssh_keys": {"ed25519_private": cfg.host_key[0], "ed25519_public": cfg.host_key[1]}})
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


@dataclass(frozen=True)
class WindowsSeedConfig:
    """What goes into a cloudbase-init NoCloud seed: a build user in Administrators, its key, its password."""

    authorized_keys: list[str]
    password: str
    hostname: str = "vmforge-build"
    user: str = "vmforge"
    instance_id: str = field(default_factory=lambda: f"vmforge-{uuid.uuid4()}")


WINDOWS_ADMIN_KEYS = r"C:\ProgramData\ssh\administrators_authorized_keys"
WINDOWS_MAX_PASSWORD = 20  # cloudbase-init's users plugin refuses longer ones (WindowsUtils' maximum)
# Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544), by SID so that localized group names do not matter.
WINDOWS_KEYS_ACL = (f'icacls.exe "{WINDOWS_ADMIN_KEYS}" /inheritance:r /grant *S-1-5-32-544:F '
                    "/grant *S-1-5-18:F")


def _check_windows(cfg: WindowsSeedConfig) -> None:
    if not cfg.password or len(cfg.password) > WINDOWS_MAX_PASSWORD or any(c in cfg.password for c in "\r\n"):
        raise ValueError(f"the Windows build password must be 1 to {WINDOWS_MAX_PASSWORD} characters on one line")
    if not cfg.authorized_keys or any(not k.strip() or "\n" in k or "\r" in k for k in cfg.authorized_keys):
        raise ValueError("the Windows seed needs at least one public key, each on one line")


def windows_user_data(cfg: WindowsSeedConfig) -> str:
    """The ``#cloud-config`` user-data for cloudbase-init: users, then write_files, then runcmd (in that order)."""
    _check_windows(cfg)
    doc: dict[str, Any] = {
        "users": [{
            "name": cfg.user,
            "gecos": "vmforge build user",
            "passwd": cfg.password,
            "groups": ["Administrators"],
            "ssh_authorized_keys": list(cfg.authorized_keys),
        }],
        "write_files": [{"path": WINDOWS_ADMIN_KEYS, "content": "".join(k + "\n" for k in cfg.authorized_keys)}],
        "runcmd": [WINDOWS_KEYS_ACL],
    }
    return "#cloud-config\n" + str(yaml.safe_dump(doc, sort_keys=False, width=4096))


def windows_meta_data(cfg: WindowsSeedConfig) -> str:
    """The meta-data cloudbase-init's NoCloud service reads."""
    return str(yaml.safe_dump({"instance-id": cfg.instance_id, "local-hostname": cfg.hostname,
                               "admin-username": cfg.user, "public-keys": list(cfg.authorized_keys)},
                              sort_keys=False, width=4096))


def write_seed(out: Path, documents: dict[str, str], *, timeout: float = 60) -> Path:
    """Write a ``cidata`` ISO holding ``documents`` (file name → text) to ``out`` and return it."""
    with tempfile.TemporaryDirectory(prefix="vmforge-seed-") as tmp:
        files = []
        for name, text in documents.items():
            files.append(Path(tmp) / name)
            files[-1].write_text(text)
        try:
            proc = subprocess.run(iso_command(out, files), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise MachineError(f"writing the seed ISO timed out after {timeout:g} s") from None
        if proc.returncode != 0:
            raise MachineError(f"writing the seed ISO failed: {proc.stderr.strip()}")
    return out


def make_seed(cfg: SeedConfig, out: Path, *, timeout: float = 60) -> Path:
    """Write the (cloud-init) NoCloud seed ISO to ``out`` and return it."""
    return write_seed(out, {"user-data": user_data(cfg), "meta-data": meta_data(cfg)}, timeout=timeout)


def make_windows_seed(cfg: WindowsSeedConfig, out: Path, *, timeout: float = 60) -> Path:
    """Write the cloudbase-init NoCloud seed ISO to ``out`` and return it."""
    return write_seed(out, {"user-data": windows_user_data(cfg), "meta-data": windows_meta_data(cfg)},
                      timeout=timeout)
