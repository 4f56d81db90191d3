"""vmforge.sbom without a VM: the dpkg status parser (tests/data/dpkg-status), the SPDX 2.3 writer validated
against the vendored official schema, the package diff, the stored document, and reading a real ext4 disk
image offline (made here with mkfs.ext4 -d; no loop device, no boot)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tools
from vmforge import __version__, sbom
from vmforge.sbom import Inventory, Package

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((DATA / "spdx-2.3-schema.json").read_text(encoding="utf-8"))
OS_RELEASE = {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}


def validate(doc: dict) -> None:
    import jsonschema

    jsonschema.Draft201909Validator(SCHEMA).validate(doc)


@pytest.fixture
def packages() -> list[Package]:
    return sbom.parse_dpkg_status((DATA / "dpkg-status").read_text())


def test_parser_keeps_installed_packages_only(packages: list[Package]) -> None:
    assert [(p.name, p.arch, p.version) for p in packages] == [
        ("adduser", "all", "3.134"),
        ("libc6", "amd64", "2.36-9+deb12u4"),
        ("libc6", "i386", "2.36-9+deb12u4"),
        ("libstdc++6", "amd64", "12.2.0-14"),
        ("local-tool", "amd64", "0.1"),
        ("openssh-server", "amd64", "1:9.2p1-2+deb12u3"),
    ]
    assert packages[0].maintainer == "Debian Adduser Developers <adduser@packages.debian.org>"
    assert packages[4].maintainer is None


def test_parser_reads_continuation_lines_and_crlf() -> None:
    text = ("Package: a\r\nStatus: install ok installed\r\nVersion: 1\r\nDescription: x\r\n y\r\n\r\n"
            "Package: b\r\nStatus: purge ok not-installed\r\nVersion: 2\r\n")
    assert sbom.parse_dpkg_status(text) == [Package("a", "1", "")]
    assert sbom.parse_dpkg_status("") == []


def test_os_release() -> None:
    assert sbom.parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n# c\nVERSION_ID="12"\n') \
        == {"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "VERSION_ID": "12"}


@pytest.mark.parametrize(("maintainer", "supplier"), [
    ("Debian Adduser Developers <adduser@packages.debian.org>",
     "Person: Debian Adduser Developers (adduser@packages.debian.org)"),
    ("Jane Doe", "Person: Jane Doe"),
    ("<only@example.invalid>", "Person: only@example.invalid"),
    (None, "NOASSERTION"),
    ("  ", "NOASSERTION"),
])
def test_supplier(maintainer: str | None, supplier: str) -> None:
    assert sbom.supplier(maintainer) == supplier


def test_purl_encodes_epoch_plus_and_qualifiers() -> None:
    assert sbom.purl(Package("openssh-server", "1:9.2p1-2+deb12u3", "amd64"), OS_RELEASE) == \
        "pkg:deb/debian/openssh-server@1%3A9.2p1-2%2Bdeb12u3?arch=amd64&distro=debian-12"
    assert sbom.purl(Package("libstdc++6", "12.2.0-14", "amd64"), {"ID": "debian"}) == \
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64"


def test_spdx_document_is_valid_spdx_2_3(packages: list[Package]) -> None:
    inv = Inventory(packages, OS_RELEASE)
    doc = sbom.spdx_document(inv, template="my-template", run_id=42, created="2026-12-03T06:00:00Z")
    validate(doc)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT"
    assert doc["creationInfo"] == {"created": "2026-12-03T06:00:00Z", "creators": [f"Tool: vmforge-{__version__}"]}
    assert re.fullmatch(r"https://vmforge\.invalid/spdx/my-template/42/[0-9a-f-]{36}", doc["documentNamespace"])
    image, *pkgs = doc["packages"]
    assert [(p["name"], p["versionInfo"]) for p in pkgs] == [(p.name, p.version) for p in packages]
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(set(ids)) == len(ids)  # libc6 twice (amd64, i386), libstdc++6's "+" made valid
    for p in pkgs:
        assert p["downloadLocation"] == "NOASSERTION" and p["filesAnalyzed"] is False
        assert p["licenseConcluded"] == p["licenseDeclared"] == "NOASSERTION"
        assert p["externalRefs"][0]["referenceType"] == "purl"
    by_name = {(p["name"], p["externalRefs"][0]["referenceLocator"]): p for p in pkgs}
    assert by_name[("local-tool", "pkg:deb/debian/local-tool@0.1?arch=amd64&distro=debian-12")]["supplier"] \
        == "NOASSERTION"
    rels = doc["relationships"]
    assert rels[0] == {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                       "relatedSpdxElement": image["SPDXID"]}
    assert [(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in rels[1:]] == \
        [(image["SPDXID"], "CONTAINS", p["SPDXID"]) for p in pkgs]
    assert "Debian GNU/Linux 12" in image["comment"]
    # Two documents of the same run are still distinct documents.
    assert sbom.spdx_document(inv, template="my-template", run_id=42)["documentNamespace"] != doc["documentNamespace"]


def test_schema_rejects_what_spdx_forbids(packages: list[Package]) -> None:
    """The vendored schema is the real one: a package SPDXID with "+" or a missing documentNamespace fail."""
    import jsonschema

    doc = sbom.spdx_document(Inventory(packages, OS_RELEASE), template="t", run_id=1)
    bad = json.loads(json.dumps(doc))
    bad["packages"][1]["SPDXID"] = "SPDXRef-libstdc++6"
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
    del doc["documentNamespace"]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_rpm_note_goes_into_the_comment(packages: list[Package]) -> None:
    inv = Inventory(packages, OS_RELEASE, [sbom.RPM_NOT_READ.format(path="/var/lib/rpm")])
    doc = sbom.spdx_document(inv, template="t", run_id=1)
    validate(doc)
    assert "Rpm database found at /var/lib/rpm but not read" in doc["comment"]


def test_diff(packages: list[Package]) -> None:
    after = [p for p in packages if p.name != "local-tool"]
    after = [Package(p.name, "1:9.3p1-1", p.arch) if p.name == "openssh-server" else p for p in after]
    after.append(Package("nginx", "1.22.1-9", "amd64"))
    after = [p for p in after if (p.name, p.arch) != ("libc6", "i386")]
    lines = sbom.diff(packages, after)
    assert lines == ["- libc6:i386 2.36-9+deb12u4", "- local-tool 0.1", "+ nginx 1.22.1-9",
                     "~ openssh-server 1:9.2p1-2+deb12u3 → 1:9.3p1-1"]
    assert sbom.summary(lines, len(packages), len(after)) == \
        "packages: 1 added, 2 removed, 1 changed (5 installed, 6 in the source)"
    assert sbom.diff(packages, list(packages)) == []
    assert sbom.summary([], 6, 6) == "packages: 0 added, 0 removed, 0 changed (6 installed, 6 in the source)"


def test_stored_document_is_served_only_for_its_run(tmp_path: Path, packages: list[Package]) -> None:
    doc = sbom.spdx_document(Inventory(packages, OS_RELEASE), template="Tpl", run_id=7)
    path = sbom.sbom_path(tmp_path)
    sbom.write(path, doc)
    assert sbom.load(path, "tpl", 7) == doc  # template names are case-insensitive, as ARM's
    assert sbom.load(path, "tpl", 8) is None and sbom.load(path, "other", 7) is None
    assert sbom.load(tmp_path / "missing.json", "tpl", 7) is None
    path.write_text("{not json")
    assert sbom.load(path, "tpl", 7) is None


def test_why_none_reads_the_log(tmp_path: Path) -> None:
    log = tmp_path / "customization.log"
    log.write_text("[2026/12/03 06:00:00] [capture] built image\n"
                   "[2026/12/03 06:00:01] [sbom] no SBOM: the source is a Windows image (only Linux ...)\n")
    assert sbom.why_none(str(log)) == "no SBOM: the source is a Windows image (only Linux ...)"
    assert sbom.why_none(None) is None and sbom.why_none(str(tmp_path / "none")) is None


def _ext4_disk(tmp_path: Path, files: dict[str, str]) -> Path:
    """A raw disk: an MBR with one Linux partition at 1 MiB holding an ext4 file system made from ``files``."""
    require_tools("mkfs.ext4", "sfdisk", "debugfs", "qemu-img")
    root = tmp_path / "root"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    disk = tmp_path / "disk.raw"
    with disk.open("wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input="start=2048, type=83\n", text=True, check=True,
                   capture_output=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", str(root), str(disk), "60M"], check=True,
                   capture_output=True)
    return disk


def test_read_image_offline(tmp_path: Path) -> None:
    status = (DATA / "dpkg-status").read_text()
    disk = _ext4_disk(tmp_path, {"var/lib/dpkg/status": status,
                                 "usr/lib/os-release": 'ID=debian\nVERSION_ID="12"\n',
                                 "var/lib/rpm/rpmdb.sqlite": "not a real rpm database"})
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(disk), str(qcow)], check=True)
    inv = sbom.read_image(qcow, "qcow2", tmp_path)
    assert inv.packages == sbom.parse_dpkg_status(status)
    assert inv.os_release == {"ID": "debian", "VERSION_ID": "12"}
    assert inv.notes == [sbom.RPM_NOT_READ.format(path="/var/lib/rpm")]
    assert not list(tmp_path.glob("sbom-*.raw"))  # the raw copy is gone
    # The source cache answers the second time without reading the disk again.
    first = sbom.source_inventory(qcow, "qcow2", tmp_path)
    assert sbom.source_inventory(qcow, "qcow2", tmp_path) is first


def test_unreadable_disks_are_sbom_errors(tmp_path: Path) -> None:
    disk = _ext4_disk(tmp_path, {"etc/hostname": "no-dpkg\n"})
    with pytest.raises(sbom.SbomError, match="/var/lib/dpkg/status not found"):
        sbom.read_image(disk, "raw", tmp_path)
    junk = tmp_path / "junk.raw"
    junk.write_bytes(b"\0" * (1 << 20))
    with pytest.raises(sbom.SbomError, match="no ext2/3/4 file system"):
        sbom.read_image(junk, "raw", tmp_path)


def _ctx(tmp_path: Path, built: Path, source: Path, os_type: str = "Linux"):  # noqa: ANN202
    from types import SimpleNamespace

    from vmforge.events import RunEvents
    from vmforge.kinds.base import Context

    work = tmp_path / "run"
    work.mkdir(exist_ok=True)
    ctx = Context(run_id=5, work_dir=work, data_dir=tmp_path, events=RunEvents(work / "customization.log"),
                  template={}, template_name="tpl", template_location="westus", cancel_requested=lambda: False,
                  fetch=lambda url, sha: Path(url), artifacts=None, os_type=os_type)
    ctx.state.update(image_path=built, resolved=SimpleNamespace(path=source))
    return ctx


def _log(ctx) -> list[str]:  # noqa: ANN001
    ctx.events.close()
    return [line.split("] ", 2)[-1] for line in ctx.events.log_path.read_text().splitlines()]


def test_step_stores_the_sbom_and_logs_the_diff(tmp_path: Path) -> None:
    status = (DATA / "dpkg-status").read_text()
    probe = ("Package: probe\nStatus: install ok installed\nMaintainer: T <t@example.invalid>\nArchitecture: all\n"
             "Version: 1.2.3\nDescription: probe\n")
    source = _ext4_disk(tmp_path / "s", {"var/lib/dpkg/status": status, "usr/lib/os-release": "ID=debian\n"})
    built = _ext4_disk(tmp_path / "b", {"var/lib/dpkg/status": status + "\n" + probe,
                                         "usr/lib/os-release": "ID=debian\n"})
    ctx = _ctx(tmp_path, built, source)
    from vmforge.sbom import SbomStep

    step = SbomStep("sbom")
    # The step reads qcow2 disks (Capture's output, the source store's files).
    for p in (source, built):
        subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(p), str(p) + ".q"], check=True)
    ctx.state.update(image_path=Path(str(built) + ".q"))
    ctx.state["resolved"].path = Path(str(source) + ".q")
    step.run(ctx)
    doc = sbom.load(sbom.sbom_path(ctx.work_dir), "tpl", 5)
    assert doc is not None
    validate(doc)
    assert ("probe", "1.2.3") in {(p["name"], p.get("versionInfo")) for p in doc["packages"]}
    lines = _log(ctx)
    assert [x for x in lines if x[:2] in ("+ ", "- ", "~ ")] == ["+ probe 1.2.3"]
    assert "packages: 1 added, 0 removed, 0 changed (7 installed, 6 in the source)" in lines
    assert not list(ctx.work_dir.glob("*.raw"))


def test_step_never_fails_the_build_for_an_unreadable_disk(tmp_path: Path) -> None:
    from vmforge.sbom import SbomStep

    junk = tmp_path / "junk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(junk), "8M"], check=True)
    ctx = _ctx(tmp_path, junk, junk)
    sbom.write(sbom.sbom_path(ctx.work_dir), {"documentNamespace": sbom.namespace_prefix("tpl", 5) + "old"})
    SbomStep("sbom").run(ctx)  # no exception
    assert not sbom.sbom_path(ctx.work_dir).exists()  # nothing stale is left to be served
    why = [x for x in _log(ctx) if "no SBOM" in x]
    assert len(why) == 1 and why[0].startswith("warning: no SBOM for this run: the built disk's packages could "
                                               "not be read: ") and "no ext2/3/4 file system" in why[0]
    assert sbom.why_none(str(ctx.events.log_path)) == why[0]


def test_step_says_windows_has_no_sbom(tmp_path: Path) -> None:
    from vmforge.sbom import SbomStep

    ctx = _ctx(tmp_path, tmp_path / "never-read.qcow2", tmp_path / "never-read.qcow2", os_type="Windows")
    SbomStep("sbom").run(ctx)
    assert not sbom.sbom_path(ctx.work_dir).exists()
    assert "no SBOM: the source is a Windows image (only Linux package databases are read)" in _log(ctx)


def test_step_keeps_the_sbom_when_only_the_source_is_unreadable(tmp_path: Path) -> None:
    from vmforge.sbom import SbomStep

    built = _ext4_disk(tmp_path / "b", {"var/lib/dpkg/status": (DATA / "dpkg-status").read_text()})
    junk = tmp_path / "junk.raw"
    junk.write_bytes(b"\0" * (1 << 20))
    ctx = _ctx(tmp_path, built, junk)
    # Capture hands a qcow2 over; the source store's files are qcow2 too.
    subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(built), str(built) + ".q"], check=True)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(junk), str(junk) + ".q"], check=True)
    ctx.state.update(image_path=Path(str(built) + ".q"))
    ctx.state["resolved"].path = Path(str(junk) + ".q")
    SbomStep("sbom").run(ctx)
    assert sbom.load(sbom.sbom_path(ctx.work_dir), "tpl", 5) is not None
    lines = _log(ctx)
    assert any(x.startswith("warning: no package diff: the source image's packages could not be read") for x in lines)
    assert not [x for x in lines if x[:2] in ("+ ", "- ", "~ ")]
