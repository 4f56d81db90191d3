"""Real builds, end to end: a vmforge server, the test image as a managed image, templates run through the
Azure SDK, build VMs booted under QEMU (TCG here). Slow: every test boots at least one VM."""

from __future__ import annotations

import hashlib
import json
import http.server
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, StaticToken, free_port, imagebuilder_client

pytestmark = pytest.mark.slow

V = "2025-10-01"
SRC_IMAGE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/sources/providers/Microsoft.Compute/images/debian12"


def qemu_pids(needle: str, programs: tuple[bytes, ...] = (b"qemu-system",)) -> list[int]:
    """Processes of ``programs`` whose command line contains ``needle``."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if any(p in cmd for p in programs) and needle.encode() in cmd:
                out.append(int(pid))
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local HTTP server for scriptUri / sourceUri (the server is allowed to fetch from loopback)."""
    root = tmp_path_factory.mktemp("www")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory, test_image: Path) -> Path:
    d = tmp_path_factory.mktemp("imports")
    try:
        os.link(test_image, d / "debian12.qcow2")
    except OSError:
        subprocess.run(["cp", "--sparse=always", str(test_image), str(d / "debian12.qcow2")], check=True)
    return d


def start_server(tmp: Path, imports: Path, *extra: str) -> Server:
    srv = Server(tmp / "data", free_port(), ["--import-root", str(imports), "--allow-fetch-from", "127.0.0.0/8",
                                             *extra])
    srv.start()
    for group in ("sources", "out"):  # the groups of the source images and of the distribution targets
        srv.ensure_group(SUBSCRIPTION, group)
    return srv


def compute(srv: Server):  # noqa: ANN201
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(StaticToken(srv.token), SUBSCRIPTION, base_url=srv.url,
                                   connection_verify=srv.cert, polling_interval=0.2, retry_total=0)


def add_source(srv: Server, imports: Path) -> None:
    compute(srv).images.begin_create_or_update("sources", "debian12", {
        "location": "westus", "properties": {"hyperVGeneration": "V1", "storageProfile": {"osDisk": {
            "osType": "Linux", "osState": "Generalized", "blobUri": (imports / "debian12.qcow2").as_uri()}}}}).result()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("build"), imports)
    add_source(s, imports)
    yield s
    s.stop()


def template(customize: list, distribute: list, **props) -> dict:  # noqa: ANN003
    return {"location": "westus", "identity": {"type": "None"}, "properties": {
        "source": {"type": "ManagedImage", "imageId": SRC_IMAGE}, "customize": customize,
        "distribute": distribute, **props}}


def vhd(name: str = "vhd") -> dict:
    return {"type": "VHD", "runOutputName": name}


def run_template(srv: Server, body: dict, name: str | None = None, wait: bool = True):  # noqa: ANN201
    client = imagebuilder_client(srv)
    client._config.polling_interval = 1
    group, name = f"rg-{uuid.uuid4().hex[:6]}", name or f"t-{uuid.uuid4().hex[:6]}"
    srv.ensure_group(SUBSCRIPTION, group)
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, name, body).result()
    poller = ops.begin_run(group, name)
    if wait:
        try:
            poller.result()
        except Exception:  # noqa: BLE001 — the status is checked by the caller
            pass
    return client, group, name


def log_of(srv: Server, group: str, name: str) -> str:
    with srv.http() as h:
        r = h.get(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.VirtualMachineImages/"
                  f"imageTemplates/{name}/runs/latest/log", params={"api-version": V})
        assert r.status_code == 200
        return r.text


