"""The engine on a bad night, through the API: every build ends quickly and truthfully, and nothing outlives it.

Most of these use a source that never boots (a disk with a partition table and no boot code) so that they
show what happens *during* a boot without waiting for one; the slow ones build the real test image.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, imagebuilder_client
from tests.e2e.test_build import (V, add_source, compute, files, imports, log_of, qemu_pids, run_template,  # noqa: F401
                                  start_server, template, vhd)
from tests.machine import fakeqemu
from vmforge.machine.accel import Accelerator

NEVER_BOOTS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/sources/providers/Microsoft.Compute/images/never-boots"


def vm_processes(data_dir: Path) -> list[int]:
    """QEMU and pasta processes of a server's data dir."""
    return qemu_pids(str(data_dir), (b"qemu-system", b"pasta"))


def add_never_boots(srv: Server, imports: Path) -> None:  # noqa: F811
    disk = imports / "never-boots.raw"
    if not disk.exists():
        with open(disk, "wb") as f:
            f.truncate(16 * 1024 * 1024)
        subprocess.run(["sfdisk", "-q", str(disk)], input="label: dos\nstart=2048, type=83\n", text=True,
                       check=True, capture_output=True)
    compute(srv).images.begin_create_or_update("sources", "never-boots", {
        "location": "westus", "properties": {"hyperVGeneration": "V1", "storageProfile": {"osDisk": {
            "osType": "Linux", "osState": "Generalized", "blobUri": disk.as_uri()}}}}).result()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:  # noqa: F811
    s = start_server(tmp_path_factory.mktemp("engine"), imports)
    add_never_boots(s, imports)
    yield s
    s.stop()


def never_boots(customize: list | None = None) -> dict:
    body = template(customize or [{"type": "Shell", "name": "noop", "inline": ["true"]}], [vhd()])
    body["properties"]["source"]["imageId"] = NEVER_BOOTS
    return body


def wait_for_log(srv: Server, group: str, name: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_of(srv, group, name):
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.2)


def wait_for_end(client, group: str, name: str, timeout: float):  # noqa: ANN001, ANN201
    ops = client.virtual_machine_image_templates
    deadline = time.monotonic() + timeout
    while True:
        status = ops.get(group, name).last_run_status
        if status.run_state not in ("Running", "Canceling"):
            return status
        assert time.monotonic() < deadline, f"the run did not end within {timeout} s: {status.message}"
        time.sleep(0.2)


def test_a_refused_download_fails_the_run_before_any_vm_starts(srv: Server) -> None:
    t0 = time.monotonic()
    client, group, name = run_template(srv, never_boots([
        {"type": "Shell", "name": "ok", "inline": ["true"]},
        {"type": "Shell", "name": "metadata", "scriptUri": "http://169.254.169.254/metadata/x.sh?sig=SECRET"}]))
    status = client.virtual_machine_image_templates.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert time.monotonic() - t0 < 20
    assert 'Shell "metadata" (properties.customize[1].scriptUri)' in status.message
    assert "http://169.254.169.254/metadata/x.sh" in status.message and "link-local" in status.message
    assert "SECRET" not in status.message
    assert "starting QEMU" not in log_of(srv, group, name)


def test_a_wrong_sha256_fails_the_run_before_any_vm_starts(srv: Server, files: tuple[str, Path]) -> None:  # noqa: F811
    base, www = files
    (www / "payload.bin").write_bytes(b"payload")
    client, group, name = run_template(srv, never_boots([
        {"type": "File", "name": "payload", "sourceUri": f"{base}/payload.bin", "destination": "/opt/p.bin",
         "sha256Checksum": hashlib.sha256(b"something else").hexdigest()}]))
    status = client.virtual_machine_image_templates.get(group, name).last_run_status
    assert status.run_state == "Failed"
    assert 'File "payload" (properties.customize[0].sourceUri)' in status.message
    assert f"sha256 of '{base}/payload.bin' is {hashlib.sha256(b'payload').hexdigest()}" in status.message
    assert "starting QEMU" not in log_of(srv, group, name)


