"""SourceImage triggers fire a run when the source's 'latest' resolves to a new version."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port, imagebuilder_client
from vmforge.runner.triggers import watches_latest

GAL = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/src/providers/Microsoft.Compute/galleries/g/images/d"
REFUSED = "https://127.0.0.1/setup.sh"


def test_only_latest_sources_are_watched() -> None:
    assert watches_latest({"type": "PlatformImage", "version": "latest"})
    assert watches_latest({"type": "SharedImageVersion", "imageVersionId": GAL + "/versions/latest"})
    assert not watches_latest({"type": "SharedImageVersion", "imageVersionId": GAL + "/versions/1.0.0"})
    assert not watches_latest({"type": "ManagedImage", "imageId": "/x"})


@pytest.fixture
def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, Path]]:
    imports = tmp_path / "imports"
    imports.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(imports / "disk.qcow2"), "64M"], check=True)
    monkeypatch.setenv("VMFORGE_TRIGGER_INTERVAL", "0.5")
    s = Server(tmp_path / "data", free_port(), ["--import-root", str(imports)])
    s.start()
    yield s, imports
    s.stop()


def wait_for(fn, timeout: float = 30):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.needs_tools("qemu-img")
def test_new_source_version_starts_a_run(srv: tuple[Server, Path]) -> None:
    from azure.mgmt.compute import ComputeManagementClient

    s, imports = srv
    for group in ("src", "rg"):  # the source image's group and the template's
        s.ensure_group(SUBSCRIPTION, group)
    cc = ComputeManagementClient(StaticToken(s.token), SUBSCRIPTION, base_url=s.url, connection_verify=s.cert,
                                 polling_interval=0.1, retry_total=0)
    cc.images.begin_create_or_update("src", "base", {"location": "westus", "properties": {"storageProfile": {
        "osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": (imports / "disk.qcow2").as_uri()}}}}).result()
    cc.galleries.begin_create_or_update("src", "g", {"location": "westus"}).result()
    cc.gallery_images.begin_create_or_update("src", "g", "d", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}).result()
    image_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/src/providers/Microsoft.Compute/images/base"

    def version(v: str) -> None:
        cc.gallery_image_versions.begin_create_or_update("src", "g", "d", v, {"location": "westus", "properties": {
            "storageProfile": {"source": {"id": image_id}}}}).result()

    version("1.0.0")
    ib = imagebuilder_client(s)
    ib._config.polling_interval = 0.2
    ops = ib.virtual_machine_image_templates
    # The source is a blank disk, so a build would only boot a VM that never reaches SSH. The template's one
    # customizer downloads from loopback, which the outbound policy refuses; downloads come before the first
    # boot, so every run the trigger starts ends Failed in seconds, at that step, without a VM.
    ops.begin_create_or_update("rg", "watched", {"location": "westus", "identity": {"type": "None"}, "properties": {
        "source": {"type": "SharedImageVersion", "imageVersionId": GAL + "/versions/latest"},
        "customize": [{"type": "Shell", "name": "setup", "scriptUri": REFUSED}],
        "distribute": [{"type": "VHD", "runOutputName": "vhd"}]}}).result()
    ib.triggers.begin_create_or_update("rg", "watched", "source", {"properties": {"kind": "SourceImage"}}).result()
    status = wait_for(lambda: (st := ib.triggers.get("rg", "watched", "source").properties.status).message
                      and "1.0.0" in st.message and st)
    assert (status.code, status.message) == ("Healthy",
                                             f"Watching the source; its latest version is {GAL}/versions/1.0.0.")
    time.sleep(1.5)  # a few more checks: the baseline alone starts nothing
    assert ops.get("rg", "watched").last_run_status is None

    version("1.0.1")
    status = wait_for(lambda: (st := ib.triggers.get("rg", "watched", "source").properties.status).message
                      and "1.0.1" in st.message and st)
    started = re.fullmatch(re.escape(f"The source has a new version {GAL}/versions/1.0.1: a run was started ")
                           + r"\(operation ([0-9A-F-]{36})\)\.", status.message)
    assert status.code == "Healthy" and started, status.message
    final = wait_for(lambda: (r := ops.get("rg", "watched").last_run_status) and r.run_state not in
                     ("Running", "Canceling") and r, timeout=60)
    assert (final.run_state, final.run_sub_state) == ("Failed", None)
    assert final.message.startswith(f'Downloads "downloads" failed: Shell "setup" (properties.customize[0].scriptUri): '
                                    f"Refusing to fetch '{REFUSED}': it resolves to 127.0.0.1"), final.message
    with s.http() as h:
        op = h.get(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.VirtualMachineImages/locations/westus/"
                   f"operations/{started.group(1)}", params={"api-version": "2025-10-01"}).json()
        assert (op["status"], op["error"]["code"]) == ("Failed", "FetchRefused"), op
        time.sleep(1.5)  # no second run for the same version
        tpl = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/"
               "imageTemplates/watched")
        runs = h.get(tpl + "/runs", params={"api-version": "2025-10-01"}).json()["value"]
        assert [r["runState"] for r in runs] == ["Failed"]
        log = h.get(tpl + f"/runs/{runs[0]['id']}/log", params={"api-version": "2025-10-01"}).text
    # The run built from the new version ('latest' resolved to 1.0.1) and stopped before any VM.
    assert f"[source] source SharedImageVersion {GAL}/versions/latest → " in log
    assert f"(Linux, version {GAL}/versions/1.0.1)" in log
    assert 'ending Downloads "downloads" - failure' in log and "Starting provisioner Boot" not in log
