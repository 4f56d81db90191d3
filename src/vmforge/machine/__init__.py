"""The build machine: QEMU (KVM when a probe boot proves it works, TCG otherwise) on a qcow2 overlay, a
cloud-init NoCloud seed or an offline key injection, an isolated user-mode network, and an asyncssh session.

Progress goes through a ``Progress`` callback (``Callable[[str], None]``, e.g. ``RunEvents.line``); nothing
here prints.
"""

import os
import shutil
from collections.abc import Callable

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    """The default progress sink: drop the message."""


class MachineError(Exception):
    """The build VM could not be started, reached or stopped."""


def qemu_binary() -> str:
    """The QEMU system emulator: ``$VMFORGE_QEMU`` if set (a path or a name on PATH), else
    ``qemu-system-x86_64``."""
    name = os.environ.get("VMFORGE_QEMU") or "qemu-system-x86_64"
    return shutil.which(name) or name


__all__ = ["MachineError", "Progress", "no_progress", "qemu_binary"]
