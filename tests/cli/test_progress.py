"""The build display's logic without a server: telemetry parsing, step tracking, exit codes, plain output,
the failure summary, and the log follower's byte offsets."""

from __future__ import annotations

import io

import httpx
import pytest
from rich.console import Console

from vmforge.cli.build import LogFollower, summarize
from vmforge.cli.client import Client, Target
from vmforge.cli.progress import END, START, LiveDisplay, PlainDisplay, Tracker, exit_code, fmt_secs

S1 = '[2026/11/25 14:00:00] (telemetry) Starting provisioner Shell "install nginx" (Customizing 2/5)'
E1 = '[2026/11/25 14:00:01] (telemetry) ending Shell "install nginx" - success after 1.2s'
S2 = "[2026/11/25 14:00:02] (telemetry) Starting provisioner WindowsRestart (Customizing 3/5)"
E2 = "[2026/11/25 14:00:09] (telemetry) ending WindowsRestart - failure after 7.0s"


def test_telemetry_lines_parse() -> None:
    m = START.match(S1)
    assert m and (m["kind"], m["name"], m["phase"], m["index"], m["total"]) == ("Shell", "install nginx",
                                                                                "Customizing", "2", "5")
    m = START.match(S2)
    assert m and m["kind"] == "WindowsRestart" and m["name"] is None
    m = END.match(E1)
    assert m and (m["kind"], m["result"], m["secs"]) == ("Shell", "success", "1.2")
    assert END.match(E2)["result"] == "failure"
    assert not START.match("[2026/11/25 14:00:00] Starting provisioner Shell (Customizing 1/1)")  # not telemetry
    assert not START.match("+ echo (telemetry) Starting provisioner Shell (Customizing 1/1)")


@pytest.mark.parametrize("state,code", [("Succeeded", 0), ("Failed", 1), ("PartiallySucceeded", 2),
                                        ("Canceled", 3), ("Running", 1), (None, 1)])
def test_exit_codes(state: str | None, code: int) -> None:
    assert exit_code(state) == code


def test_tracker_follows_steps_and_keeps_their_lines() -> None:
    t = Tracker()
    t.feed_run({"runState": "Running", "runSubState": "Building"})
    assert t.headline() == "Running · Building"
    assert t.feed_line(S1).title == 'Customizing 2/5 · Shell "install nginx"'
    assert t.headline() == 'Customizing 2/5 · Shell "install nginx"'
    t.feed_line("Reading package lists...")
    step = t.feed_line(E1)
    assert step.result == "success" and step.seconds == 1.2 and t.current is None
    t.feed_line(S2)
    t.feed_line("restart timed out")
    t.feed_line(E2)
    assert t.failing_step().kind == "WindowsRestart"
    assert list(t.failing_step().lines) == [S2, "restart timed out", E2]
    assert list(t.steps[0].lines) == [S1, "Reading package lists...", E1]
    t.feed_run({"runState": "Failed", "message": "boom"})
    assert t.headline() == "Failed" and t.message == "boom"


def test_tracker_takes_current_step_from_run_info() -> None:
    t = Tracker()
    changed = t.feed_run({"runState": "Running", "runSubState": "Customizing",
                          "currentStep": {"index": 1, "total": 2, "phase": "Customizing", "kind": "Shell",
                                          "name": "a"}})
    assert changed and t.headline() == 'Customizing 1/2 · Shell "a"'
    assert not t.feed_run({"runState": "Running", "runSubState": "Customizing",
                           "currentStep": {"index": 1, "total": 2, "phase": "Customizing", "kind": "Shell",
                                           "name": "a"}})
    t.feed_line(S1.replace("2/5", "1/2").replace("install nginx", "a"))  # the same step: not added twice
    assert len(t.steps) == 1
    t.feed_run({"runState": "Running", "runSubState": "Distributing",
                "currentStep": {"index": 1, "total": 1, "phase": "Distributing", "kind": "ManagedImage", "name": ""}})
    assert t.steps[0].result == "done" and t.headline() == "Distributing 1/1 · ManagedImage"


