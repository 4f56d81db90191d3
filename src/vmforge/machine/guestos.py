"""One profile per guest OS: the single place where OS-specific commands, users and seeds live.

``for_os("Linux")`` / ``for_os("windows")`` give a :class:`GuestOS`: who logs in, how the login key (and, on
Windows, a fallback password) reaches the guest, and the commands the build runs in it — power off, trim,
create a directory, move a file, generalize. Linux commands are for ``/bin/sh`` (quoted with :func:`shlex.quote`);
Windows commands are for the SSH server's default shell, cmd.exe (or PowerShell): each PowerShell script is sent
as ``powershell.exe -EncodedCommand`` (UTF-16LE base64), so neither cmd.exe's quoting and ``%VAR%`` expansion nor
PowerShell's own command-line parsing can touch it, and paths inside it are single-quoted with ``ps_quote``.

Windows login: cloudbase-init creates the build user ``vmforge`` from the NoCloud seed (see
:mod:`vmforge.machine.seed`), in Administrators. It is a new account rather than ``Administrator`` because the
built-in administrator is disabled (and often renamed) in generalized images, and a named account of our own is
easy to recognise in the guest and to remove. SSH logs in with the per-run key first; a per-run random password,
delivered in the same seed, is the fallback (Windows OpenSSH ignores a key whose file has loose ACLs). The SSH
host key cannot be handed over (cloudbase-init has no such setting): the key the guest presents at the first
login, through the loopback-only port forward, is pinned for the rest of the build (reconnects after restarts).

Untested against a real Windows guest: no Windows image can be had where vmforge is developed. The command
construction and the seed's documents are unit-tested.
"""

from __future__ import annotations

import base64
import re
import secrets
import shlex
import string
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vmforge.machine import seed as seeds

