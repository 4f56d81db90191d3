"""Firmware by Hyper-V generation, as Azure boots them: Gen1 (``V1``) with a BIOS (SeaBIOS, QEMU's ``pc``
machine), Gen2 (``V2``) with UEFI (OVMF from Debian's ``ovmf``, on the ``q35`` machine).

OVMF needs two flash devices: the firmware code (read-only, shared) and a variable store that the guest
writes (boot entries). Every VM gets its own copy of the store's template, so no two VMs — and no VM and the
package — share one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from vmforge.machine import MachineError

Firmware = Literal["bios", "uefi"]

# (code, vars template) pairs, preferred first: the 4 MiB builds are what Debian 12 recommends.
OVMF_DIRS = (Path("/usr/share/OVMF"), Path("/usr/share/ovmf"), Path("/usr/share/edk2/ovmf"))
OVMF_PAIRS = (("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd"))


def for_generation(hyper_v_generation: str | None) -> Firmware:
    """``V2`` → UEFI; ``V1`` (and no value: Azure's default for images) → BIOS."""
    return "uefi" if (hyper_v_generation or "V1").upper() == "V2" else "bios"


def ovmf() -> tuple[Path, Path]:
    """The OVMF code and variable-store template found on this host."""
    for d in OVMF_DIRS:
        for code, vars_ in OVMF_PAIRS:
            if (d / code).is_file() and (d / vars_).is_file():
                return d / code, d / vars_
    raise MachineError("UEFI (hyperVGeneration V2) needs OVMF: apt install ovmf")


def prepare(firmware: Firmware, workdir: Path) -> None:
    """Before a VM starts: for UEFI, a fresh copy of the variable store in ``workdir``."""
    if firmware == "uefi":
        shutil.copyfile(ovmf()[1], workdir / "efivars.fd")


def machine_args(firmware: Firmware, workdir: Path) -> list[str]:
    """QEMU's machine and firmware arguments (no side effect: :func:`prepare` writes the variable store)."""
    if firmware == "bios":
        return ["-machine", "pc"]
    if firmware != "uefi":
        raise MachineError(f"unknown firmware {firmware!r}")
    code, _template = ovmf()
    vars_copy = workdir / "efivars.fd"
    return ["-machine", "q35",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