def test_qemu_dying_during_boot_fails_the_run_within_seconds(srv: Server) -> None:
    client, group, name = run_template(srv, never_boots(), wait=False)
    wait_for_log(srv, group, name, "starting QEMU")
    time.sleep(1)
    pids = qemu_pids(str(srv.data_dir))
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    status = wait_for_end(client, group, name, 30)
    assert time.monotonic() - t0 < 10
    assert status.run_state == "Failed"
    assert "stopped while booting" in status.message and "Console tail" in status.message


def test_cancel_during_boot_reaches_the_vm(srv: Server) -> None:
    client, group, name = run_template(srv, never_boots(), wait=False)
    wait_for_log(srv, group, name, "starting QEMU")
    time.sleep(1)
    t0 = time.monotonic()
    client.virtual_machine_image_templates.begin_cancel(group, name).result()
    status = wait_for_end(client, group, name, 30)
    assert status.run_state == "Canceled"
    assert time.monotonic() - t0 < 10
    assert vm_processes(srv.data_dir) == []


@contextmanager
def building_server(tmp_path: Path, imports: Path) -> Iterator[tuple[Server, str, str]]:  # noqa: F811
    """A server of its own whose build VM has just started (on a source that never boots)."""
    s = start_server(tmp_path, imports)
    try:
        add_never_boots(s, imports)
        _client, group, name = run_template(s, never_boots(), wait=False)
        wait_for_log(s, group, name, "starting QEMU")
        time.sleep(1)
        assert vm_processes(s.data_dir)
        yield s, group, name
    finally:
        s.stop()


def test_sigterm_stops_the_builds_and_records_them(tmp_path: Path, imports: Path) -> None:  # noqa: F811
    with building_server(tmp_path, imports) as (s, group, name):
        s.stop(signal.SIGTERM)
        assert vm_processes(s.data_dir) == []  # gone when the server has exited, not at the next start
        s.start()
        status = imagebuilder_client(s).virtual_machine_image_templates.get(group, name).last_run_status
        assert status.run_state == "Failed"
        assert "server stopped while this run was in progress" in status.message
        assert "not re-queued" in status.message  # recorded by the stopping server, not by recovery
        assert sorted(p.name for p in (s.data_dir / "runs").iterdir() for p in p.iterdir()) == ["customization.log"]