PS_FLAGS = "-NoProfile -NonInteractive -ExecutionPolicy Bypass"


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted string literal of ``text``."""
    return "'" + text.replace("'", "''") + "'"

DEPROVISION_LINUX = r"""
set -e
export HISTSIZE=0
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs --seed >/dev/null 2>&1 || cloud-init clean --logs; fi
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
find /var/log -type f -exec truncate -s 0 {} + 2>/dev/null || true
rm -f /root/.bash_history /home/*/.bash_history
rm -f /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys
rm -rf /tmp/vmforge-* /var/tmp/vmforge-*
sync
"""

# Sysprep's generalize-and-shut-down, as AIB's Windows deprovision does (untested here: no Windows image).
DEPROVISION_WINDOWS = (
    r'powershell.exe -NoProfile -Command "& $env:SystemRoot\System32\Sysprep\Sysprep.exe /oobe /generalize '
    r'/quiet /quit /mode:vm; while ($true) { $s = (Get-ItemProperty HKLM:\SYSTEM\Setup\Status\SysprepStatus)'
    r'.GeneralizationState; if ($s -eq 7) { break }; Start-Sleep 5 }"'
)

# cmd.exe's command line is at most 8191 characters.
CMD_MAX = 8191
# Free space left on C: when zero-filling, so that services and the page file do not fail meanwhile.
WINDOWS_ZERO_MARGIN_MIB = 256
PASSWORD_SYMBOLS = "-_.+=@"  # none of them special to cmd.exe, PowerShell or YAML


def powershell(script: str) -> str:
    """A command line that runs ``script`` with Windows PowerShell, safe from cmd.exe and PowerShell alike.

    The script stops at the first error (exit status 1) and shows no progress records (which would reach the
    SSH channel as CLIXML)."""
    body = "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'\n" + script
    line = f"powershell.exe {PS_FLAGS} -EncodedCommand " + base64.b64encode(body.encode("utf-16-le")).decode()
    if len(line) > CMD_MAX:
        raise ValueError(f"the PowerShell command is {len(line)} characters long; cmd.exe takes at most {CMD_MAX}")
    return line


def powershell_script(command: str) -> str:
    """The script a :func:`powershell` command line runs (for logs and tests)."""
    m = re.fullmatch(r"powershell\.exe .*-EncodedCommand ([A-Za-z0-9+/=]+)", command)
    if m is None:
        raise ValueError("not an encoded PowerShell command")
    return base64.b64decode(m.group(1)).decode("utf-16-le")


def new_password(user: str = "vmforge", length: int = seeds.WINDOWS_MAX_PASSWORD) -> str:
    """A random password meeting Windows' complexity rules (all four character classes, not containing the
    user name), at most as long as cloudbase-init accepts."""
    if not 8 <= length <= seeds.WINDOWS_MAX_PASSWORD:
        raise ValueError(f"password length must be 8 to {seeds.WINDOWS_MAX_PASSWORD}")
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, PASSWORD_SYMBOLS)
    alphabet = "".join(classes)
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in cls for c in pw) for cls in classes) and user.lower() not in pw.lower():
            return pw


@dataclass(frozen=True)
class GuestOS(ABC):
    """What differs between guest operating systems, as data and as command builders."""

    name: str  # "Linux" | "Windows", as the source image's osType
    login_user: str
    needs_password: bool  # a per-run password is delivered in the seed as a fallback login
    offline_key_injection: bool  # the key can be written into the image's file system before boot
    temp_dir: str  # where uploads go, in the form the SSH server's SFTP takes

    seeds_host_key: ClassVar[bool] = False  # the seed can hand the guest its SSH host key (else: pinned on first use)

    @abstractmethod
    def seed(self, keys_public: list[str], hostname: str, password: str | None, out: Path,
             host_key: tuple[str, str] | None = None) -> Path:
        """Write the NoCloud ``cidata`` ISO this OS's agent reads to ``out``; return it. ``host_key`` (private
        in OpenSSH format, public line) is the SSH host key the guest should serve, where the agent can take one."""

    @abstractmethod
    def poweroff_command(self) -> str:
        """Flush and power off; the SSH command returns (the connection may drop just after)."""

    @abstractmethod
    def trim_command(self) -> str:
        """Hand free blocks back to the disk and zero what trim cannot reach."""

    @abstractmethod
    def mkdir_command(self, path: str) -> str:
        """Create ``path`` and its parents; no error if it exists."""

    @abstractmethod
    def move_command(self, src: str, dst: str) -> str:
        """Move ``src`` to ``dst``, replacing ``dst``."""

    @abstractmethod
    def deprovision_command(self) -> str:
        """Generalize the guest (AIB's hidden deprovision step)."""


@dataclass(frozen=True)
class LinuxGuest(GuestOS):
    seeds_host_key: ClassVar[bool] = True  # cloud-init's ssh_keys

    def seed(self, keys_public: list[str], hostname: str, password: str | None, out: Path,
             host_key: tuple[str, str] | None = None) -> Path:
        if password is not None:
            raise ValueError("Linux build VMs log in by key only (the seed sets ssh_pwauth: false)")
        return seeds.make_seed(seeds.SeedConfig(authorized_keys=list(keys_public), hostname=hostname,
                                                host_key=host_key), out)

    def poweroff_command(self) -> str:
        # Detached and a second late, so that the command returns before the guest goes down; systemctl works
        # without logind or acpid, plain poweroff covers other inits, poweroff -f a guest that refuses both.
        inner = "sleep 1; systemctl poweroff || poweroff || poweroff -f"
        return f"sync; nohup /bin/sh -c {shlex.quote(inner)} </dev/null >/dev/null 2>&1 &"

    def trim_command(self) -> str:
        return ("fstrim -av || true; dd if=/dev/zero of=/var/tmp/vmforge-zero bs=1M status=none 2>/dev/null;"
                " rm -f /var/tmp/vmforge-zero; sync; fstrim -av || true")

    def mkdir_command(self, path: str) -> str:
        return f"mkdir -p -- {shlex.quote(path)}"

    def move_command(self, src: str, dst: str) -> str:
        return f"mv -f -- {shlex.quote(src)} {shlex.quote(dst)}"

    def deprovision_command(self) -> str:
        return "/bin/sh -c " + shlex.quote(DEPROVISION_LINUX)


@dataclass(frozen=True)
class WindowsGuest(GuestOS):
    def seed(self, keys_public: list[str], hostname: str, password: str | None, out: Path,
             host_key: tuple[str, str] | None = None) -> Path:
        # cloudbase-init cannot install a host key: ``host_key`` is ignored and the first key seen is pinned.
        if not password:
            raise ValueError("the Windows seed needs the build user's password (see new_password())")
        cfg = seeds.WindowsSeedConfig(authorized_keys=list(keys_public), password=password, hostname=hostname,
                                      user=self.login_user)
        return seeds.make_windows_seed(cfg, out)

    def poweroff_command(self) -> str:
        return "shutdown /s /t 0 /f"

    def trim_command(self) -> str:
        zero = ps_quote(self.temp_dir.replace("/", "\\") + "\\vmforge-zero")
        retrim = "try { Optimize-Volume -DriveLetter C -ReTrim } catch { Write-Warning \"retrim: $_\" }"
        return powershell("\n".join([
            retrim,
            f"$n = [math]::Floor(((New-Object IO.DriveInfo 'C').AvailableFreeSpace / 1MB) - {WINDOWS_ZERO_MARGIN_MIB})",
            "$buf = New-Object byte[] (1MB)",
            "$s = $null",
            f"try {{ $s = [IO.File]::Open({zero}, 'Create', 'Write', 'None'); "
            "for ($i = 0; $i -lt $n; $i++) { $s.Write($buf, 0, $buf.Length) } } catch { } "
            f"finally {{ if ($s) {{ $s.Dispose() }}; Remove-Item -LiteralPath {zero} -Force -ErrorAction Ignore }}",
            "Write-VolumeCache -DriveLetter C",
            retrim,
        ]))

    def mkdir_command(self, path: str) -> str:
        return powershell(f"New-Item -ItemType Directory -Force -Path {ps_quote(path)} | Out-Null")

    def move_command(self, src: str, dst: str) -> str:
        return powershell(f"Move-Item -LiteralPath {ps_quote(src)} -Destination {ps_quote(dst)} -Force")

    def deprovision_command(self) -> str:
        return DEPROVISION_WINDOWS


LINUX = LinuxGuest(name="Linux", login_user="root", needs_password=False, offline_key_injection=True,
                   temp_dir="/tmp")
WINDOWS = WindowsGuest(name="Windows", login_user="vmforge", needs_password=True, offline_key_injection=False,
                       temp_dir="C:/Windows/Temp")
_BY_NAME = {g.name.lower(): g for g in (LINUX, WINDOWS)}


def for_os(os_type: str) -> GuestOS:
    """The profile for a source image's ``osType`` (case-insensitive)."""
    guest = _BY_NAME.get(os_type.strip().lower()) if isinstance(os_type, str) else None
    if guest is None:
        raise ValueError(f"unknown guest OS type {os_type!r}: expected one of "
                         + ", ".join(g.name for g in _BY_NAME.values()))
    return guest
