"""SourceImage triggers fire a run when the source's 'latest' resolves to a new version."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port, imagebuilder_client
from vmforge.runner.triggers import watches_latest

GAL = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/src/providers/Microsoft.Compute/galleries/g/images/d"


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


def test_new_source_version_starts_a_run(srv: tuple[Server, Path]) -> None:
    from azure.mgmt.compute import ComputeManagementClient

    s, imports = srv
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
    ops.begin_create_or_update("rg", "watched", {"location": "westus", "identity": {"type": "None"}, "properties": {
        "source": {"type": "SharedImageVersion", "imageVersionId": GAL + "/versions/latest"},
        "distribute": [{"type": "VHD", "runOutputName": "vhd"}]}}).result()
    ib.triggers.begin_create_or_update("rg", "watched", "source", {"properties": {"kind": "SourceImage"}}).result()
    status = wait_for(lambda: (st := ib.triggers.get("rg", "watched", "source").properties.status).message
                      and "1.0.0" in st.message and st)
    assert status.code == "Healthy"
    time.sleep(1.5)  # a few more checks: the baseline alone starts nothing
    assert ops.get("rg", "watched").last_run_status is None

    version("1.0.1")
    run = wait_for(lambda: ops.get("rg", "watched").last_run_status)
    assert run.run_state in ("Running", "Canceling", "Failed")
    assert "1.0.1" in ib.triggers.get("rg", "watched", "source").properties.status.message
    if run.run_state == "Running":
        ops.begin_cancel("rg", "watched").result()
    final = wait_for(lambda: (r := ops.get("rg", "watched").last_run_status).run_state not in ("Running", "Canceling")
                     and r, timeout=60)
    assert final.run_state in ("Canceled", "Failed")
    time.sleep(1.5)  # no second run for the same version
    with s.http() as h:
        runs = h.get(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/"
                     "imageTemplates/watched/runs", params={"api-version": "2025-10-01"}).json()["value"]
    assert len(runs) == 1
