"""File: the server downloads ``sourceUri`` (sha256 checked when given) and uploads it to the absolute
``destination`` in the guest (parent directories are created)."""

from __future__ import annotations

import shlex
import uuid

from vmforge.kinds import register
from vmforge.kinds.base import BuildError, Context, Step


@register("customize", "File")
@register("validate", "File")
class FileStep(Step):
    kind = "File"
    download_field = "sourceUri"  # fetched and checked before the first VM starts

    def run(self, ctx: Context) -> None:
        dest = self.options["destination"]
        local = ctx.fetch(self.options["sourceUri"], self.options.get("sha256Checksum") or None)
        if ctx.os_type == "Linux":
            parent = dest.rsplit("/", 1)[0] or "/"
            if ctx.guest.run(f"mkdir -p {shlex.quote(parent)}", source=self.kind) != 0:
                raise BuildError(f"File \"{self.name}\": cannot create {parent} in the guest.")
        tmp = dest if ctx.os_type != "Linux" else f"{dest}.vmforge-{uuid.uuid4().hex[:8]}"
        ctx.guest.upload(local, tmp)
        if ctx.os_type == "Linux" and ctx.guest.run(f"mv -f {shlex.quote(tmp)} {shlex.quote(dest)}",
                                                    source=self.kind) != 0:
            raise BuildError(f"File \"{self.name}\": cannot move the upload into {dest}.")
        ctx.events.line(f"uploaded {local.stat().st_size} bytes to {dest}", self.kind)
