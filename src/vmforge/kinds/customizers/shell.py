"""Shell: inline lines (in order, as one ``/bin/sh -e`` script, so the first failing line fails the step) or a
script downloaded by the server from ``scriptUri`` (its sha256 checked when given), uploaded and run as root."""

from __future__ import annotations

import shlex
import uuid

from vmforge.kinds import register
from vmforge.kinds.base import BuildError, Context, Step
from vmforge.service.runstate import RunSubState


def inline_script(lines: list[str]) -> str:
    return "#!/bin/sh -e\n" + "\n".join(lines) + "\n"


@register("customize", "Shell")
@register("validate", "Shell")
class ShellStep(Step):
    kind = "Shell"
    download_field = "scriptUri"  # fetched and checked before the first VM starts

    def prepare(self, ctx: Context) -> list[str]:
        if ctx.os_type != "Linux":
            return [f"{self.kind} \"{self.name}\": Shell steps run on Linux guests; use PowerShell on Windows."]
        return []

    def run(self, ctx: Context) -> None:
        remote = f"/tmp/vmforge-script-{uuid.uuid4().hex[:12]}.sh"
        local = ctx.work_dir / (remote.rsplit("/", 1)[1])
        if self.options.get("inline"):
            local.write_text(inline_script(list(self.options["inline"])))
        else:
            fetched = ctx.fetch(self.options["scriptUri"], self.options.get("sha256Checksum") or None)
            local.write_bytes(fetched.read_bytes())
        ctx.guest.upload(local, remote)
        q = shlex.quote(remote)
        status = ctx.guest.run(f"chmod +x {q} && if head -c2 {q} | grep -q '^#!'; then {q}; else /bin/sh -e {q}; fi; "
                               f"rc=$?; rm -f {q}; exit $rc", source=self.kind)
        if status != 0:
            raise BuildError(f"{self.kind} \"{self.name}\" exited with status {status}.",
                             code="CustomizerFailed" if self.phase is RunSubState.CUSTOMIZING else "ValidationFailed")
