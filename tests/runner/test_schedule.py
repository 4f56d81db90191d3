"""Schedule triggers without a VM: validation through the SDK, fire times across DST, missed fires collapsing
into one, the onChange comparison, and the watcher driven by an injected clock over an in-process store."""

from __future__ import annotations

import hashlib
import http.server
import threading
import uuid
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.api.test_group_delete import services_of
from tests.conftest import SUBSCRIPTION, imagebuilder_client
from vmforge import fetch, schedule
from vmforge.auth import Principal
from vmforge.runner import fingerprint
from vmforge.runner.schedule import ScheduleWatcher
from vmforge.service import groups
from vmforge.service.ids import TemplatePath
from vmforge.service.runstate import RunState
from vmforge.store.models import Run, Trigger

UTC = timezone.utc


def body(**props) -> dict:  # noqa: ANN003
    return {"location": "westus", "identity": {"type": "None"}, "properties": {
        "source": {"type": "PlatformImage", "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server",
                   "version": "latest"},
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [{"type": "VHD", "runOutputName": "vhd"}], **props}}


# ------------------------------------------------------------------------------------------ fire times
def test_next_fire_across_spring_forward_in_berlin() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST. A 02:30 job fires at the first minute after the gap (03:00
    # CEST = 01:00 UTC), and the next day at 02:30 CEST (00:30 UTC).
    first = schedule.next_fire("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert schedule.next_fire("30 2 * * *", "Europe/Berlin", first) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    # Every 30 minutes keeps 30 minutes of real time through the gap (01:30 CET, then 03:00 CEST).
    t, seen = datetime(2026, 3, 29, 0, 10, tzinfo=UTC), []
    for _ in range(4):
        t = schedule.next_fire("*/30 * * * *", "Europe/Berlin", t)
        seen.append(t)
    assert seen == [datetime(2026, 3, 29, 0, 30, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(4)]
    # Before the change 02:30 CET is 01:30 UTC.
    assert schedule.next_fire("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC)) == \
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC)


def test_next_fire_across_fall_back_in_berlin() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice; the job fires once, at the first.
    first = schedule.next_fire("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert schedule.next_fire("30 2 * * *", "Europe/Berlin", first) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)
    # Every 30 minutes keeps 30 minutes of real time through the repeated hour, never going back.
    t, seen = datetime(2026, 10, 24, 23, 50, tzinfo=UTC), []
    for _ in range(6):
        t = schedule.next_fire("*/30 * * * *", "Europe/Berlin", t)
        seen.append(t)
    assert seen == [datetime(2026, 10, 25, 0, 0, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(6)]


def test_one_minute_cron_and_utc_default() -> None:
    assert schedule.next_fire("* * * * *", "UTC", datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)) == \
        datetime(2026, 1, 1, 10, 1, tzinfo=UTC)
    assert schedule.next_fire("* * * * *", "UTC", datetime(2026, 1, 1, 10, 0, 59, 999, tzinfo=UTC)) == \
        datetime(2026, 1, 1, 10, 1, tzinfo=UTC)


def test_schedule_and_zone_errors() -> None:
    assert schedule.schedule_error("0 2 * * *") is None
    assert "Bad minute" in schedule.schedule_error("61 * * * *")
    assert "Bad day-of-month" in schedule.schedule_error("0 0 30 2 *")
    assert "6 fields; expected 5" in schedule.schedule_error("0 0 2 * * *")
    assert "0 fields" in schedule.schedule_error("   ")
    many = ",".join(str(m) for m in range(60))
    assert schedule.schedule_error(f"{many} * * * *") is None  # 170 characters, fine
    assert "at most 200" in schedule.schedule_error(f"{many} {many[:40]} * * *")
    assert schedule.zone_error("Europe/Berlin") is None
    assert "did you mean 'Europe/Berlin'" in schedule.zone_error("europe/berlin")
    for bad in ("Mars/Olympus", "localtime", "../../etc/passwd", "/etc/localtime", "Europe"):
        assert schedule.zone_error(bad), bad


# ------------------------------------------------------------------------------------------ the API
def test_sdk_put_get_and_errors(server) -> None:  # noqa: ANN001
    client = imagebuilder_client(server)
    client._config.polling_interval = 0.1
    group = f"sched-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    client.virtual_machine_image_templates.begin_create_or_update(group, "t", body()).result()
    before = datetime.now(UTC)
    trig = client.triggers.begin_create_or_update(group, "t", "nightly", {"properties": {
        "kind": "Schedule", "schedule": "0 2 * * *", "timeZone": "Europe/Berlin"}}).result()
    props = client.triggers.get(group, "t", "nightly").properties
    assert trig.properties.kind == props.kind == "Schedule"
    assert (props["schedule"], props["timeZone"], props["condition"]) == ("0 2 * * *", "Europe/Berlin", "onChange")
    assert props.provisioning_state == "Succeeded" and props.status.code == "Healthy"
    nxt = datetime.fromisoformat(props["nextRunTime"].replace("Z", "+00:00"))
    assert nxt == schedule.next_fire("0 2 * * *", "Europe/Berlin", before)
    assert props["nextRunTime"].endswith("Z") and "lastFiredTime" not in props

    def error(trigger_body: dict) -> HttpResponseError:
        with pytest.raises(HttpResponseError) as e:
            client.triggers.begin_create_or_update(group, "t", "bad", {"properties": trigger_body}).result()
        assert e.value.status_code == 400
        return e.value

    e = error({"kind": "Schedule", "schedule": "61 * * * *"})
    assert (e.error.code, e.error.target) == ("ValidationFailed", "properties.schedule")
    assert "Bad minute" in e.error.message
    e = error({"kind": "Schedule", "schedule": "* * * * *", "timeZone": "Mars/Olympus"})
    assert (e.error.code, e.error.target) == ("ValidationFailed", "properties.timeZone")
    e = error({"kind": "Schedule", "schedule": "* * * * *", "condition": "sometimes"})
    assert e.error.target == "properties.condition"
    e = error({"kind": "Schedule"})
    assert e.error.target == "properties.schedule"
    with pytest.raises(ResourceNotFoundError):  # nothing half-stored
        client.triggers.get(group, "t", "bad")
    # An older api-version accepts the extension too, and a PUT of another kind drops the schedule.
    old = imagebuilder_client(server, api_version="2022-07-01")
    old._config.polling_interval = 0.1
    t2 = old.triggers.begin_create_or_update(group, "t", "nightly", {"properties": {
        "kind": "Schedule", "schedule": "*/5 * * * *", "condition": "always"}}).result()
    assert (t2.properties["timeZone"], t2.properties["condition"]) == ("UTC", "always")
    t3 = client.triggers.begin_create_or_update(group, "t", "nightly", {"properties": {"kind": "SourceImage"}}).result()
    assert t3.properties.kind == "SourceImage" and "schedule" not in t3.properties


# ------------------------------------------------------------------------------------------ the watcher
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    s = services_of(tmp_path / "data")
    groups.ensure(s.db, SUBSCRIPTION, "rg", "westus")
    path = TemplatePath(SUBSCRIPTION, "rg", "tpl")
    s.templates.put(path, body(), "2024-02-01", Principal("test", "00000000-0000-0000-0000-0000000000aa"))
    for op_id in s.templates.pending_operations():
        s.finish(op_id)
    return s, path


def put_trigger(s, path: TemplatePath, condition: str, now: datetime, expr: str = "* * * * *") -> None:  # noqa: ANN001
    from vmforge.store.models import Trigger as T  # noqa: F401

    _, _, op = s.triggers.put(path, "sched", {"properties": {"kind": "Schedule", "schedule": expr,
                                                             "condition": condition}}, "2025-10-01")
    s.finish(op.id)
    with s.db.session() as ses:  # the fire time the PUT computed, moved to the test's clock
        row = ses.query(Trigger).one()
        row.next_run_time = schedule.next_fire(expr, "UTC", now)


def trigger_row(s) -> Trigger:  # noqa: ANN001
    with s.db.read() as ses:
        return ses.query(Trigger).one()


def runs(s) -> list[Run]:  # noqa: ANN001
    with s.db.read() as ses:
        return list(ses.query(Run).order_by(Run.id))


def end_runs(s, inputs: dict | None = None) -> None:  # noqa: ANN001
    with s.db.session() as ses:
        for run in ses.query(Run).filter(Run.state.in_(["Queued", "Running"])):
            run.state = RunState.SUCCEEDED.value
            run.inputs = inputs


T0 = datetime(2026, 6, 1, 10, 0, 30, tzinfo=UTC)


def test_missed_fires_fire_once(svc) -> None:  # noqa: ANN001
    s, path = svc
    clock = Clock(T0)
    w = ScheduleWatcher(s, interval=60, clock=clock)
    put_trigger(s, path, "always", T0)
    assert trigger_row(s).next_run_time == datetime(2026, 6, 1, 10, 1, tzinfo=UTC)
    assert w.check_once() == [] and runs(s) == []  # not yet due
    assert 29 <= w.wait_seconds() <= 30  # the watcher sleeps until the fire time, not a whole interval
    clock.now = T0 + timedelta(hours=3)  # the server was down: 180 fire times went by
    assert w.check_once() == ["tpl"]
    assert len(runs(s)) == 1
    row = trigger_row(s)
    assert row.next_run_time == datetime(2026, 6, 1, 13, 1, tzinfo=UTC)  # the first after now, no backlog
    assert row.last_fired_time == clock.now
    assert "condition 'always'" in row.status_message and "a run was started (run 1" in row.status_message
    end_runs(s)
    assert w.check_once() == [] and len(runs(s)) == 1  # the same moment again: nothing more


def test_always_runs_each_time_and_skips_while_a_run_is_in_progress(svc) -> None:  # noqa: ANN001
    s, path = svc
    clock = Clock(T0)
    w = ScheduleWatcher(s, interval=60, clock=clock)
    put_trigger(s, path, "always", T0)
    clock.now = datetime(2026, 6, 1, 10, 1, 0, tzinfo=UTC)
    assert w.check_once() == ["tpl"]
    clock.now = datetime(2026, 6, 1, 10, 2, 0, tzinfo=UTC)  # the first run is still going
    assert w.check_once() == []
    row = trigger_row(s)
    assert "already has a run in progress" in row.status_message and "This fire was skipped" in row.status_message
    assert row.next_run_time == datetime(2026, 6, 1, 10, 3, tzinfo=UTC)
    end_runs(s, {"source": "x"})
    clock.now = datetime(2026, 6, 1, 10, 3, 5, tzinfo=UTC)
    assert w.check_once() == ["tpl"]  # always: same inputs, still a run
    assert [r.state for r in runs(s)] == ["Succeeded", "Running"]


def test_on_change_compares_with_the_last_successful_run(svc) -> None:  # noqa: ANN001
    s, path = svc
    clock = Clock(T0)
    current = {"source": "v1", "sourceDigest": "d1", "template": "t", "downloads": {"https://x/a.sh": "a" * 64}}
    seen = []
    w = ScheduleWatcher(s, interval=60, clock=clock, inputs=lambda props: seen.append(props) or dict(current))
    put_trigger(s, path, "onChange", T0)
    clock.now = datetime(2026, 6, 1, 10, 1, tzinfo=UTC)
    assert w.check_once() == ["tpl"]  # no successful run yet
    assert "no successful run yet" in trigger_row(s).status_message
    first = runs(s)[0].id
    end_runs(s, dict(current))
    clock.now = datetime(2026, 6, 1, 10, 2, tzinfo=UTC)
    assert w.check_once() == []
    row = trigger_row(s)
    assert row.status_code == "Healthy" and f"unchanged since run {first}" in row.status_message, row.status_message
    assert "no run was started" in row.status_message and len(runs(s)) == 1
    assert seen and seen[-1]["source"]["type"] == "PlatformImage"  # the template's properties were checked
    current["downloads"] = {"https://x/a.sh": "b" * 64}
    clock.now = datetime(2026, 6, 1, 10, 3, tzinfo=UTC)
    assert w.check_once() == ["tpl"]
    msg = trigger_row(s).status_message
    assert f"changed since run {first}: the content of https://x/a.sh changed" in msg, msg
    # A failed run does not become the baseline: the last Succeeded one stays it.
    with s.db.session() as ses:
        ses.query(Run).filter(Run.state == "Running").update({"state": "Failed", "inputs": None})
    clock.now = datetime(2026, 6, 1, 10, 4, tzinfo=UTC)
    assert w.check_once() == ["tpl"]
    current["source"] = "v2"
    end_runs(s, dict(current))
    clock.now = datetime(2026, 6, 1, 10, 5, tzinfo=UTC)
    assert w.check_once() == []
    assert f"unchanged since run {runs(s)[-1].id}" in trigger_row(s).status_message


def test_on_change_after_runs_that_predate_input_records(svc) -> None:  # noqa: ANN001
    s, path = svc
    clock = Clock(T0)
    w = ScheduleWatcher(s, interval=60, clock=clock, inputs=lambda props: {"source": "v1"})
    put_trigger(s, path, "onChange", T0)
    clock.now = datetime(2026, 6, 1, 10, 1, tzinfo=UTC)
    assert w.check_once() == ["tpl"]
    end_runs(s, None)  # Succeeded, but recorded nothing (a run from before migration 0008)
    clock.now = datetime(2026, 6, 1, 10, 2, tzinfo=UTC)
    assert w.check_once() == ["tpl"]
    msg = trigger_row(s).status_message
    assert f"run {runs(s)[0].id} succeeded before runs recorded their inputs" in msg, msg


def test_on_change_unresolvable_inputs_say_why(svc) -> None:  # noqa: ANN001
    from vmforge.errors import NotFound

    s, path = svc
    clock = Clock(T0)

    def broken(props: dict) -> dict:
        raise NotFound("The image version 'x' was not found.")

    w = ScheduleWatcher(s, interval=60, clock=clock, inputs=broken)
    put_trigger(s, path, "onChange", T0)
    clock.now = datetime(2026, 6, 1, 10, 1, tzinfo=UTC)
    w.check_once()  # the first run needs no comparison
    end_runs(s, {"source": "v1"})
    clock.now = datetime(2026, 6, 1, 10, 2, tzinfo=UTC)
    assert w.check_once() == []
    row = trigger_row(s)
    assert row.status_code == "Unhealthy" and "was not found" in row.status_message
    assert row.next_run_time == datetime(2026, 6, 1, 10, 3, tzinfo=UTC)


def test_a_put_wakes_the_sleeping_watcher(svc) -> None:  # noqa: ANN001
    import time

    s, path = svc
    w = ScheduleWatcher(s, interval=3600)  # the real clock; without a wake-up it would sleep for an hour
    schedule.changed.clear()
    w.start()
    try:
        time.sleep(0.3)  # asleep: no trigger yet
        _, _, op = s.triggers.put(path, "soon", {"properties": {"kind": "Schedule", "schedule": "* * * * *",
                                                                "condition": "always"}}, "2025-10-01")
        s.finish(op.id)
        with s.db.session() as ses:  # due in half a second instead of at the next minute
            ses.query(Trigger).one().next_run_time = datetime.now(UTC) + timedelta(seconds=0.5)
        schedule.changed.set()
        deadline = time.monotonic() + 10
        while not runs(s) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(runs(s)) == 1
    finally:
        w.stop()
    assert not w._thread.is_alive()


def test_put_rings_the_watcher(svc) -> None:  # noqa: ANN001
    s, path = svc
    schedule.changed.clear()
    s.triggers.put(path, "src", {"properties": {"kind": "SourceImage"}}, "2025-10-01")
    assert not schedule.changed.is_set()
    _, _, op = s.triggers.put(path, "sched", {"properties": {"kind": "Schedule", "schedule": "0 2 * * *"}},
                              "2025-10-01")
    assert not schedule.changed.is_set()  # still Creating: the watcher does not count it yet
    s.finish(op.id)
    assert schedule.changed.is_set()  # Succeeded: now it does
    schedule.changed.clear()
    s.triggers.put(path, "sched", {"properties": {"kind": "Schedule", "schedule": "0 3 * * *"}}, "2025-10-01")
    assert schedule.changed.is_set()  # an update is complete at once


def test_a_changed_schedule_is_not_fired_by_a_stale_claim(svc) -> None:  # noqa: ANN001
    s, path = svc
    w = ScheduleWatcher(s, interval=60, clock=Clock(T0))
    put_trigger(s, path, "always", T0)
    due = trigger_row(s).next_run_time
    assert w._claim(trigger_row(s).id, due, due + timedelta(minutes=1), due)
    assert not w._claim(trigger_row(s).id, due, due + timedelta(minutes=1), due)  # a second server: no


# ------------------------------------------------------------------------------------------ fingerprints
def test_differences_and_template_digest() -> None:
    a = {"source": "/g/versions/1.0.0", "sourceDigest": "d", "template": "t", "downloads": {"https://h/s.sh?sig=1": "1" * 64}}
    assert fingerprint.differences(a, dict(a)) == []
    b = {**a, "source": "/g/versions/1.0.1"}
    assert fingerprint.differences(a, b) == ["the source version is /g/versions/1.0.1 (was /g/versions/1.0.0)"]
    c = {**a, "sourceDigest": "e", "downloads": {"https://h/s.sh?sig=1": "2" * 64, "https://h/new": "3" * 64}}
    diff = fingerprint.differences(a, c)
    assert diff[0] == "the source image's content changed"
    assert "https://h/new is a new download" in diff
    assert any(d.startswith("the content of https://h/s.sh changed") for d in diff)  # no query string shown
    props = body()["properties"]
    pinned = {**props, "source": {**props["source"], "exactVersion": "1.2.3"}, "lastRunStatus": {"runState": "x"}}
    assert fingerprint.template_digest(props) == fingerprint.template_digest(pinned)
    assert fingerprint.template_digest(props) != fingerprint.template_digest({**props, "buildTimeoutInMinutes": 5})


def test_current_fetches_and_hashes_every_download(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.sh").write_text("echo one\n")
    (www / "v.sh").write_text("true\n")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(http.server.SimpleHTTPRequestHandler, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        props = body(customize=[{"type": "Shell", "name": "a", "scriptUri": base + "/a.sh"},
                                {"type": "Shell", "name": "i", "inline": ["true"]}],
                     validate={"inVMValidations": [{"type": "Shell", "name": "v", "scriptUri": base + "/v.sh"}]}
                     )["properties"]
        resolved = SimpleNamespace(exact_version=None, path=Path("/blobs/abc123.qcow2"))
        artifacts = SimpleNamespace(resolve_source=lambda source: resolved)
        policy = fetch.FetchPolicy(allow_cidrs=[__import__("ipaddress").ip_network("127.0.0.0/8")])
        one = fingerprint.current(artifacts, props, tmp_path / "scratch", policy)
        assert one["downloads"] == {base + "/a.sh": hashlib.sha256(b"echo one\n").hexdigest(),
                                    base + "/v.sh": hashlib.sha256(b"true\n").hexdigest()}
        assert (one["source"], one["sourceDigest"]) == (None, "abc123")
        assert list((tmp_path / "scratch").iterdir()) == []  # nothing left behind
        (www / "a.sh").write_text("echo two\n")
        two = fingerprint.current(artifacts, props, tmp_path / "scratch", policy)
        assert fingerprint.differences(one, two) == [
            f"the content of {base}/a.sh changed (sha256 {two['downloads'][base + '/a.sh'][:12]}…, was "
            f"{one['downloads'][base + '/a.sh'][:12]}…)"]
        # Without the operator's allowance, loopback is refused, as for a run.
        with pytest.raises(fetch.FetchRefused):
            fingerprint.current(artifacts, props, tmp_path / "scratch", fetch.FetchPolicy())
    finally:
        httpd.shutdown()
