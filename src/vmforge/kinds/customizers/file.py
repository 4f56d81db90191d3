"""File: the server downloads ``sourceUri`` (sha256 checked when given) and uploads it to the absolute
``destination`` in the guest (parent directories are created)."""

from __future__ import annotations

import uuid

from vmforge.kinds import register
from vmforge.kinds.base import BuildError, Context, Step
from vmforge.machine.guestos import for_os


@register("customize", "File")
@register("validate", "File")
class FileStep(Step):
    kind = "File"
    download_field = "sourceUri"  # fetched and checked before the first VM starts

    def run(self, ctx: Context) -> None:
        guest_os = for_os(ctx.os_type)
        dest = self.options["destination"]
        local = ctx.fetch(self.options["sourceUri"], self.options.get("sha256Checksum") or None)
        cut = max(dest.rfind("/"), dest.rfind("\\"))
        parent = dest[:cut] if cut > 0 else dest[:cut + 1] or "/"
        if ctx.guest.run(guest_os.mkdir_command(parent), source=self.kind) != 0:
            raise BuildError(f"File \"{self.name}\": cannot create {parent} in the guest.")
        tmp = f"{dest}.vmforge-{uuid.uuid4().hex[:8]}"  # the upload lands beside, then replaces, the destination
        ctx.guest.upload(local, tmp)
        if ctx.guest.run(guest_os.move_command(tmp, dest), source=self.kind) != 0:
            raise BuildError(f"File \"{self.name}\": cannot move the upload into {dest}.")
        ctx.events.line(f"uploaded {local.stat().st_size} bytes to {dest}", self.kind)