def test_full_build_with_every_distributor(srv: Server, files: tuple[str, Path], tmp_path: Path) -> None:
    base, www = files
    (www / "setup.sh").write_text("#!/bin/sh\nset -e\necho from-script > /etc/vmforge-script\n")
    payload = os.urandom(2 * 1024 * 1024)
    (www / "payload.bin").write_bytes(payload)
    script_sha = hashlib.sha256((www / "setup.sh").read_bytes()).hexdigest()
    cc = compute(srv)
    cc.galleries.begin_create_or_update("out", "gal", {"location": "westus"}).result()
    cc.gallery_images.begin_create_or_update("out", "gal", "debian", {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
        "identifier": {"publisher": "vmforge", "offer": "debian", "sku": "12"}}}).result()
    gallery_image = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/out/providers/Microsoft.Compute/galleries/gal/images/debian"
    managed = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/out/providers/Microsoft.Compute/images/built1"
    body = template(
        customize=[
            {"type": "Shell", "name": "inline", "inline": ["echo hello > /etc/vmforge-hello", "uname -r"]},
            {"type": "Shell", "name": "script", "scriptUri": f"{base}/setup.sh", "sha256Checksum": script_sha},
            {"type": "File", "name": "payload", "sourceUri": f"{base}/payload.bin",
             "destination": "/opt/vmforge/payload.bin", "sha256Checksum": hashlib.sha256(payload).hexdigest()},
        ],
        distribute=[
            {"type": "ManagedImage", "runOutputName": "managed", "imageId": managed, "location": "westus",
             "artifactTags": {"built-by": "vmforge"}},
            {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": gallery_image,
             "targetRegions": [{"name": "westus", "replicaCount": 2}, {"name": "eastus"}]},
            vhd(),
        ],
        validate={"inVMValidations": [{"type": "Shell", "name": "check", "inline": [
            "test \"$(cat /etc/vmforge-hello)\" = hello", "test -f /etc/vmforge-script",
            "test $(stat -c %s /opt/vmforge/payload.bin) = 2097152",
            # osDiskSizeGB: the disk was grown and cloud-init grew the root file system into it
            "test $(df --output=size -BM / | tail -1 | tr -dc 0-9) -gt 2200"]}]},
        optimize={"vmBoot": {"state": "Enabled"}},
        vmProfile={"osDiskSizeGB": 3},
    )
    client, group, name = run_template(srv, body)
    tpl = client.virtual_machine_image_templates.get(group, name)
    text = log_of(srv, group, name)
    if tpl.last_run_status.run_state != "Succeeded":
        pytest.fail(f"{tpl.last_run_status.message}\n{text[-4000:]}")
    outputs = {o.name: o for o in client.virtual_machine_image_templates.list_run_outputs(group, name)}
    assert set(outputs) == {"managed", "sig", "vhd"}
    assert outputs["managed"].artifact_id == managed
    assert outputs["sig"].artifact_id.startswith(gallery_image + "/versions/")
    # The artifactTags, and beside them only the lineage tags (vmforge.artifacts.lineage) naming this run.
    tags = cc.images.get("out", "built1").tags
    assert {k: v for k, v in tags.items() if not k.startswith("vmforge.")} == {"built-by": "vmforge"}
    assert tags["vmforge.template"].lower() == tpl.id.lower()
    assert tags["vmforge.source"] == SRC_IMAGE
    version = cc.gallery_image_versions.get("out", "gal", "debian", outputs["sig"].artifact_id.rsplit("/", 1)[1])
    assert sorted(r.name for r in version.publishing_profile.target_regions) == ["eastus", "westus"]
    # Steps in order, in AIB's log shape, optimization reported.
    order = [line.split("Starting provisioner ")[1].split(" (")[0] for line in text.splitlines()
             if "Starting provisioner" in line]
    assert order[:7] == ['Source "source"', 'Downloads "downloads"', 'Disk "build disk"', 'Boot "build VM"',
                         'Shell "inline"', 'Shell "script"', 'File "payload"']
    assert "properties.customize[1].scriptUri" in text and "sha256 verified" in text  # fetched before the boot
    assert 'Generalize "deprovision"' in order and 'Shell "check"' in order
    assert "vmBoot optimization" in text
    # The VHD is a valid fixed VHD; a fresh VM booted from it holds the customizations and is generalized.
    vhd_path = Path(outputs["vhd"].artifact_uri.removeprefix("file://"))
    from vmforge.disk import qemuimg

    assert qemuimg.check_fixed_vhd(vhd_path) > 0
    assert (vhd_path.stat().st_size - 512) % (1024 * 1024) == 0
    check_booted_output(vhd_path, tmp_path)
    assert qemu_pids(str(srv.data_dir)) == []


