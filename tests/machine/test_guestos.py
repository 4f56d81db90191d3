"""Guest OS profiles: login users, seeds (the Windows one as cloudbase-init reads it), per-OS commands and their
quoting, and the SSH session's password fallback and Windows SFTP paths (against an in-process asyncssh server)."""

from __future__ import annotations

import asyncio
import re
import shlex
import string
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest
import yaml

from tests.conftest import require_tools as require_tool
from vmforge.machine import MachineError, seed
from vmforge.machine.guestos import (
    DEPROVISION_LINUX,
    DEPROVISION_WINDOWS,
    LINUX,
    PASSWORD_SYMBOLS,
    WINDOWS,
    for_os,
    new_password,
    powershell,
    powershell_script,
)
from vmforge.machine.ssh import SSHSession, generate_keypair, sftp_path

KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA k1", "ssh-rsa AAAAB3NzaC1yc2E k2"]
NASTY = "C:\\Program Files\\it's a \"test\" %PATH% & more"

# What cloudbase-init understands (cloudconfigplugins/factory.py, users.py; nocloudservice.py).
CLOUD_CONFIG_KEYS = {"write_files", "set_timezone", "timezone", "set_hostname", "hostname", "ntp", "groups",
                     "users", "runcmd"}
USER_KEYS = {"name", "gecos", "passwd", "groups", "primary_group", "expiredate", "inactive",
             "ssh_authorized_keys", "no_create_home"}
META_KEYS = {"instance-id", "local-hostname", "public-keys", "admin-username", "admin-password",
             "network-interfaces"}
ADMIN_KEYS = r"C:\ProgramData\ssh\administrators_authorized_keys"

LINUX_MARKERS = [r"\bfstrim\b", r"\bdd\b", r"mkdir -p", r"/bin/sh", r"rm -f", r"\bmv\b", r"\bsync\b", r"/dev/",
                 r"\bnohup\b", r"systemctl"]
WINDOWS_MARKERS = [r"powershell", r"Optimize-Volume", r"New-Item", r"Move-Item", r"shutdown /s", r"Sysprep",
                   r"[A-Za-z]:\\", r"\$ErrorActionPreference"]


def iso_file(iso: Path, name: str) -> str:
    """A file of the ISO by its Joliet name (the names Windows reads)."""
    return subprocess.run(["isoinfo", "-i", str(iso), "-J", "-x", name], capture_output=True, text=True,
                          check=True).stdout


def commands(guest) -> list[str]:  # noqa: ANN001
    d = f"{guest.temp_dir}/some dir"
    return [guest.poweroff_command(), guest.trim_command(), guest.mkdir_command(d),
            guest.move_command(f"{d}/a", f"{d}/b"), guest.deprovision_command()]


def texts(guest) -> list[str]:  # noqa: ANN001
    """Every command, and the script inside each encoded PowerShell command."""
    out = []
    for c in commands(guest):
        out.append(c)
        if "-EncodedCommand" in c:
            out.append(powershell_script(c))
    return out


def ps_literals(script: str, param: str) -> list[str]:
    """The values of ``param 'single-quoted'`` in a PowerShell script, unescaped."""
    return [m.replace("''", "'") for m in re.findall(param + r" '((?:[^']|'')*)'", script)]


# --- profiles and for_os ---------------------------------------------------------------------------------


def test_login_users_and_flags() -> None:
    assert (LINUX.name, LINUX.login_user, LINUX.needs_password, LINUX.offline_key_injection) == \
        ("Linux", "root", False, True)
    assert (WINDOWS.name, WINDOWS.login_user, WINDOWS.needs_password, WINDOWS.offline_key_injection) == \
        ("Windows", "vmforge", True, False)
    with pytest.raises(AttributeError):
        WINDOWS.login_user = "Administrator"  # type: ignore[misc]  # frozen


def test_for_os_is_case_insensitive() -> None:
    assert for_os("Linux") is LINUX and for_os("linux") is LINUX and for_os("LINUX") is LINUX
    assert for_os("Windows") is WINDOWS and for_os(" windows ") is WINDOWS