def test_plain_display_is_lines_without_escapes() -> None:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=False, width=200)
    t = Tracker()
    with PlainDisplay(t, con) as d:
        d.run({"runState": "Running", "runSubState": "Queued"})
        d.run({"runState": "Running", "runSubState": "Queued"})  # unchanged: printed once
        for line in (S1, "[2026/11/25 14:00:00] [nginx] setting up [ok]", E1):
            d.line(line)
        d.run({"runState": "Succeeded"})
    out = buf.getvalue().splitlines()
    assert out == ["==> Running · Queued", S1, '==> Customizing 2/5 · Shell "install nginx"',
                   "[2026/11/25 14:00:00] [nginx] setting up [ok]", E1, "==> Succeeded"]


def test_live_display_renders_steps_and_tail() -> None:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=120)
    t = Tracker()
    d = LiveDisplay(t, con)
    for line in (S1, "output line", E1, S2):
        d.line(line)
    con.print(d.render())
    text = buf.getvalue()
    assert 'Shell "install nginx"' in text and "1.2s" in text and "Customizing 3/5 · WindowsRestart" in text
    assert "output line" in text


def test_fmt_secs() -> None:
    assert fmt_secs(1.24) == "1.2s" and fmt_secs(75) == "1m15s"


def test_failure_summary(capsys: pytest.CaptureFixture[str]) -> None:
    t = Tracker()
    for line in (S1, E1, S2, "restart timed out", E2):
        t.feed_line(line)
    op = {"status": "Failed", "error": {"code": "CustomizerFailed", "message": "WindowsRestart failed"}}
    client = Client("https://vmforge.test", "t", target=Target(),
                    transport=httpx.MockTransport(lambda r: httpx.Response(200, json=op)))
    run = {"id": "7", "runState": "Failed", "message": "the build failed", "logUrl": "https://vmforge.test/log"}
    summarize(t, run, client, "web", "https://vmforge.test/op")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == '--- last log lines of Customizing 3/5 · WindowsRestart:'
    assert err[1:4] == [f"  {S2}", "  restart timed out", f"  {E2}"]
    assert "error: CustomizerFailed: WindowsRestart failed" in err
    assert err[-1] == "log: https://vmforge.test/log"


def test_log_follower_tracks_byte_offsets() -> None:
    text = "première ligne\nsecond\npartial"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["offset"])
        off = int(request.url.params["offset"])
        data = text.encode()[off:]
        return httpx.Response(200, content=data, headers={"x-vmforge-log-offset": str(off)})

    client = Client("https://vmforge.test", "t", target=Target(group="g"),
                    transport=httpx.MockTransport(handler))
    f = LogFollower(client, "web", "latest", follow=False)
    f.run()
    assert f.drain() == ["première ligne", "second", "partial"]
    assert f.offset == len(text.encode()) and f.error is None and seen == ["0"]


def test_log_follower_reports_server_errors() -> None:
    body = {"error": {"code": "ResourceNotFound", "message": "no such template"}}
    client = Client("https://vmforge.test", "t", transport=httpx.MockTransport(lambda r: httpx.Response(404, json=body)))
    f = LogFollower(client, "web", "latest")
    f.run()
    assert f.error is not None and f.error.code == "ResourceNotFound"


@pytest.mark.parametrize("final,code", [("Succeeded", 0), ("PartiallySucceeded", 2), ("Canceled", 3)])
def test_watch_follows_a_run_to_its_exit_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              final: str, code: int) -> None:
    """``watch`` against a scripted server: run info moves through its sub-states while the log streams."""
    import vmforge.cli.build as build

    monkeypatch.setattr(build, "POLL", 0.01)
    states = iter([("Running", "Queued"), ("Running", "Customizing"), ("Running", "Distributing")])
    log = "\n".join([S1, "installing", E1, ""]).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/runs/latest") or path.endswith("/runs/1"):
            state, sub = next(states, (final, None))
            return httpx.Response(200, json={"id": "1", "runState": state, "runSubState": sub, "message": "m",
                                             "currentStep": None, "logUrl": "https://vmforge.test/l"})
        if path.endswith("/runs/1/log"):
            return httpx.Response(200, content=log, headers={"x-vmforge-log-offset": "0"})
        return httpx.Response(404, json={"error": {"code": "NotFound", "message": "No route matches"}})

    client = Client("https://vmforge.test", "t", target=Target(group="g"), transport=httpx.MockTransport(handler))
    assert build.watch(client, "web") == code
    out = capsys.readouterr()
    assert "==> Running · Queued" in out.out and S1 in out.out and "installing" in out.out
    assert f"==> {final}" in out.out
    if final != "Succeeded":
        assert f"error: {final}: m" in out.err and "log: https://vmforge.test/l" in out.err
