"""WindowsRestart: run ``restartCommand``, wait for the VM to go away and come back over SSH within
``restartTimeout`` (e.g. ``5m``, ``1h30m``; default 5m), then run ``restartCheckCommand`` if given.

Untested against a real Windows guest (none can be had here); the parsing and command choice are unit-tested.
"""

from __future__ import annotations

import re
import time

from vmforge.kinds import register
from vmforge.kinds.base import BuildError, Context, Step
from vmforge.service.runstate import RunSubState

DEFAULT_COMMAND = 'shutdown /r /f /t 0 /c "vmforge restart"'
DEFAULT_CHECK = 'powershell -command "& {Write-Output \'restarted.\'}"'


def parse_duration(text: str | None, default: float = 300.0) -> float:
    """'5m' → 300, '1h30m' → 5400, '90s' → 90, '' → default."""
    if not text:
        return default
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)([hms])", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)]
        pos = m.end()
    if pos != len(text) or total <= 0:
        raise ValueError(f"invalid duration {text!r}")
    return total


@register("customize", "WindowsRestart")
class WindowsRestartStep(Step):
    kind = "WindowsRestart"
    phase = RunSubState.CUSTOMIZING

    def prepare(self, ctx: Context) -> list[str]:
        try:
            parse_duration(self.options.get("restartTimeout"))
        except ValueError as e:
            return [str(e)]
        return []

    def run(self, ctx: Context) -> None:
        timeout = parse_duration(self.options.get("restartTimeout"))
        cmd = self.options.get("restartCommand") or (DEFAULT_COMMAND if ctx.os_type == "Windows" else "reboot")
        ctx.events.line(f"restarting: {cmd}", self.kind)
        try:
            ctx.guest.run(cmd, timeout=60, source=self.kind)
        except BuildError:
            pass  # the connection drops as the machine goes down
        time.sleep(5)
        start = time.monotonic()
        try:
            ctx.guest.reconnect(timeout)
        except Exception as e:  # noqa: BLE001
            raise BuildError(f"WindowsRestart \"{self.name}\": the VM did not come back within {timeout:g} s: {e}",
                             code="CustomizerFailed") from e
        ctx.events.line(f"back after {time.monotonic() - start:.1f} s", self.kind)
        check = self.options.get("restartCheckCommand") or (DEFAULT_CHECK if ctx.os_type == "Windows" else "")
        if check and ctx.guest.run(check, source=self.kind) != 0:
            raise BuildError(f"WindowsRestart \"{self.name}\": restartCheckCommand failed.", code="CustomizerFailed")