@pytest.mark.parametrize("bad", ["Solaris", "", "Win", None, 3])
def test_for_os_unknown(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown guest OS type") as e:
        for_os(bad)  # type: ignore[arg-type]
    assert "Linux" in str(e.value) and "Windows" in str(e.value)


# --- seeds -------------------------------------------------------------------------------------------------


def test_windows_seed_iso(tmp_path: Path) -> None:
    require_tool("genisoimage")
    require_tool("isoinfo")
    pw = new_password()
    iso = WINDOWS.seed(KEYS, "win-build", pw, tmp_path / "seed.iso")
    info = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Volume id: cidata$", info, re.M)
    listing = subprocess.run(["isoinfo", "-i", str(iso), "-J", "-f"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(listing) == ["/meta-data", "/user-data"]

    ud_text = iso_file(iso, "/user-data")
    assert ud_text.startswith("#cloud-config\n")
    ud = yaml.safe_load(ud_text)
    assert set(ud) <= CLOUD_CONFIG_KEYS
    assert list(ud) == ["users", "write_files", "runcmd"]  # cloudbase-init runs them in this order
    (user,) = ud["users"]
    assert set(user) <= USER_KEYS
    assert user["name"] == WINDOWS.login_user and user["passwd"] == pw
    assert user["groups"] == ["Administrators"] and user["ssh_authorized_keys"] == KEYS
    (f,) = ud["write_files"]
    assert f["path"] == ADMIN_KEYS and f["content"].splitlines() == KEYS and f["content"].endswith("\n")
    (acl,) = ud["runcmd"]
    assert acl.startswith(f'icacls.exe "{ADMIN_KEYS}" /inheritance:r ')
    assert "/grant *S-1-5-32-544:F" in acl and "/grant *S-1-5-18:F" in acl

    md = yaml.safe_load(iso_file(iso, "/meta-data"))
    assert set(md) <= META_KEYS and "admin-password" not in md
    assert md["local-hostname"] == "win-build" and md["public-keys"] == KEYS
    assert md["admin-username"] == WINDOWS.login_user
    assert md["instance-id"].startswith("vmforge-")
    assert pw not in iso_file(iso, "/meta-data")


def test_windows_seed_instance_ids_differ() -> None:
    a, b = (yaml.safe_load(seed.windows_meta_data(seed.WindowsSeedConfig(KEYS, "pw"))) for _ in range(2))
    assert a["instance-id"] != b["instance-id"]


def test_windows_seed_refuses_bad_passwords_and_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password"):
        WINDOWS.seed(KEYS, "h", None, tmp_path / "s.iso")
    for pw in ["", "x" * (seed.WINDOWS_MAX_PASSWORD + 1), "two\nlines"]:
        with pytest.raises(ValueError, match="password"):
            seed.windows_user_data(seed.WindowsSeedConfig(KEYS, pw))
    seed.windows_user_data(seed.WindowsSeedConfig(KEYS, "x" * seed.WINDOWS_MAX_PASSWORD))  # the limit itself
    for keys in [[], ["ssh-ed25519 A\nssh-rsa B"], ["  "]]:
        with pytest.raises(ValueError, match="key"):
            seed.windows_user_data(seed.WindowsSeedConfig(keys, "pw"))
    assert not (tmp_path / "s.iso").exists()


def test_linux_seed_is_the_cloud_init_seed(tmp_path: Path) -> None:
    require_tool("genisoimage")
    require_tool("isoinfo")
    iso = LINUX.seed(KEYS, "lin-build", None, tmp_path / "seed.iso")
    assert iso_file(iso, "/user-data") == seed.user_data(seed.SeedConfig(KEYS, hostname="lin-build"))
    md = yaml.safe_load(iso_file(iso, "/meta-data"))
    assert set(md) == {"instance-id", "local-hostname"} and md["local-hostname"] == "lin-build"
    with pytest.raises(ValueError, match="key only"):
        LINUX.seed(KEYS, "h", "pw", tmp_path / "other.iso")


def test_new_password() -> None:
    pws = {new_password() for _ in range(50)}
    assert len(pws) == 50
    allowed = set(string.ascii_letters + string.digits + PASSWORD_SYMBOLS)
    for pw in pws:
        assert len(pw) == seed.WINDOWS_MAX_PASSWORD and set(pw) <= allowed
        for cls in (string.ascii_lowercase, string.ascii_uppercase, string.digits, PASSWORD_SYMBOLS):
            assert set(pw) & set(cls)
        assert "vmforge" not in pw.lower()
        seed.windows_user_data(seed.WindowsSeedConfig(KEYS, pw))  # cloudbase-init's limit
    with pytest.raises(ValueError):
        new_password(length=seed.WINDOWS_MAX_PASSWORD + 1)


# --- commands ----------------------------------------------------------------------------------------------


def test_no_command_of_one_os_in_the_other() -> None:
    win, lin = "\n".join(texts(WINDOWS)), "\n".join(texts(LINUX))
    for marker in LINUX_MARKERS:
        assert not re.search(marker, win, re.I), marker
    for marker in WINDOWS_MARKERS:
        assert not re.search(marker, lin, re.I), marker
    # and each OS's own commands do carry its markers (the checks above can see them)
    assert re.search(r"\bfstrim\b", LINUX.trim_command()) and "Optimize-Volume" in powershell_script(
        WINDOWS.trim_command())


def test_linux_quoting_survives_the_shell(tmp_path: Path) -> None:
    weird = tmp_path / "a b" / "it's \"q\" $HOME `id` ;x"
    cmd = LINUX.mkdir_command(str(weird))
    assert shlex.split(cmd) == ["mkdir", "-p", "--", str(weird)]
    subprocess.run(["/bin/sh", "-c", cmd], check=True)
    assert weird.is_dir()
    src, dst = weird / "-src 'x'", weird / "dst \"y\""
    src.write_text("data")
    dst.write_text("old")
    subprocess.run(["/bin/sh", "-c", LINUX.move_command(str(src), str(dst))], check=True)
    assert not src.exists() and dst.read_text() == "data"


def test_windows_quoting() -> None:
    for cmd, param, want in [
        (WINDOWS.mkdir_command(NASTY), "-Path", [NASTY]),
        (WINDOWS.move_command(NASTY, "C:/it's/dst"), "-LiteralPath", [NASTY]),
        (WINDOWS.move_command(NASTY, "C:/it's/dst"), "-Destination", ["C:/it's/dst"]),
    ]:
        # nothing cmd.exe or PowerShell's command line would interpret
        assert re.fullmatch(r"powershell\.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass "
                            r"-EncodedCommand [A-Za-z0-9+/]+=*", cmd), cmd
        script = powershell_script(cmd)
        assert script.startswith("$ErrorActionPreference = 'Stop'")
        assert ps_literals(script, param) == want
    assert "New-Item -ItemType Directory -Force -Path 'C:\\Program Files\\it''s" in powershell_script(
        WINDOWS.mkdir_command(NASTY))


def test_powershell_helpers_refuse() -> None:
    with pytest.raises(ValueError, match="8191"):
        powershell("Write-Output 'x'\n" * 400)
    with pytest.raises(ValueError):
        powershell_script("shutdown /s /t 0 /f")


def test_poweroff_commands(tmp_path: Path) -> None:
    assert WINDOWS.poweroff_command() == "shutdown /s /t 0 /f"
    require_tool("nohup")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls"
    for name, rc in [("sync", 0), ("systemctl", 1), ("poweroff", 0)]:  # no systemd: systemctl fails
        (bin_ / name).write_text(f"#!/bin/sh\necho {name} \"$@\" >> {shlex.quote(str(log))}\nexit {rc}\n")
        (bin_ / name).chmod(0o755)
    start = time.monotonic()
    subprocess.run(["/bin/sh", "-c", LINUX.poweroff_command()], check=True, timeout=10,
                   env={"PATH": f"{bin_}:/usr/bin:/bin"})
    returned = time.monotonic() - start
    assert returned < 0.9 and log.read_text() == "sync\n"  # flushed, and returned before the power-off
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 3:
        time.sleep(0.1)
    assert log.read_text().splitlines() == ["sync", "systemctl poweroff", "poweroff"]


def test_trim_commands() -> None:
    lin = LINUX.trim_command()
    assert lin.startswith("fstrim -av || true; dd if=/dev/zero of=/var/tmp/vmforge-zero")
    assert "rm -f /var/tmp/vmforge-zero" in lin and lin.endswith("fstrim -av || true")
    script = powershell_script(WINDOWS.trim_command())
    assert script.count("Optimize-Volume -DriveLetter C -ReTrim") == 2
    assert ps_literals(script, "-LiteralPath") == ["C:\\Windows\\Temp\\vmforge-zero"]
    assert "Write-VolumeCache -DriveLetter C" in script


def test_deprovision_commands() -> None:
    assert shlex.split(LINUX.deprovision_command()) == ["/bin/sh", "-c", DEPROVISION_LINUX]
    assert "rm -f /root/.ssh/authorized_keys" in DEPROVISION_LINUX
    assert WINDOWS.deprovision_command() == DEPROVISION_WINDOWS
    assert "Sysprep.exe /oobe /generalize /quiet /quit /mode:vm" in DEPROVISION_WINDOWS


# --- SSH: password fallback, Windows SFTP paths --------------------------------------------------------------


@pytest.mark.parametrize(("given", "sent"), [
    ("C:/Windows/Temp/x.ps1", "/C:/Windows/Temp/x.ps1"),
    ("C:\\Windows\\Temp\\x.ps1", "/C:/Windows/Temp/x.ps1"),
    ("d:\\a b\\c", "/d:/a b/c"),
    ("/tmp/vmforge-1.sh", "/tmp/vmforge-1.sh"),
    ("relative/C:/x", "relative/C:/x"),
])
def test_sftp_path(given: str, sent: str) -> None:
    assert sftp_path(given) == sent


class _Server(asyncssh.SSHServer):
    def __init__(self, log: list[str], accept_key: bool, password: str) -> None:
        self.log, self.accept_key, self.password = log, accept_key, password

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.log.append(f"key {username}")
        return self.accept_key

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self.log.append(f"password {username}")
        return password == self.password


def _serve(tmp_path: Path, log: list[str], *, accept_key: bool, password: str = "Right-pw1"):  # noqa: ANN202
    paths: list[bytes] = []

    class _SFTP(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
            super().__init__(chan, chroot=str(tmp_path / "root").encode())

        def map_path(self, path: bytes) -> bytes:
            paths.append(path)
            return super().map_path(path)

    def process(proc: asyncssh.SSHServerProcess) -> None:
        proc.stdout.write("ran\n")
        proc.exit(0)

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = asyncssh.create_server(lambda: _Server(log, accept_key, password), "127.0.0.1", 0,
                                    server_host_keys=[host_key], process_factory=process, sftp_factory=_SFTP)
    return server, paths


def _session_run(tmp_path: Path, *, accept_key: bool, password: str | None, upload: str | None = None,  # noqa: ANN202
                 ready: float = 5):
    log: list[str] = []

    async def main() -> tuple[int, list[bytes]]:
        server_coro, paths = _serve(tmp_path, log, accept_key=accept_key)
        server = await server_coro
        port = server.sockets[0].getsockname()[1]
        try:
            async with SSHSession(port, generate_keypair().private, username="vmforge", password=password) as s:
                await s.wait_ready(ready, interval=0.1)
                lines: list[str] = []
                status = await s.run("whatever", on_line=lambda _s, line: lines.append(line), timeout=5)
                assert lines == ["ran"]
                if upload:
                    local = tmp_path / "local.ps1"
                    local.write_text("Write-Output 'hi'\n")
                    await s.upload(local, upload)
                return status, paths
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main()), log


def test_ssh_password_fallback_when_the_key_is_refused(tmp_path: Path) -> None:
    (status, _), log = _session_run(tmp_path, accept_key=False, password="Right-pw1")
    assert status == 0
    assert log[0] == "key vmforge" and log[-1] == "password vmforge"


def test_ssh_key_first_password_unused(tmp_path: Path) -> None:
    (status, _), log = _session_run(tmp_path, accept_key=True, password="Right-pw1")
    assert status == 0 and log and set(log) == {"key vmforge"}  # the password was never tried


def test_ssh_without_password_stays_refused(tmp_path: Path) -> None:
    with pytest.raises(MachineError, match="SSH not ready"):
        _session_run(tmp_path, accept_key=False, password=None, ready=1.5)


def test_ssh_wrong_password_refused(tmp_path: Path) -> None:
    with pytest.raises(MachineError, match="SSH not ready"):
        _session_run(tmp_path, accept_key=False, password="Wrong-pw1", ready=1.5)


@pytest.mark.parametrize("remote", ["C:/Windows/Temp/x.ps1", "C:\\Windows\\Temp\\x.ps1"])
def test_upload_to_a_windows_path(tmp_path: Path, remote: str) -> None:
    (tmp_path / "root" / "C:" / "Windows" / "Temp").mkdir(parents=True)
    (_, paths), _ = _session_run(tmp_path, accept_key=True, password=None, upload=remote)
    assert b"/C:/Windows/Temp/x.ps1" in paths  # the form Windows OpenSSH's SFTP server names files
    assert (tmp_path / "root" / "C:" / "Windows" / "Temp" / "x.ps1").read_text() == "Write-Output 'hi'\n"
