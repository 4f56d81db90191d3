"""QEMU wrappers that reproduce, on any machine, how KVM fails on nested-virtualisation hosts.

``hangs``: what was measured on 2026-12-01 — under ``-accel kvm`` a real-mode boot sector runs (the probe
passes) but a build VM makes no progress at all (here: its CPUs never start, ``-S``; QMP still answers, as a
hung guest's QEMU does). ``aborts``: QEMU dies at once under KVM with "failed to set MSR" (this machine).
Both run the real QEMU under TCG otherwise, and append each invocation's accelerator to ``calls.log``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

SCRIPT = r'''#!{python}
import os, sys
real = {real!r}
args = sys.argv[1:]
if "-accel" not in args:  # --version and the like
    os.execv(real, [real] + args)
kvm = "kvm" in [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-accel"]
probe = any("isa-debug-exit" in a for a in args)
with open({log!r}, "a") as f:
    f.write(("kvm" if kvm else "tcg") + (" probe" if probe else " vm") + "\n")
if kvm:
    if {mode!r} == "aborts":
        sys.stderr.write("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n")
        os._exit(134)
    args = ["tcg" if a == "kvm" else a for a in args]
    args = ["max" if (a == "host" and i and args[i - 1] == "-cpu") else a for i, a in enumerate(args)]
    if not probe:
        args.append("-S")  # the guest never runs: no progress, no console output
os.execv(real, [real] + args)
'''


def make(tmp: Path, mode: str) -> tuple[Path, Path, Path]:
    """(wrapper, calls log, a stand-in KVM device that is readable and writable) in ``tmp``."""
    real = shutil.which("qemu-system-x86_64")
    assert real, "qemu-system-x86_64 is needed"
    log = tmp / "calls.log"
    wrapper = tmp / "qemu-wrapper"
    wrapper.write_text(SCRIPT.format(python=sys.executable, real=real, log=str(log), mode=mode))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    device = tmp / "kvm"
    device.write_bytes(b"")
    os.chmod(device, 0o600)
    return wrapper, log, device


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []
