"""Offline SSH key injection, for images without cloud-init: no boot, no loop device, no libguestfs.

The image is made raw (a ``qemu-img convert`` copy unless it already is raw: that copy is then the build
VM's private disk, so no overlay is needed), its root partition is found from the MBR or GPT (the first
Linux partition that holds an ext2/3/4 superblock), and ``debugfs -w`` (e2fsprogs) edits that file system at
its byte offset (``FILE?offset=N``): it creates ``~/.ssh`` (0700) and writes ``authorized_keys`` (0600),
both owned by the user as ``/etc/passwd`` in the image says; and the build VM's SSH host key (made by vmforge
and pinned by its SSH client) as ``/etc/ssh/ssh_host_ed25519_key`` (0600) and ``.pub`` (0644), replacing the
image's own ed25519 key. The results are read back and verified, because debugfs reports errors on stderr but
exits 0. Only ext2/3/4 root file systems are supported (XFS and btrfs
images need cloud-init or libguestfs).
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

from vmforge.disk.qemuimg import convert
from vmforge.machine import MachineError

SECTOR = 512
EXT_MAGIC = 0xEF53
MBR_LINUX_TYPES = {0x83}
GPT_LINUX_GUIDS = {"0fc63daf-8483-4772-8e79-3d69d8477de4",  # Linux filesystem
                   "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"}  # Linux root (x86-64)


def _guid(raw: bytes) -> str:
    a, b, c = struct.unpack("<IHH", raw[:8])
    return f"{a:08x}-{b:04x}-{c:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


def partitions(path: Path) -> list[tuple[int, bool]]:
    """(byte offset, looks like Linux) for each partition of a raw disk, MBR or GPT."""
    with path.open("rb") as f:
        mbr = f.read(SECTOR)
        if mbr[510:512] != b"\x55\xaa":
            return []
        entries = [struct.unpack("<BBBBBBBBII", mbr[446 + 16 * i: 462 + 16 * i]) for i in range(4)]
        if not any(e[4] == 0xEE for e in entries):
            return [(e[8] * SECTOR, e[4] in MBR_LINUX_TYPES) for e in entries if e[4] and e[9]]
        f.seek(SECTOR)
        hdr = f.read(92)
        if hdr[:8] != b"EFI PART":
            return []
        table_lba, count, size = struct.unpack("<QII", hdr[72:88])
        f.seek(table_lba * SECTOR)
        table = f.read(count * size)
    out = []
    for i in range(count):
        e = table[i * size:(i + 1) * size]
        if e[:16] != bytes(16):
            out.append((struct.unpack("<Q", e[32:40])[0] * SECTOR, _guid(e[:16]) in GPT_LINUX_GUIDS))
    return out


def has_ext_superblock(path: Path, offset: int) -> bool:
    with path.open("rb") as f:
        f.seek(offset + 1024 + 56)
        return bool(struct.unpack("<H", f.read(2) or b"\0\0")[0] == EXT_MAGIC)


def root_offset(path: Path) -> int:
    """Byte offset of the root (ext) file system: the first Linux partition with an ext superblock."""
    parts = sorted(partitions(path), key=lambda p: not p[1])
    for offset, _ in parts or [(0, True)]:
        if has_ext_superblock(path, offset):
            return offset
    raise MachineError(f"{path.name}: no ext2/3/4 file system found (offline injection supports ext only)")


def debugfs(raw: Path, offset: int, commands: list[str], *, write: bool = False, timeout: float = 120) -> str:
    """Run debugfs ``commands`` on the file system at ``offset`` of ``raw``; return stdout (a single
    command's output is clean; with several, debugfs echoes each command before its output)."""
    script = ["-R", commands[0]] if len(commands) == 1 else ["-f", "-"]
    args = ["debugfs"] + (["-w"] if write else []) + [*script, f"{raw}?offset={offset}"]
    try:
        proc = subprocess.run(args, input="\n".join(commands) + "\n", capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError:
        raise MachineError("debugfs not found (install e2fsprogs)") from None
    except subprocess.TimeoutExpired:
        raise MachineError(f"debugfs timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        raise MachineError(f"debugfs failed: {proc.stderr.strip()}")
    return proc.stdout


def _passwd_entry(raw: Path, offset: int, user: str) -> tuple[int, int, str]:
    for line in debugfs(raw, offset, ["cat /etc/passwd"]).splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise MachineError(f"user {user!r} not found in the image's /etc/passwd")


def inject_authorized_keys(raw: Path, keys: list[str], *, user: str = "root") -> None:
    """Write ``keys`` as ``user``'s authorized_keys in the raw disk image ``raw`` (modified in place)."""
    offset = root_offset(raw)
    uid, gid, home = _passwd_entry(raw, offset, user)
    ssh_dir, target = f"{home.rstrip('/')}/.ssh", f"{home.rstrip('/')}/.ssh/authorized_keys"
    content = "".join(k.strip() + "\n" for k in keys)
    with tempfile.NamedTemporaryFile("w", prefix="vmforge-keys-", delete=False) as tmp:
        tmp.write(content)
    try:
        debugfs(raw, offset, [
            f"mkdir {ssh_dir}",  # fails harmlessly when it exists
            f"set_inode_field {ssh_dir} mode 040700", f"set_inode_field {ssh_dir} uid {uid}",
            f"set_inode_field {ssh_dir} gid {gid}",
            f"rm {target}",  # likewise when absent
            f"write {tmp.name} {target}",
            f"set_inode_field {target} mode 0100600", f"set_inode_field {target} uid {uid}",
            f"set_inode_field {target} gid {gid}",
        ], write=True)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    if debugfs(raw, offset, [f"cat {target}"]) != content:
        raise MachineError(f"offline injection into {target} could not be verified")


HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"


def inject_host_key(raw: Path, private: str, public: str) -> None:
    """Make ``private`` (OpenSSH format) and ``public`` the ed25519 host key of the image ``raw``'s sshd."""
    offset = root_offset(raw)
    files = [(HOST_KEY, private if private.endswith("\n") else private + "\n", "0100600"),
             (HOST_KEY + ".pub", public.strip() + "\n", "0100644")]
    commands = ["mkdir /etc/ssh"]  # fails harmlessly when it exists
    temps = []
    try:
        for path, content, mode in files:
            with tempfile.NamedTemporaryFile("w", prefix="vmforge-hostkey-", delete=False) as tmp:
                tmp.write(content)
            temps.append(Path(tmp.name))
            commands += [f"rm {path}", f"write {tmp.name} {path}", f"set_inode_field {path} mode {mode}",
                         f"set_inode_field {path} uid 0", f"set_inode_field {path} gid 0"]
        debugfs(raw, offset, commands, write=True)
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    for path, content, _ in files:
        if debugfs(raw, offset, [f"cat {path}"]) != content:
            raise MachineError(f"offline injection into {path} could not be verified")


def inject_into_image(image: Path, fmt: str, keys: list[str], out: Path, *, user: str = "root",
                      host_key: tuple[str, str] | None = None) -> Path:
    """A raw copy ``out`` of ``image`` (any format; an overlay is flattened) with ``keys`` injected, and
    ``host_key`` (private in OpenSSH format, public line) as its sshd's ed25519 key when given."""
    convert(image, out, "raw", src_fmt=fmt)
    inject_authorized_keys(out, keys, user=user)
    if host_key is not None:
        inject_host_key(out, *host_key)
    return out
