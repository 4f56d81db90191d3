"""Software bills of materials: what is installed in a built Linux image, read offline, as SPDX 2.3 JSON.

After Capture (the build VM is off) the built disk is made raw with ``qemu-img convert`` (the one qemu-img
wrapper, ``vmforge.disk.qemuimg``), its root ext file system is found and read with ``debugfs`` exactly as
offline key injection does (``vmforge.machine.inject``): no boot, no loop device. The package database read is
dpkg's ``/var/lib/dpkg/status`` (only stanzas whose Status is ``install ok installed``). rpm databases are not
read (that would need ``rpm --dbpath`` on this host over a copy of the database); when the image has one, the
log and the document's comment say so.

The source image is read the same way (cached per source file, keyed by its path, size and mtime) and the run's
log gets one line per difference — ``+ name version`` (added), ``- name version`` (removed),
``~ name old → new`` (changed) — and a summary line. The document is stored in the run's directory as
``sbom.spdx.json`` (kept when the run's work files are removed) and served at
``GET {template}/runs/{runId}/sbom``.

A disk that cannot be read (not ext, no package database, a qemu-img or debugfs failure) never fails the
build: the log says why and the run has no SBOM. Windows images have none either, said in the log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vmforge import __version__
from vmforge.disk import qemuimg
from vmforge.kinds.base import Context, Step
from vmforge.machine import MachineError, inject
from vmforge.service.runstate import RunSubState

SBOM_FILE = "sbom.spdx.json"
DPKG_STATUS = "/var/lib/dpkg/status"
RPM_DATABASES = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
OS_RELEASE = ("/usr/lib/os-release", "/etc/os-release")  # /etc/os-release is usually a symlink to the first
NAMESPACE_BASE = "https://vmforge.invalid/spdx"  # .invalid (RFC 2606): a URI that names no real host
RPM_NOT_READ = ("rpm database found at {path} but not read: vmforge reads only dpkg's database; the rpm "
                "packages of this image are not listed")


class SbomError(Exception):
    """The image's package database could not be read."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str = ""
    maintainer: str | None = None


@dataclass
class Inventory:
    """What one image holds: its installed packages, its os-release fields, and notes on what was not read."""

    packages: list[Package]
    os_release: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ parsers
def parse_dpkg_status(text: str) -> list[Package]:
    """The installed packages of a dpkg status file (deb822 stanzas), sorted by name and architecture."""
    out = []
    for stanza in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        last = None
        for line in stanza.split("\n"):
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] in " \t":  # a continuation line of the last field
                if last is not None:
                    fields[last] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            last = key.strip().lower()
            fields[last] = value.strip()
        if " ".join(fields.get("status", "").split()) != "install ok installed":
            continue
        name, version = fields.get("package"), fields.get("version")
        if not name or not version:
            continue
        out.append(Package(name, version, fields.get("architecture", ""), fields.get("maintainer") or None))
    return sorted(out, key=lambda p: (p.name, p.arch, p.version))


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[key] = value
    return out


# ------------------------------------------------------------------ reading a disk offline
def _exists(raw: Path, offset: int, path: str) -> bool:
    return "Type:" in inject.debugfs(raw, offset, [f"stat {path}"])


def read_raw(raw: Path) -> Inventory:
    """The inventory of a raw disk image (its root ext file system, read with debugfs)."""
    offset = inject.root_offset(raw)
    notes = [RPM_NOT_READ.format(path=p) for p in RPM_DATABASES if _exists(raw, offset, p)]
    os_release: dict[str, str] = {}
    for p in OS_RELEASE:
        if _exists(raw, offset, p):
            os_release = parse_os_release(inject.debugfs(raw, offset, [f"cat {p}"]))
            if os_release:
                break
    if not _exists(raw, offset, DPKG_STATUS):
        raise SbomError(f"no package database in the image ({DPKG_STATUS} not found"
                        + (f"; {notes[0]}" if notes else "") + ")")
    packages = parse_dpkg_status(inject.debugfs(raw, offset, [f"cat {DPKG_STATUS}"]))
    if not packages:
        raise SbomError(f"{DPKG_STATUS} lists no installed package")
    return Inventory(packages, os_release, notes)


