"""The inputs of a run, as Schedule triggers with ``condition: onChange`` compare them.

A fingerprint is ``{"source": exact version or None, "sourceDigest": the source blob's digest, "template": sha256
of the template's own properties, "downloads": {url: sha256}}``: the version ``latest`` resolved to (and the
content it names, so a re-imported image under the same version counts as a change), every file the template
downloads (``scriptUri``/``sourceUri`` of its customizers and validators, hashed by content, never by URL),
and the template itself (changed only where updates are allowed). A Succeeded run records the fingerprint of
what it actually used (``record``); a trigger computes the current one (``current``, which fetches every
download under the same outbound policy as a run) and starts a run only when they differ.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from vmforge.store.models import Run

# The template's properties that the service writes, not the user: they do not make a template "changed".
_SERVICE_WRITTEN = ("provisioningState", "provisioningError", "lastRunStatus", "exactStagingResourceGroup")


def template_digest(props: dict[str, Any]) -> str:
    mine = {k: v for k, v in props.items() if k not in _SERVICE_WRITTEN}
    if isinstance(mine.get("source"), dict):
        mine["source"] = {k: v for k, v in mine["source"].items() if k != "exactVersion"}
    return hashlib.sha256(json.dumps(mine, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_part(resolved: Any) -> dict[str, Any]:
    return {"source": resolved.exact_version, "sourceDigest": Path(resolved.path).stem}


def downloads_of(props: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(url, sha256 or None) of every download a run of ``props`` makes — the same list as its Downloads step."""
    from vmforge.kinds import make_step

    validate = props.get("validate") or {}
    validators = [make_step("validate", v, i) for i, v in enumerate(validate.get("inVMValidations") or [])]
    customizers = [make_step("customize", c, i) for i, c in enumerate(props.get("customize") or [])]
    steps = validators if validate.get("sourceValidationOnly") else customizers + validators
    return [(url, sha) for step in steps for url, sha, _ in step.downloads()]


# ----------------------------------------------------------------------------- at run time
def note_download(state: dict[str, Any], url: str, path: Path) -> None:
    """The Downloads step fetched ``url`` into ``path``: remember its content's sha256 for the run's record."""
    state.setdefault("download_sha256", {})[url] = sha256_file(path)


def record(db: Any, run_id: int, state: dict[str, Any], props: dict[str, Any]) -> None:
    """A run succeeded: store the fingerprint of the inputs it used."""
    resolved = state.get("resolved")
    if resolved is None:
        return
    inputs = {**source_part(resolved), "template": template_digest(props),
              "downloads": dict(state.get("download_sha256") or {})}
    with db.session() as s:
        run = s.get(Run, run_id)
        if run is not None:
            run.inputs = inputs


# ----------------------------------------------------------------------------- at check time
def last_success(db: Any, template_id: int, recorded: bool = True) -> tuple[int, dict[str, Any]] | None:
    """(run id, inputs) of the template's newest Succeeded run that recorded its inputs (``recorded=False``: of
    its newest Succeeded run, inputs or not)."""
    q = select(Run.id, Run.inputs).where(Run.template_id == template_id, Run.state == "Succeeded")
    if recorded:
        q = q.where(Run.inputs.is_not(None))
    with db.read() as s:
        row = s.execute(q.order_by(Run.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row is not None else None


def current(artifacts: Any, props: dict[str, Any], work_root: Path, policy: Any) -> dict[str, Any]:
    """The fingerprint a run of ``props`` would record now: the source resolved, every download fetched (under
    ``policy``, into a scratch folder below ``work_root`` that is removed) and hashed. Raises the resolver's or
    the fetcher's ``ArmError``."""
    from vmforge import fetch

    out = {**source_part(artifacts.resolve_source(props["source"])), "template": template_digest(props),
           "downloads": {}}
    work_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="fingerprint-", dir=work_root))
    try:
        for url, sha in downloads_of(props):
            if url in out["downloads"]:
                continue
            dest = fetch.download(url, scratch / uuid.uuid4().hex, sha256=sha, policy=policy)
            out["downloads"][url] = sha256_file(dest)
            dest.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed from ``before`` to ``now``, in words (empty: nothing did)."""
    from vmforge.fetch import safe_url

    out = []
    if before.get("source") != now.get("source"):
        out.append(f"the source version is {now.get('source')} (was {before.get('source')})")
    elif before.get("sourceDigest") != now.get("sourceDigest"):
        out.append("the source image's content changed")
    if before.get("template") != now.get("template"):
        out.append("the template changed")
    old, new = before.get("downloads") or {}, now.get("downloads") or {}
    for url in sorted(set(old) | set(new)):
        if url not in old:
            out.append(f"{safe_url(url)} is a new download")
        elif url not in new:
            out.append(f"{safe_url(url)} is no longer downloaded")
        elif old[url] != new[url]:
            out.append(f"the content of {safe_url(url)} changed (sha256 {new[url][:12]}…, was {old[url][:12]}…)")
    return out