def check_booted_output(vhd_path: Path, tmp: Path) -> None:
    import asyncio

    from vmforge.disk import qemuimg
    from vmforge.machine.qemu import BuildVM, VMSpec
    from vmforge.machine.seed import SeedConfig, make_seed
    from vmforge.machine.ssh import SSHSession, generate_keypair

    overlay = tmp / "check.qcow2"
    qemuimg.create_overlay(vhd_path, overlay, "vpc")
    keys = generate_keypair()
    seed = make_seed(SeedConfig(authorized_keys=[keys.public]), tmp / "seed.iso")
    with BuildVM(VMSpec(disk=overlay, workdir=tmp / "vm", seed=seed)) as vm:
        async def check() -> list[str]:
            ssh = SSHSession(vm.ssh_port, keys.private)
            await ssh.wait_ready(300)
            lines: list[str] = []
            rc = await ssh.run("cat /etc/vmforge-hello /etc/vmforge-script; stat -c %s /opt/vmforge/payload.bin; "
                               "test -s /etc/machine-id && echo machine-id-regenerated; ls /var/lib/cloud/instances",
                               on_line=lambda _s, line: lines.append(line))
            await ssh.close()
            assert rc == 0, lines
            return lines

        out = asyncio.run(check())
    assert out[:3] == ["hello", "from-script", "2097152"]
    assert "machine-id-regenerated" in out  # a fresh instance: cloud-init and systemd ran anew


def test_failing_customizer_names_the_step_and_cleans_up(srv: Server) -> None:
    body = template([{"type": "Shell", "name": "breaks", "inline": ["echo about to fail", "false", "echo never"]}],
                    [vhd()])
    client, group, name = run_template(srv, body)
    status = client.virtual_machine_image_templates.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert 'Shell "breaks"' in status.message and "customization.log" in status.message
    text = log_of(srv, group, name)
    assert "about to fail" in text and "never" not in text.split("about to fail")[1]
    assert list(client.virtual_machine_image_templates.list_run_outputs(group, name)) == []
    run_dir = Path(status.message.split("See the log at ")[1].split(" ")[0].rstrip(".")).parent
    assert sorted(p.name for p in run_dir.iterdir()) == ["customization.log"]
    assert qemu_pids(str(run_dir)) == []


def test_abort_keeps_a_disk_that_opens(srv: Server) -> None:
    body = template([{"type": "Shell", "name": "breaks", "inline": ["echo kept > /etc/vmforge-kept", "false"]}],
                    [vhd()], errorHandling={"onCustomizerError": "abort", "onValidationError": "cleanup"})
    client, group, name = run_template(srv, body)
    status = client.virtual_machine_image_templates.get(group, name).last_run_status
    assert status.run_state == "Failed"
    kept = Path(status.message.split("kept for inspection at ")[1].split(" (")[0])
    assert kept.name == "kept-build.qcow2" and kept.exists()
    assert sorted(p.name for p in kept.parent.iterdir()) == ["customization.log", "kept-build.qcow2"]
    from vmforge.disk import qemuimg

    assert "backing-filename" not in qemuimg.info(kept, "qcow2")  # standalone: opens without the run's overlays
    assert qemu_pids(str(kept.parent)) == []


def test_one_failing_distributor_is_partial_success(srv: Server) -> None:
    bad = {"type": "ManagedImage", "runOutputName": "bad", "location": "westus",
           "imageId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/out/providers/Microsoft.Compute/images/bad name"}
    body = template([{"type": "Shell", "name": "ok", "inline": ["true"]}], [bad, vhd("good")])
    client, group, name = run_template(srv, body)
    ops = client.virtual_machine_image_templates
    assert ops.get(group, name).last_run_status.run_state == "PartiallySucceeded"
    outs = {o.name: o.provisioning_state for o in ops.list_run_outputs(group, name)}
    assert outs == {"bad": "Failed", "good": "Succeeded"}


def test_cancel_mid_customize(srv: Server) -> None:
    body = template([{"type": "Shell", "name": "slow", "inline": ["echo started-slow", "sleep 600"]}], [vhd()])
    client, group, name = run_template(srv, body, wait=False)
    ops = client.virtual_machine_image_templates
    deadline = time.monotonic() + 300
    while "started-slow" not in log_of(srv, group, name):
        assert time.monotonic() < deadline
        time.sleep(1)
    t0 = time.monotonic()
    ops.begin_cancel(group, name).result()
    while ops.get(group, name).last_run_status.run_state != "Canceled":
        assert time.monotonic() - t0 < 30
        time.sleep(0.5)
    assert time.monotonic() - t0 < 20
    assert qemu_pids(str(srv.data_dir)) == []


