"""What a run leaves behind: recovery finds exactly its processes, and an aborted run keeps a disk that opens."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_tools as require_tool
from vmforge.disk import qemuimg
from vmforge.events import RunEvents
from vmforge.kinds.base import Context
from vmforge.runner.engine import kill_leftovers, names_path
from vmforge.runner.execute import clean_run_dir, keep_disk


def test_names_path_is_exact() -> None:
    run1 = Path("/data/runs/1")
    assert names_path(b"qemu\0-drive\0file=/data/runs/1/build.qcow2,format=qcow2\0", run1)
    assert names_path(b"qemu\0-serial\0file:/data/runs/1/vm-build/serial.log\0", run1)
    assert names_path(b"sh\0/data/runs/1\0", run1)
    for other in (b"file=/data/runs/10/build.qcow2", b"file:/data/runs/123/vm/serial.log", b"/data/runs/1x/a",
                  b"/other/data/runs/1/a", b"/data/runs/11"):
        assert not names_path(b"qemu\0" + other + b"\0", run1), other


def test_recovering_run_1_kills_its_processes_and_no_others(tmp_path: Path) -> None:
    """Seen: recovery matched run ids as substrings, so recovering run 1 killed the VMs of runs 10-19, 100…"""
    runs = tmp_path / "runs"
    procs = {}
    for run in ("1", "10", "100"):
        (runs / run / "vm-build").mkdir(parents=True)
        # sh -c CMD NAME: NAME ($0) appears in the command line, as QEMU's file=… arguments do.
        procs[run] = subprocess.Popen(["sh", "-c", "sleep 300", f"{runs / run}/vm-build/serial.log"])
    try:
        time.sleep(0.2)
        assert kill_leftovers(runs / "1") == 1
        procs["1"].wait(5)
        time.sleep(0.2)
        assert procs["10"].poll() is None and procs["100"].poll() is None
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_aborted_validation_disk_is_kept_standalone(tmp_path: Path) -> None:
    """Seen: onValidationError 'abort' kept validate.qcow2 but deleted the build.qcow2 it is backed by."""
    require_tool("qemu-img")
    work = tmp_path / "runs" / "7"
    work.mkdir(parents=True)
    source = tmp_path / "source.raw"  # the source image lives outside the run and may be deleted later
    source.write_bytes(b"vmforge-built-bytes" + bytes(4 * 1024 * 1024 - 19))
    qemuimg.create_overlay(source, work / "build.qcow2", "raw")
    qemuimg.create_overlay(work / "build.qcow2", work / "validate.qcow2", "qcow2")
    (work / "customization.log").write_text("log\n")
    ctx = Context(run_id=7, work_dir=work, data_dir=tmp_path, events=RunEvents(tmp_path / "events.log"),
                  template={}, template_name="t", template_location="westus", cancel_requested=lambda: False,
                  fetch=None, artifacts=None)
    ctx.state.update(disk=work / "validate.qcow2", disk_format="qcow2")
    message = keep_disk(ctx, [])
    kept = work / "kept-validate.qcow2"
    assert f"kept for inspection at {kept} " in message
    clean_run_dir(work, {ctx.state["keep_disk"]})
    source.unlink()
    assert sorted(p.name for p in work.iterdir()) == ["customization.log", "kept-validate.qcow2"]
    info = qemuimg.info(kept, "qcow2")
    assert "backing-filename" not in info  # opens on its own
    out = tmp_path / "check.raw"
    qemuimg.convert(kept, out, "raw", src_fmt="qcow2")
    assert out.read_bytes()[:19] == b"vmforge-built-bytes"


def test_abort_without_a_disk_says_so(tmp_path: Path) -> None:
    ctx = Context(run_id=8, work_dir=tmp_path, data_dir=tmp_path, events=RunEvents(tmp_path / "e.log"), template={},
                  template_name="t", template_location="westus", cancel_requested=lambda: False, fetch=None,
                  artifacts=None)
    assert keep_disk(ctx, []) == "errorHandling is 'abort', but the VM had no disk to keep."
    assert "keep_disk" not in ctx.state


@pytest.mark.parametrize("keep", [None, {"kept-build.qcow2"}])
def test_clean_run_dir_keeps_only_the_log_and_what_is_named(tmp_path: Path, keep: set[str] | None) -> None:
    for name in ("customization.log", "kept-build.qcow2", "build.qcow2"):
        (tmp_path / name).write_text("x")
    (tmp_path / "vm-build").mkdir()
    (tmp_path / "vm-build" / "serial.log").write_text("x")
    clean_run_dir(tmp_path, keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"customization.log", *(keep or set())})