def test_sigkilled_server_leaves_no_vm_running(tmp_path: Path, imports: Path) -> None:  # noqa: F811
    with building_server(tmp_path, imports) as (s, _group, _name):
        s.stop(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while vm_processes(s.data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert vm_processes(s.data_dir) == []  # tied to the server by the parent-death signal


@pytest.mark.slow
def test_kvm_that_hangs_a_kernel_falls_back_to_tcg_and_the_build_succeeds(tmp_path: Path, imports: Path,  # noqa: F811
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The host of 2026-12-01, reproduced on any machine: the KVM probe passes, a build VM under KVM makes no
    progress. The run falls back within the trial bound and succeeds; the server remembers TCG."""
    wrapper, calls, device = fakeqemu.make(tmp_path, "hangs")
    monkeypatch.setenv("VMFORGE_QEMU", str(wrapper))
    monkeypatch.setenv("VMFORGE_KVM_DEVICE", str(device))
    monkeypatch.setenv("VMFORGE_KVM_TRIAL_SECONDS", "10")
    monkeypatch.delenv("VMFORGE_ACCEL", raising=False)
    s = start_server(tmp_path, imports)
    try:
        assert "accelerator kvm [on trial]" in s.log_path.read_text()  # the start-up line says so
        add_source(s, imports)
        client, group, name = run_template(s, template([{"type": "Shell", "name": "hello", "inline": [
            "echo hello > /etc/vmforge-hello"]}], [vhd()]))
        status = client.virtual_machine_image_templates.get(group, name).last_run_status
        text = log_of(s, group, name)
        assert status.run_state == "Succeeded", status.message + text[-3000:]
        assert "booting again under TCG" in text
        assert fakeqemu.calls(calls)[:3] == ["kvm probe", "kvm vm", "tcg vm"]
        assert Accelerator(s.data_dir / "accel.json").decide().accel == "tcg"
        # The next run goes straight to TCG: no trial, no second probe.
        before = len(fakeqemu.calls(calls))
        client, group, name = run_template(s, template([], [vhd()], validate={"sourceValidationOnly": True,
                                                                            "inVMValidations": [
            {"type": "Shell", "name": "check", "inline": ["true"]}]}))
        assert client.virtual_machine_image_templates.get(group, name).last_run_status.run_state == "Succeeded"
        assert "KVM is on trial" not in log_of(s, group, name)
        assert fakeqemu.calls(calls)[before:] == ["tcg vm"]
    finally:
        s.stop()


@pytest.mark.slow
def test_an_image_that_ignores_acpi_is_powered_off_from_inside(tmp_path: Path, imports: Path) -> None:  # noqa: F811
    """Seen: capture waited 120 s for an ACPI power-off that minimal images (no acpid, no logind) ignore."""
    s = start_server(tmp_path, imports)
    try:
        add_source(s, imports)
        client, group, name = run_template(s, template([{"type": "Shell", "name": "no-acpi", "inline": [
            # From now on nothing in the guest handles the ACPI power button.
            "systemctl mask --now systemd-logind.service >/dev/null 2>&1",
            "! systemctl is-active --quiet systemd-logind"]}], [vhd()]))
        status = client.virtual_machine_image_templates.get(group, name).last_run_status
        text = log_of(s, group, name)
        assert status.run_state == "Succeeded", status.message + text[-3000:]
        # The in-guest power-off worked: no wait for the ACPI button it ignores, no hard stop. (Its time is
        # measured in bench/build_compare.py, not here: these machines are shared.)
        capture = text.split('Starting provisioner Capture "capture"')[1].split('ending Capture "capture"')[0]
        assert "powered off from inside" in capture
        assert "ACPI" not in capture and "did not power off" not in capture
    finally:
        s.stop()


def test_startup_line_names_the_accelerator(tmp_path: Path, imports: Path) -> None:  # noqa: F811
    s = start_server(tmp_path, imports)
    try:
        line = next(ln for ln in s.log_path.read_text().splitlines() if "accelerator" in ln)
        d = Accelerator(s.data_dir / "accel.json").decide()
        assert f"accelerator {d.accel} [" in line
    finally:
        s.stop()


@pytest.mark.slow
def test_a_gen2_source_boots_with_uefi_and_builds(tmp_path: Path, imports: Path, test_image_uefi: Path) -> None:  # noqa: F811
    """Seen: hyperVGeneration V2 sources were booted with SeaBIOS only, so a UEFI-only image could not build.
    The source here has no BIOS boot code at all (GPT + EFI System Partition)."""
    uefi_dir = tmp_path / "imports-uefi"
    uefi_dir.mkdir()
    subprocess.run(["cp", "--sparse=always", str(test_image_uefi), str(uefi_dir / "uefi.qcow2")], check=True)
    s = start_server(tmp_path, uefi_dir)
    try:
        cc = compute(s)
        cc.images.begin_create_or_update("sources", "debian12-uefi", {
            "location": "westus", "properties": {"hyperVGeneration": "V2", "storageProfile": {"osDisk": {
                "osType": "Linux", "osState": "Generalized", "blobUri": (uefi_dir / "uefi.qcow2").as_uri()}}}}).result()
        out = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/out/providers/Microsoft.Compute/images/built-uefi"
        body = template([{"type": "Shell", "name": "efi", "inline": ["test -d /sys/firmware/efi"]}],
                        [{"type": "ManagedImage", "runOutputName": "mi", "imageId": out, "location": "westus"}],
                        validate={"inVMValidations": [{"type": "Shell", "name": "efi-again", "inline": [
                            "test -d /sys/firmware/efi"]}]})
        body["properties"]["source"]["imageId"] = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/sources/providers/"
                                                   "Microsoft.Compute/images/debian12-uefi")
        client, group, name = run_template(s, body)
        status = client.virtual_machine_image_templates.get(group, name).last_run_status
        text = log_of(s, group, name)
        assert status.run_state == "Succeeded", status.message + text[-3000:]
        assert text.count("firmware: UEFI (OVMF) for hyperVGeneration V2") == 2  # build VM and validation VM
        assert cc.images.get("out", "built-uefi").hyper_v_generation == "V2"
    finally:
        s.stop()
