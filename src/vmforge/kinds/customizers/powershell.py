"""PowerShell: inline commands or a downloaded script, run over SSH with ``powershell.exe`` (Windows) or
``pwsh`` (Linux). ``runElevated`` runs as an administrator (on Linux: as root, which the build session already
is), ``runAsSystem`` as the SYSTEM account through a one-shot scheduled task; the exit code must be one of
``validExitCodes`` (default ``[0]``).

Untested against a real Windows guest: no Windows image can be had where vmforge is developed. The command
construction is unit-tested.
"""

from __future__ import annotations

import uuid

from vmforge.kinds import register
from vmforge.kinds.base import BuildError, Context, Step
from vmforge.machine.guestos import PS_FLAGS, ps_quote  # noqa: F401 — re-exported for the Windows kinds


def script_text(options: dict) -> str | None:
    if options.get("inline"):
        return "$ErrorActionPreference = 'Stop'\n" + "\n".join(options["inline"]) + "\nexit $LASTEXITCODE\n"
    return None


def command(os_type: str, script_path: str, *, run_as_system: bool, task: str) -> str:
    """The command that runs ``script_path`` in the guest."""
    if os_type != "Windows":
        return f"pwsh {PS_FLAGS} -File '{script_path}'"
    inner = f"powershell.exe {PS_FLAGS} -File \"{script_path}\""
    if not run_as_system:
        return inner
    # SYSTEM via a scheduled task: create, run, wait for it to finish, return its result, delete it.
    log = script_path + ".log"
    tr = f"cmd /c {inner} > \"{log}\" 2>&1"
    ps = (
        f"schtasks /create /f /tn {task} /ru SYSTEM /sc once /st 00:00 /tr {ps_quote(tr)} | Out-Null; "
        f"schtasks /run /tn {task} | Out-Null; "
        f"do {{ Start-Sleep -Seconds 2; $t = Get-ScheduledTask -TaskName {task} }} while ($t.State -eq 'Running'); "
        f"Get-Content {ps_quote(log)} -ErrorAction SilentlyContinue; "
        f"$r = (Get-ScheduledTaskInfo -TaskName {task}).LastTaskResult; "
        f"schtasks /delete /f /tn {task} | Out-Null; exit $r"
    )
    return f"powershell.exe {PS_FLAGS} -Command {ps_quote(ps).replace(chr(34), chr(92) + chr(34))}"


@register("customize", "PowerShell")
@register("validate", "PowerShell")
class PowerShellStep(Step):
    kind = "PowerShell"
    download_field = "scriptUri"  # fetched and checked before the first VM starts

    def run(self, ctx: Context) -> None:
        guest = ctx.guest
        if ctx.os_type != "Windows" and guest.run("command -v pwsh >/dev/null 2>&1", source=self.kind) != 0:
            raise BuildError(
                f"PowerShell \"{self.name}\": this Linux build VM has no PowerShell ('pwsh' was not found). "
                "Install PowerShell in an earlier Shell step, or use a Shell customizer.", code="CustomizerFailed")
        name = f"vmforge-{uuid.uuid4().hex[:12]}.ps1"
        local = ctx.work_dir / name
        text = script_text(self.options)
        if text is None:
            local.write_bytes(ctx.fetch(self.options["scriptUri"], self.options.get("sha256Checksum") or None).read_bytes())
        else:
            local.write_text(text)
        remote = f"C:/Windows/Temp/{name}" if ctx.os_type == "Windows" else f"/tmp/{name}"
        guest.upload(local, remote)
        cmd = command(ctx.os_type, remote, run_as_system=bool(self.options.get("runAsSystem")),
                      task=name.removesuffix(".ps1"))
        status = guest.run(cmd, source=self.kind)
        valid = self.options.get("validExitCodes") or [0]
        if status not in valid:
            raise BuildError(f"PowerShell \"{self.name}\" exited with {status}, not one of the valid exit codes "
                             f"{valid}.", code="CustomizerFailed")