def read_image(image: Path, fmt: str, work: Path) -> Inventory:
    """The inventory of a disk image of any format (a raw copy is made in ``work`` and removed)."""
    raw = work / f"sbom-{uuid.uuid4().hex[:8]}.raw"
    try:
        qemuimg.convert(image, raw, "raw", src_fmt=fmt, cache="unsafe")
        return read_raw(raw)
    except (qemuimg.DiskError, MachineError) as e:
        raise SbomError(str(e)) from e
    finally:
        raw.unlink(missing_ok=True)


_source_cache: dict[tuple[str, int, int], Inventory] = {}
_source_lock = threading.Lock()


def source_inventory(image: Path, fmt: str, work: Path) -> Inventory:
    """``read_image`` of a source image, once per file (path, size, mtime) in this process."""
    st = image.stat()
    key = (str(image.resolve()), st.st_size, st.st_mtime_ns)
    with _source_lock:
        if key in _source_cache:
            return _source_cache[key]
    inv = read_image(image, fmt, work)
    with _source_lock:
        _source_cache[key] = inv
    return inv


# ------------------------------------------------------------------ SPDX 2.3
def _spdx_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)


def supplier(maintainer: str | None) -> str:
    """SPDX's supplier: ``Person: name (email)`` from a ``Name <email>`` maintainer, else NOASSERTION."""
    if not maintainer or not maintainer.strip():
        return "NOASSERTION"
    m = re.fullmatch(r"\s*(.*?)\s*<([^>]*)>\s*", maintainer)
    if m:
        name, email = m.group(1), m.group(2).strip()
        return f"Person: {name or email}" + (f" ({email})" if email and name else "")
    return f"Person: {maintainer.strip()}"


def purl(p: Package, os_release: dict[str, str]) -> str:
    """``pkg:deb/{ID}/{name}@{version}?arch=…&distro=…`` (the purl spec's deb type; ``:`` of an epoch encoded)."""
    namespace = (os_release.get("ID") or "debian").lower()
    out = f"pkg:deb/{quote(namespace, safe='')}/{quote(p.name, safe='')}@{quote(p.version, safe='')}"
    qualifiers = []
    if p.arch:
        qualifiers.append(f"arch={quote(p.arch, safe='')}")
    if os_release.get("VERSION_ID"):
        qualifiers.append(f"distro={quote(namespace + '-' + os_release['VERSION_ID'], safe='')}")
    return out + ("?" + "&".join(qualifiers) if qualifiers else "")


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def namespace_prefix(template: str, run_id: int | str) -> str:
    return f"{NAMESPACE_BASE}/{quote(template, safe='')}/{run_id}/"


def spdx_document(inv: Inventory, *, template: str, run_id: int | str, image_name: str | None = None,
                  created: str | None = None) -> dict[str, Any]:
    """An SPDX 2.3 document: the image as one package that CONTAINS every installed package."""
    image_id = "SPDXRef-Image"
    distro = inv.os_release.get("PRETTY_NAME") or inv.os_release.get("NAME")
    image = {"SPDXID": image_id, "name": image_name or template, "downloadLocation": "NOASSERTION",
             "filesAnalyzed": False, "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
             "copyrightText": "NOASSERTION", "supplier": "NOASSERTION", "primaryPackagePurpose": "OPERATING-SYSTEM",
             "comment": f"The disk image built by run {run_id} of image template '{template}'"
                        + (f" ({distro})" if distro else "") + "."}
    packages, relationships = [image], [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}]
    seen: set[str] = set()
    for p in inv.packages:
        base = f"SPDXRef-Package-deb-{_spdx_id(p.name)}" + (f"-{_spdx_id(p.arch)}" if p.arch else "")
        sid, n = base, 1
        while sid in seen:
            n += 1
            sid = f"{base}-{n}"
        seen.add(sid)
        packages.append({
            "SPDXID": sid, "name": p.name, "versionInfo": p.version, "supplier": supplier(p.maintainer),
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(p, inv.os_release)}]})
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": sid})
    comment = f"Installed packages read offline from {DPKG_STATUS} of the built disk."
    if inv.notes:
        comment += " " + " ".join(n[0].upper() + n[1:] + "." for n in inv.notes)
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{template}-run-{run_id}",
        "documentNamespace": namespace_prefix(template, run_id) + str(uuid.uuid4()),
        "creationInfo": {"created": created or now_utc(), "creators": [f"Tool: vmforge-{__version__}"]},
        "comment": comment, "packages": packages, "relationships": relationships,
    }


