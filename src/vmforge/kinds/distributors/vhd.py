"""VHD: export the built image as a fixed VHD aligned to 1 MiB (what Azure requires) — to ``uri`` when given
(an Azure Blob URL of the configured account, or a ``file://`` path under an import root), else to the
server's VHD store (``<data dir>/vhds``). Each data disk (``additionalDataDisks``) gets its own VHD beside it:
``<OS disk VHD without .vhd>-datadisk-<lun>.vhd``."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from vmforge.disk import qemuimg
from vmforge.kinds import register
from vmforge.kinds.base import BuildError, Context, Step


def data_disk_uri(os_uri: str, lun: int) -> str:
    """Where the VHD of data disk ``lun`` goes, beside the OS disk's: ``….vhd`` → ``…-datadisk-<lun>.vhd``. AIB's
    run output has one ``artifactUri`` (the OS disk's); a data disk's URI follows from it by this rule."""
    path, sep, query = os_uri.partition("?")  # a blob URL's query string (a SAS) stays a query string
    base = path[:-4] if path.lower().endswith(".vhd") else path
    return f"{base}-datadisk-{lun}.vhd{sep}{query}"


@register("distribute", "VHD")
class VhdStep(Step):
    kind = "VHD"

    def run(self, ctx: Context) -> None:
        o = self.options
        uri = o.get("uri") or ""
        name = f"{ctx.template_name}-{o['runOutputName']}-run{ctx.run_id}.vhd"
        result, size = self._export(ctx, ctx.state["image_path"], uri, name, f"{o['runOutputName']}.vhd")
        ctx.events.line(f"fixed VHD ({size} bytes) written to {result}", self.kind)
        for lun, disk in enumerate(ctx.state.get("data_disks") or []):
            where, size = self._export(ctx, disk, data_disk_uri(uri, lun) if uri else "", data_disk_uri(name, lun),
                                       f"{o['runOutputName']}-datadisk-{lun}.vhd")
            ctx.events.line(f"data disk LUN {lun}: fixed VHD ({size} bytes) written to {where}", self.kind)
        ctx.outputs[o["runOutputName"]] = {"artifact_uri": result}

    def _export(self, ctx: Context, image: Path, uri: str, store_name: str, tmp_name: str) -> tuple[str, int]:
        """One disk as a fixed VHD at ``uri`` (or ``store_name`` in the server's store); (its URI, its size)."""
        vhd = ctx.work_dir / tmp_name
        qemuimg.convert_fixed_vhd(image, vhd, src_fmt="qcow2")
        size = qemuimg.check_fixed_vhd(vhd)
        try:
            if uri.startswith("file://"):
                dest = Path(unquote(urlparse(uri).path)).resolve()
                if not any(dest.is_relative_to(r.resolve()) for r in ctx.artifacts.policy.import_roots):
                    raise BuildError(f"VHD \"{self.name}\": {dest} is outside the server's import roots.")
                dest.parent.mkdir(parents=True, exist_ok=True)
                vhd.replace(dest)
                result = dest.as_uri()
            elif uri.startswith(("https://", "http://")):
                result = self._to_blob(uri, vhd)
            else:
                from vmforge.artifacts.vhdstore import DirectoryVhdStore

                result = DirectoryVhdStore(ctx.data_dir / "vhds").put(vhd, "imagebuilder", store_name)
        finally:
            vhd.unlink(missing_ok=True)
        return result, size

    def _to_blob(self, uri: str, vhd: Path) -> str:
        """A page blob in the Azure Blob account of ``VMFORGE_BLOB_CONNECTION_STRING`` (its URL must match)."""
        from vmforge.artifacts.vhdstore import AzureBlobVhdStore

        conn = os.environ.get("VMFORGE_BLOB_CONNECTION_STRING")
        if not conn:
            raise BuildError(f"VHD \"{self.name}\": uri names a blob, but no blob account is configured "
                             "(VMFORGE_BLOB_CONNECTION_STRING).")
        store = AzureBlobVhdStore(conn)
        account = store.account_url  # never the SDK's url: with a SAS it carries the signature
        if not uri.startswith(account + "/"):
            raise BuildError(f"VHD \"{self.name}\": {uri.split('?')[0]} is not in the configured account {account}.")
        parts = uri[len(account) + 1:].split("?")[0].split("/", 1)
        if len(parts) != 2 or not parts[1]:
            raise BuildError(f"VHD \"{self.name}\": uri must name a container and a blob.")
        return store.put(vhd, parts[0], parts[1])
