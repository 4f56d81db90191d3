"""A Schedule trigger with a one-minute cron, for real: it fires and the run Succeeds; with onChange the next
fires start nothing while the template is unchanged, and a new version of the gallery source (``latest``)
makes the next fire build again. Two VM boots in all (a tiny script customizer on the test image)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, imagebuilder_client
from tests.e2e.test_build import V, add_source, compute, files, imports, start_server, SRC_IMAGE  # noqa: F401

pytestmark = pytest.mark.slow

GAL = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/sources/providers/Microsoft.Compute/galleries/g/images/d"
TPL = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/nightly"


@pytest.fixture
def srv(tmp_path: Path, imports: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:  # noqa: F811
    monkeypatch.setenv("VMFORGE_TRIGGER_INTERVAL", "1")
    s = start_server(tmp_path, imports)
    add_source(s, imports)
    s.ensure_group(SUBSCRIPTION, "rg")
    yield s
    s.stop()


def wait_for(fn, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_one_minute_schedule_on_change(srv: Server, files: tuple[str, Path]) -> None:  # noqa: F811
    base, www = files
    (www / "hello.sh").write_text("#!/bin/sh\necho scheduled > /etc/vmforge-scheduled\n")
    cc = compute(srv)
    cc.galleries.begin_create_or_update("sources", "g", {"location": "westus"}).result()
    cc.gallery_images.begin_create_or_update("sources", "g", "d", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}).result()

    def version(v: str) -> None:
        cc.gallery_image_versions.begin_create_or_update("sources", "g", "d", v, {"location": "westus", "properties": {
            "storageProfile": {"source": {"id": SRC_IMAGE}}}}).result()

    version("1.0.0")
    ib = imagebuilder_client(srv)
    ib._config.polling_interval = 0.5
    ops = ib.virtual_machine_image_templates
    ops.begin_create_or_update("rg", "nightly", {"location": "westus", "identity": {"type": "None"}, "properties": {
        "source": {"type": "SharedImageVersion", "imageVersionId": GAL + "/versions/latest"},
        "customize": [{"type": "Shell", "name": "hello", "scriptUri": base + "/hello.sh"}],
        "distribute": [{"type": "VHD", "runOutputName": "vhd"}]}}).result()
    t0 = time.monotonic()
    ib.triggers.begin_create_or_update("rg", "nightly", "every-minute", {"properties": {
        "kind": "Schedule", "schedule": "* * * * *", "condition": "onChange"}}).result()

    def status() -> str:
        return ib.triggers.get("rg", "nightly", "every-minute").properties.status.message

    def runs() -> list[dict]:
        with srv.http() as h:
            return h.get(TPL + "/runs", params={"api-version": V}).json()["value"]

    def ended():  # noqa: ANN202
        r = ops.get("rg", "nightly").last_run_status
        return r if r is not None and r.run_state not in ("Running", "Canceling") else None

    # 1. The first fire (within a minute): no successful run yet, so a run starts, and it Succeeds.
    msg = wait_for(lambda: "a run was started" in (m := status()) and m, 75, "the first fire")
    assert "(no successful run yet)" in msg, msg
    first = ended() or wait_for(ended, 600, "the first run's end")
    assert first.run_state == "Succeeded", first.message
    print(f"first run: fired and built in {time.monotonic() - t0:.0f} s")
    (run1,) = runs()
    # 2. The next fire sees the same source version and script: nothing starts.
    msg = wait_for(lambda: "unchanged since" in (m := status()) and m, 75, "a fire after the first run")
    assert f"unchanged since run {run1['id']} " in msg and "no run was started" in msg, msg
    assert len(runs()) == 1
    # 3. The gallery gets a new version: 'latest' moves, and the next fire builds from it.
    version("1.0.1")
    msg = wait_for(lambda: "(changed since" in (m := status()) and m, 75, "a fire after the new version")
    assert re.search(rf"changed since run {run1['id']}: the source version is {re.escape(GAL)}/versions/1\.0\.1 "
                     rf"\(was {re.escape(GAL)}/versions/1\.0\.0\)\): a run was started", msg), msg
    second = wait_for(lambda: len(runs()) == 2 and ended(), 600, "the second run's end")
    assert second.run_state == "Succeeded", second.message
    with srv.http() as h:
        log = h.get(TPL + "/runs/latest/log", params={"api-version": V}).text
    assert f"(Linux, version {GAL}/versions/1.0.1)" in log
    props = ib.triggers.get("rg", "nightly", "every-minute").properties
    assert props["lastFiredTime"] < props["nextRunTime"]
    print(f"both runs: {time.monotonic() - t0:.0f} s")