def test_timeout(srv: Server) -> None:
    body = template([{"type": "Shell", "name": "forever", "inline": ["sleep 3600"]}], [vhd()],
                    buildTimeoutInMinutes=1)
    client, group, name = run_template(srv, body)
    status = client.virtual_machine_image_templates.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert "timeout" in status.message
    assert qemu_pids(str(srv.data_dir)) == []


def test_server_killed_mid_run_is_recovered(tmp_path: Path, imports: Path) -> None:
    s = start_server(tmp_path, imports)
    try:
        add_source(s, imports)
        body = template([{"type": "Shell", "name": "slow", "inline": ["echo started-slow", "sleep 600"]}], [vhd()])
        client, group, name = run_template(s, body, wait=False)
        deadline = time.monotonic() + 300
        while "started-slow" not in log_of(s, group, name):
            assert time.monotonic() < deadline
            time.sleep(1)
        assert qemu_pids(str(s.data_dir))
        s.stop(signal.SIGKILL)
        s.start()
        status = imagebuilder_client(s).virtual_machine_image_templates.get(group, name).last_run_status
        assert status.run_state == "Failed"
        assert "stopped while this run was in progress" in status.message
        assert qemu_pids(str(s.data_dir)) == []
        run_dir = s.data_dir / "runs"
        assert all(sorted(p.name for p in d.iterdir()) == ["customization.log"] for d in run_dir.iterdir())
    finally:
        s.stop()


def test_cli_build_shows_steps_in_order_and_exit_codes(srv: Server, tmp_path: Path) -> None:
    """``vmforge build`` on the test image: a passing template exits 0 with its steps in order, a failing one
    exits 1 and shows the failing step's log lines."""
    from tests.cli.conftest import invoke

    env = {"VMFORGE_HOME": str(srv.data_dir), "VMFORGE_SUBSCRIPTION": SUBSCRIPTION}
    good = tmp_path / "good.json"
    good.write_text(json.dumps(template(
        [{"type": "Shell", "name": "first", "inline": ["echo one"]},
         {"type": "Shell", "name": "second", "inline": ["echo two"]}], [vhd()])))
    r = invoke(["build", good, "-g", "cli", "--create-group", "--name", "cli-good"], env)
    assert r.exit_code == 0, r.stdout + r.stderr
    out = r.stdout
    positions = [out.index(s) for s in ('Boot "build VM"', 'Shell "first"', 'Shell "second"', 'Generalize',
                                        'VHD "vhd"')]
    assert positions == sorted(positions), out
    assert "Succeeded" in out and "\x1b[" not in out  # no TTY: plain lines, no colour codes
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(template([{"type": "Shell", "name": "breaks", "inline": ["echo failing-now", "exit 7"]}],
                                       [vhd()])))
    r = invoke(["build", bad, "-g", "cli", "--name", "cli-bad"], env)
    assert r.exit_code == 1, r.stdout + r.stderr
    assert 'Shell "breaks"' in r.stdout + r.stderr and "failing-now" in r.stdout + r.stderr


def test_continue_distribute_on_failed_validation(srv: Server) -> None:
    body = template([{"type": "Shell", "name": "ok", "inline": ["echo built > /etc/vmforge-built"]}], [vhd()],
                    validate={"continueDistributeOnFailure": True, "inVMValidations": [
                        {"type": "Shell", "name": "strict", "inline": ["test -f /etc/does-not-exist"]}]})
    client, group, name = run_template(srv, body)
    ops = client.virtual_machine_image_templates
    status = ops.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert 'Shell "strict"' in status.message and "distributed anyway" in status.message
    outs = {o.name: o.provisioning_state for o in ops.list_run_outputs(group, name)}
    assert outs == {"vhd": "Succeeded"}


def test_source_validation_only(srv: Server) -> None:
    body = template([], [vhd()], validate={"sourceValidationOnly": True, "inVMValidations": [
        {"type": "Shell", "name": "source-check", "inline": ["test -x /usr/bin/cloud-init", "! test -f /etc/vmforge-hello"]}]})
    client, group, name = run_template(srv, body)
    ops = client.virtual_machine_image_templates
    assert ops.get(group, name).last_run_status.run_state == "Succeeded"
    text = log_of(srv, group, name)
    assert 'Shell "source-check"' in text and "Generalize" not in text and "Capture" not in text
    assert [o.name for o in ops.list_run_outputs(group, name)] == ["vhd"]
