"""WindowsUpdate: search, filter and install updates with the Windows Update Agent API, rebooting between
rounds until nothing applicable is left — the semantics of the windows-update provisioner that AIB uses:
``searchCriteria`` (default ``AutoSelectOnWebSites=1 and IsInstalled=0``), ``filters`` (``include:``/``exclude:``
PowerShell expressions over ``$_``, first match wins; default: exclude previews, include the rest) and
``updateLimit`` (updates per round; default 1000).

Untested against a real Windows guest (none can be had here); the script generation is unit-tested.
"""

from __future__ import annotations

import uuid

from vmforge.kinds import register
from vmforge.machine.guestos import PS_FLAGS, ps_quote
from vmforge.kinds.base import BuildError, Context, Step
from vmforge.service.runstate import RunSubState

DEFAULT_CRITERIA = "AutoSelectOnWebSites=1 and IsInstalled=0"
DEFAULT_FILTERS = ["exclude:$_.Title -like '*Preview*'", "include:$true"]
REBOOT_EXIT = 101  # the script's "installed, reboot needed" status
MAX_ROUNDS = 10


def filter_expression(filters: list[str]) -> str:
    """A PowerShell scriptblock body returning $true for updates to install."""
    parts = []
    for f in filters:
        action, _, expr = f.partition(":")
        if action not in ("include", "exclude") or not expr:
            raise ValueError(f"invalid filter {f!r}: use include:<expr> or exclude:<expr>")
        parts.append(f"if ({expr}) {{ return ${'true' if action == 'include' else 'false'} }}")
    return "; ".join(parts + ["return $false"])


def script(criteria: str, filters: list[str], limit: int) -> str:
    return "\n".join([
        "$ErrorActionPreference = 'Stop'",
        "$session = New-Object -ComObject Microsoft.Update.Session",
        f"$result = $session.CreateUpdateSearcher().Search({ps_quote(criteria)})",
        f"$wanted = @($result.Updates | Where-Object {{ {filter_expression(filters)} }} | Select-Object -First {limit})",
        "if ($wanted.Count -eq 0) { Write-Output 'No applicable updates.'; exit 0 }",
        "$coll = New-Object -ComObject Microsoft.Update.UpdateColl",
        "foreach ($u in $wanted) { Write-Output \"Update: $($u.Title)\"; if (-not $u.EulaAccepted) { $u.AcceptEula() }; "
        "[void]$coll.Add($u) }",
        "$dl = $session.CreateUpdateDownloader(); $dl.Updates = $coll; [void]$dl.Download()",
        "$inst = $session.CreateUpdateInstaller(); $inst.Updates = $coll; $r = $inst.Install()",
        "Write-Output \"Install result: $($r.ResultCode)\"",
        f"if ($r.RebootRequired) {{ exit {REBOOT_EXIT} }}",
        "if ($r.ResultCode -ne 2 -and $r.ResultCode -ne 3) { exit 1 }",
        f"exit {REBOOT_EXIT}",  # installed something: look again after a restart
    ]) + "\n"


@register("customize", "WindowsUpdate")
class WindowsUpdateStep(Step):
    kind = "WindowsUpdate"
    phase = RunSubState.CUSTOMIZING

    def prepare(self, ctx: Context) -> list[str]:
        problems = []
        if ctx.os_type != "Windows":
            problems.append(f"WindowsUpdate \"{self.name}\" needs a Windows source image.")
        try:
            filter_expression(self.options.get("filters") or DEFAULT_FILTERS)
        except ValueError as e:
            problems.append(str(e))
        return problems

    def run(self, ctx: Context) -> None:
        text = script(self.options.get("searchCriteria") or DEFAULT_CRITERIA,
                      self.options.get("filters") or DEFAULT_FILTERS, self.options.get("updateLimit") or 1000)
        name = f"vmforge-wu-{uuid.uuid4().hex[:8]}.ps1"
        local = ctx.work_dir / name
        local.write_text(text)
        for round_no in range(1, MAX_ROUNDS + 1):
            ctx.guest.upload(local, f"C:/Windows/Temp/{name}")
            status = ctx.guest.run(f"powershell.exe {PS_FLAGS} -File \"C:/Windows/Temp/{name}\"", source=self.kind)
            if status == 0:
                return
            if status != REBOOT_EXIT:
                raise BuildError(f"WindowsUpdate \"{self.name}\" failed in round {round_no} (status {status}).",
                                 code="CustomizerFailed")
            ctx.guest.run('shutdown /r /f /t 0 /c "vmforge windows update"', timeout=60, source=self.kind)
            ctx.guest.reconnect(1800)
        raise BuildError(f"WindowsUpdate \"{self.name}\": updates still pending after {MAX_ROUNDS} rounds.")
