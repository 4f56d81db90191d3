"""The build VM's network: the internet yes, the host's own services never.

With plain QEMU user networking (slirp) the guest reaches the host's loopback at the gateway 10.0.2.2, so
the vmforge API, its database or a broker on 127.0.0.1 would be open to any customizer script. vmforge
closes that by running QEMU, slirp and all, inside its own network namespace:

``isolated`` (default)
    ``pasta`` (Debian package ``passt``) spawns QEMU in a new network namespace that it connects to the
    outside world in user mode. QEMU's slirp lives inside that namespace, so 10.0.2.2 is the *namespace's*
    loopback, where nothing but the SSH forward listens. pasta runs with ``--no-map-gw`` (its gateway is not
    mapped to the host's loopback), ``-T none -U none`` (no namespace-to-host port forwarding) and
    ``-u none``; the only inbound path is ``-t 127.0.0.1/PORT``, the SSH port, bound on the host's
    127.0.0.1. The namespace also holds a copy of the host's own address, so the guest's connections to it
    stay inside the namespace. Outbound connections to anything else (package mirrors) go through pasta.
``restricted``
    slirp ``restrict=on`` with only the SSH forward: no internet at all (a fallback when pasta is missing).
``open``
    plain slirp: the guest can reach the host's 127.0.0.1 services. Only for debugging; never the default.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Literal

from vmforge.machine import MachineError

NetworkMode = Literal["isolated", "restricted", "open"]


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


def wrapper_args(mode: NetworkMode, ssh_port: int) -> list[str]:
    """The command that must precede QEMU's (``pasta ... --``), empty when QEMU runs on the host's net."""
    if mode != "isolated":
        return []
    pasta = shutil.which("pasta")
    if pasta is None:
        raise MachineError("network mode 'isolated' needs pasta (apt install passt); "
                           "or choose 'restricted' (no internet)")
    runas = ["--runas", "0:0"] if os.geteuid() == 0 else []  # as root, pasta would drop to nobody
    return [pasta, *runas, "--config-net", "--no-map-gw", "--foreground", "--quiet",
            "-t", f"127.0.0.1/{ssh_port}", "-u", "none", "-T", "none", "-U", "none", "--"]
