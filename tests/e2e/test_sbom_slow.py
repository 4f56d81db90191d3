"""The SBOM of a real build: a customizer installs a tiny .deb (made here with dpkg-deb, served from loopback);
the run's SPDX 2.3 document, fetched from ``{template}/runs/{runId}/sbom``, names it with its version and
validates against the vendored SPDX 2.3 schema, and the run's log shows it as the one package added to the
source's. Slow: one build."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, require_tools
from tests.e2e.test_build import (add_source, files, imports, log_of, run_template, start_server,  # noqa: F401
                                  template, vhd)

pytestmark = pytest.mark.slow

V = "2025-10-01"
SCHEMA = Path(__file__).parent.parent / "data" / "spdx-2.3-schema.json"
PROBE, PROBE_VERSION = "vmforge-sbom-probe", "1.2.3"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:  # noqa: F811
    s = start_server(tmp_path_factory.mktemp("sbom"), imports)
    add_source(s, imports)
    yield s
    s.stop()


def build_deb(work: Path) -> Path:
    """A one-file Debian package, ``vmforge-sbom-probe`` 1.2.3 (Architecture: all, no dependencies)."""
    require_tools("dpkg-deb")
    root = work / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc" / PROBE).mkdir(parents=True)
    (root / "usr/share/doc" / PROBE / "README").write_text("installed by vmforge's SBOM test\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {PROBE}\nVersion: {PROBE_VERSION}\nArchitecture: all\n"
        "Maintainer: vmforge tests <tests@vmforge.invalid>\nDescription: SBOM probe\n a package to find in an SBOM\n")
    out = work / f"{PROBE}_{PROBE_VERSION}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True,
                   capture_output=True)
    return out


def test_sbom_of_a_build_that_installs_a_package(srv: Server, files: tuple[str, Path],  # noqa: F811
                                                 tmp_path: Path) -> None:
    import jsonschema

    base, www = files
    deb = build_deb(tmp_path)
    (www / deb.name).write_bytes(deb.read_bytes())
    body = template([
        {"type": "File", "name": "probe-deb", "sourceUri": f"{base}/{deb.name}", "destination": "/tmp/probe.deb",
         "sha256Checksum": hashlib.sha256(deb.read_bytes()).hexdigest()},
        {"type": "Shell", "name": "install-probe", "inline": ["dpkg -i /tmp/probe.deb", "rm -f /tmp/probe.deb"]},
    ], [vhd()])
    client, group, name = run_template(srv, body)
    t = client.virtual_machine_image_templates.get(group, name)
    log = log_of(srv, group, name)
    assert t.last_run_status.run_state == "Succeeded", t.last_run_status.message + "\n" + log[-4000:]

    with srv.http() as h:
        runs = h.get(f"{t.id}/runs", params={"api-version": V}).json()["value"]
        assert len(runs) == 1
        r = h.get(f"{t.id}/runs/{runs[0]['id']}/sbom", params={"api-version": V})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert h.get(f"{t.id}/runs/latest/sbom", params={"api-version": V}).json() == doc

    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["documentNamespace"].startswith(f"https://vmforge.invalid/spdx/{name}/{runs[0]['id']}/")
    probe = [p for p in doc["packages"] if p["name"] == PROBE]
    assert len(probe) == 1 and probe[0]["versionInfo"] == PROBE_VERSION
    assert probe[0]["supplier"] == "Person: vmforge tests (tests@vmforge.invalid)"
    assert probe[0]["externalRefs"][0]["referenceLocator"] == \
        f"pkg:deb/debian/{PROBE}@{PROBE_VERSION}?arch=all&distro=debian-12"
    names = {p["name"] for p in doc["packages"]}
    assert {"openssh-server", "systemd", "dpkg"} <= names  # the image's own packages are there too
    contained = {rel["relatedSpdxElement"] for rel in doc["relationships"] if rel["relationshipType"] == "CONTAINS"}
    assert probe[0]["SPDXID"] in contained and len(contained) == len(doc["packages"]) - 1

    changes = re.findall(r"\[sbom\] ([+~-] .*)$", log, re.M)
    assert changes == [f"+ {PROBE} {PROBE_VERSION}"], log[-4000:]
    assert re.search(r"\[sbom\] packages: 1 added, 0 removed, 0 changed \((\d+) installed, (\d+) in the source\)",
                     log)
