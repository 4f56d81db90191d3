"""The build VM's network: the internet yes, this host and its neighbours never.

With plain QEMU user networking (slirp) the guest reaches the host's loopback at the gateway 10.0.2.2, so
the vmforge API, its database or a broker on 127.0.0.1 would be open to any customizer script. vmforge
closes that by running QEMU, slirp and all, inside a network namespace of its own:

``isolated`` (default)
    ``unshare --net`` starts ``vmforge.machine.netns`` in a new network namespace; it installs the deny list
    (``vmforge.netpolicy.GuestPolicy``: loopback, link-local with the metadata address, this host's own
    addresses, by default the private ranges, the operator's ``--build-deny`` less ``--build-allow``) as
    ``prohibit`` routes, puts the DNS and metadata relays on the namespace's ``lo`` and says ``ready``. The
    host side then attaches ``pasta`` (Debian package ``passt``) to that namespace (through a name under
    /run/netns that lives only until pasta has it), which connects it to the outside world in user mode, and
    lets the wrapper exec QEMU. (pasta does not spawn the namespace itself: as root it cannot map uid 0 into
    the user namespace it would make, and a command in there would have no capability to install routes.)
    QEMU's slirp lives inside the namespace, so 10.0.2.2 is the *namespace's* loopback, where nothing but
    the SSH forward and the relays listen. pasta runs with ``--no-map-gw`` (its gateway is not mapped to the
    host's loopback), ``-T none -U none`` (no namespace-to-host port forwarding) and ``-u none``; the only
    inbound path is ``-t 127.0.0.1/PORT``, the SSH port, bound on the host's 127.0.0.1. DNS goes through
    vmforge (``vmforge.machine.guestsvc``) to the host's resolvers, so a resolver at a denied address still
    answers DNS and nothing else.
``restricted``
    slirp ``restrict=on`` with only the SSH forward: no internet at all (a fallback when pasta is missing).
``open``
    plain slirp: the guest can reach the host's 127.0.0.1 services. Only for debugging; never the default.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from vmforge.machine import MachineError
from vmforge.netpolicy import GuestPolicy

NetworkMode = Literal["isolated", "restricted", "open"]
METADATA_ADDRESS = "169.254.169.254"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def netdev_args(mode: NetworkMode, ssh_port: int, *, mac: str | None = None) -> list[str]:
    """QEMU's ``-netdev``/``-device`` arguments for ``mode``, forwarding ``ssh_port`` to the guest's port 22.

    Under ``isolated`` QEMU runs inside the namespace, so the forward listens on all the namespace's
    addresses (pasta connects to it from there); otherwise it listens on the host's 127.0.0.1 only.
    """
    if mode == "isolated":
        netdev = f"user,id=net0,hostfwd=tcp::{ssh_port}-:22"
    elif mode == "restricted":
        netdev = f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    elif mode == "open":
        netdev = f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    else:
        raise MachineError(f"unknown network mode {mode!r}")
    device = "virtio-net-pci,netdev=net0" + (f",mac={mac}" if mac else "")
    return ["-netdev", netdev, "-device", device]


NETNS_PREFIX = "vmforge-"
ATTACH_TIMEOUT = 30.0


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MachineError(f"network mode 'isolated' needs {name} (apt install {package}); "
                           "or choose 'restricted' (no internet)")
    return path


def wrapper_args(mode: NetworkMode, config: Path | None = None) -> list[str]:
    """The command that must precede QEMU's (``unshare --net python -m vmforge.machine.netns CONFIG --``),
    empty when QEMU runs on the host's network."""
    if mode != "isolated":
        return []
    if config is None:
        raise MachineError("network mode 'isolated' needs its namespace configuration")
    _tool("pasta", "passt")
    _tool("ip", "iproute2")
    return [_tool("unshare", "util-linux"), "--net", "--", sys.executable, "-m", "vmforge.machine.netns",
            str(config), "--"]


def pasta_args(ssh_port: int, netns_name: str) -> list[str]:
    """pasta attached to the named namespace: the SSH forward on the host's 127.0.0.1, nothing else inbound."""
    runas = ["--runas", "0:0"] if os.geteuid() == 0 else []  # as root, pasta would drop to nobody
    return [_tool("pasta", "passt"), *runas, "--config-net", "--no-map-gw", "--foreground", "--quiet",
            "-t", f"127.0.0.1/{ssh_port}", "-u", "none", "-T", "none", "-U", "none", "--no-netns-quit",
            "--netns", netns_name]


def namespace_config(policy: GuestPolicy, workdir: Path, *, metadata: bool,
                     dns_servers: list[str]) -> dict[str, Any]:
    """What ``vmforge.machine.netns`` installs: the deny routes, the relays' addresses on ``lo`` and the relays
    (the metadata address on port 80 when ``metadata``; every unscoped resolver on port 53, UDP and TCP)."""
    lo: list[str] = []
    relays: list[dict[str, Any]] = []
    if metadata:
        lo.append(METADATA_ADDRESS)
        relays.append({"protocol": "tcp", "address": METADATA_ADDRESS, "port": 80,
                       "unix": str(workdir / "imds.sock")})
    for server in dns_servers:
        if "%" in server:
            continue
        if server not in lo:
            lo.append(server)
        for protocol in ("dns-udp", "tcp"):
            relays.append({"protocol": protocol, "address": server, "port": 53, "unix": str(workdir / "dns.sock")})
    return {"deny": [str(n) for n in policy.denied()], "lo_addresses": lo, "relays": relays}


def attach(pid: int, ssh_port: int, wrapper: subprocess.Popen[bytes], prefix: list[str]) -> subprocess.Popen[bytes]:
    """Once the wrapper ``pid`` said ``ready``: attach pasta to its namespace, release the wrapper to exec QEMU
    and return pasta's process (in a session of its own; ``prefix`` ties it to its parent)."""
    assert wrapper.stdout is not None and wrapper.stdin is not None
    line = wrapper.stdout.readline()  # the wrapper ends with an error on stderr instead of saying ready
    if line.strip() != b"ready":
        raise MachineError("the build VM's network namespace could not be set up")
    name = f"{NETNS_PREFIX}{pid}"
    ip = _tool("ip", "iproute2")
    subprocess.run([ip, "netns", "delete", name], capture_output=True, timeout=10)  # a stale one of this pid
    done = subprocess.run([ip, "netns", "attach", name, str(pid)], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise MachineError(f"ip netns attach failed: {done.stderr.strip()}")
    try:
        pasta = subprocess.Popen([*prefix, *pasta_args(ssh_port, name)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                 close_fds=True)
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while not _configured(ip, name):
            if pasta.poll() is not None:
                raise MachineError(f"pasta exited with status {pasta.returncode} while attaching")
            if time.monotonic() > deadline:
                raise MachineError(f"pasta did not configure the namespace within {ATTACH_TIMEOUT:g} s")
            time.sleep(0.05)
    finally:
        subprocess.run([ip, "netns", "delete", name], capture_output=True, timeout=10)
    wrapper.stdin.write(b"go\n")
    wrapper.stdin.close()
    wrapper.stdout.close()
    return pasta


def _configured(ip: str, name: str) -> bool:
    """Whether pasta has given the namespace its routes (an IPv4 or IPv6 default route in ``main``)."""
    for family in ("-4", "-6"):
        out = subprocess.run([ip, family, "-n", name, "-j", "route", "show", "default"], capture_output=True,
                             text=True, timeout=10).stdout
        try:
            if json.loads(out or "[]"):
                return True
        except ValueError:
            continue
    return False
