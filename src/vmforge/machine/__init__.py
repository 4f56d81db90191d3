"""The build machine: QEMU (KVM when a probe boot proves it works, TCG otherwise) on a qcow2 overlay, a
cloud-init NoCloud seed or an offline key injection, an isolated user-mode network, and an asyncssh session.

Progress goes through a ``Progress`` callback (``Callable[[str], None]``, e.g. ``RunEvents.line``); nothing
here prints.
"""

from collections.abc import Callable

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    """The default progress sink: drop the message."""


class MachineError(Exception):
    """The build VM could not be started, reached or stopped."""


__all__ = ["MachineError", "Progress", "no_progress"]