# ------------------------------------------------------------------ the diff
def diff(before: list[Package], after: list[Package]) -> list[str]:
    """``+ name version`` / ``- name version`` / ``~ name old → new``, by name (``name:arch`` where a name has
    several architectures), sorted by name."""
    names_arches: dict[str, set[str]] = {}
    for p in [*before, *after]:
        names_arches.setdefault(p.name, set()).add(p.arch)

    def label(p: Package) -> str:
        return f"{p.name}:{p.arch}" if len(names_arches[p.name]) > 1 else p.name

    old = {(p.name, p.arch): p for p in before}
    new = {(p.name, p.arch): p for p in after}
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None:
            out.append(f"+ {label(b)} {b.version}")
        elif b is None:
            out.append(f"- {label(a)} {a.version}")
        elif a.version != b.version:
            out.append(f"~ {label(b)} {a.version} → {b.version}")
    return out


def summary(lines: list[str], before: int, after: int) -> str:
    count = {c: sum(1 for line in lines if line.startswith(c + " ")) for c in "+-~"}
    return (f"packages: {count['+']} added, {count['-']} removed, {count['~']} changed "
            f"({after} installed, {before} in the source)")


# ------------------------------------------------------------------ storage
def sbom_path(run_dir: Path) -> Path:
    return run_dir / SBOM_FILE


def write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def load(path: Path, template: str, run_id: int | str) -> dict[str, Any] | None:
    """The stored document of run ``run_id`` of ``template``, or None (none stored, or another run's)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not str(doc.get("documentNamespace", "")).lower().startswith(namespace_prefix(template, run_id).lower()):
        return None
    return doc


def why_none(log_path: str | None) -> str | None:
    """The reason the run's log gives for having no SBOM (its last ``[sbom]`` warning or notice), if any."""
    if not log_path:
        return None
    try:
        lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        m = re.search(r"\[sbom\] ((?:warning: )?no SBOM.*)", line)
        if m:
            return m.group(1)
    return None


# ------------------------------------------------------------------ the step
class SbomStep(Step):
    """After Capture: the built disk's packages as SPDX, and their diff against the source's, in the log."""

    kind = "SBOM"
    phase = RunSubState.OPTIMIZING

    def run(self, ctx: Context) -> None:
        out = sbom_path(ctx.work_dir)
        out.unlink(missing_ok=True)  # never another run's
        if (ctx.os_type or "Linux").lower() == "windows":
            ctx.events.line("no SBOM: the source is a Windows image (only Linux package databases are read)",
                            "sbom")
            return
        built = Path(ctx.state["image_path"])
        try:
            inv = read_image(built, "qcow2", ctx.work_dir)
        except SbomError as e:
            ctx.events.line(f"warning: no SBOM for this run: the built disk's packages could not be read: {e}",
                            "sbom")
            return
        for note in inv.notes:
            ctx.events.line(note, "sbom")
        doc = spdx_document(inv, template=ctx.template_name, run_id=ctx.run_id,
                            image_name=f"{ctx.template_name} (run {ctx.run_id})")
        write(out, doc)
        ctx.events.line(f"SBOM: {len(inv.packages)} installed packages (SPDX 2.3, {out.name})", "sbom")
        ctx.check()
        resolved = ctx.state.get("resolved")
        try:
            source = source_inventory(Path(resolved.path), "qcow2", ctx.work_dir)
        except (SbomError, AttributeError, OSError) as e:
            ctx.events.line(f"warning: no package diff: the source image's packages could not be read: {e}", "sbom")
            return
        lines = diff(source.packages, inv.packages)
        for line in lines:
            ctx.events.line(line, "sbom")
        ctx.events.line(summary(lines, len(source.packages), len(inv.packages)), "sbom")


def no_sbom_message(run: Any, template: str) -> str:
    """Why run ``run`` (a store Run) of ``template`` has no SBOM, for the route's 404."""
    from vmforge.service.runstate import RunState

    head = f"The run '{run.id}' of image template '{template}' has no SBOM"
    if not RunState(run.state).terminal:
        return (f"{head} yet: it is {run.state}" + (f" ({run.sub_state})" if run.sub_state else "")
                + "; the SBOM is recorded once the built disk has been captured.")
    why = why_none(run.log_path)
    if why:
        return f"{head}: {why}."
    return (f"{head}: it ended {run.state} with no built disk read for one (a build that failed or was canceled "
            "before Capture, a sourceValidationOnly run, or a run older than SBOMs)"
            + (f": {run.message.rstrip('.')}" if run.message else "") + ".")
