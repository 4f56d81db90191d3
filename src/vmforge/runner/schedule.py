"""Schedule triggers (a vmforge extension): run a template on a cron schedule.

Each Schedule trigger stores its next fire time (UTC). The watcher wakes at the earliest of them (at most
``interval`` seconds apart; a PUT of a Schedule trigger in this process wakes it at once through
``vmforge.schedule.changed``, so a new trigger's first fire is on time), and for each trigger that is due:

1. claims the fire by moving ``next_run_time`` to the first fire time after *now* (a compare-and-set, so two
   servers on one database fire once; fire times missed while the server was down collapse into this one fire);
2. with ``condition: onChange``, compares the inputs a run would use now (``vmforge.runner.fingerprint``: the
   source version ``latest`` resolves to, the sha256 of every download, the template) with those of the
   template's last Succeeded run: unchanged → no run, the status says "unchanged since run N";
3. starts a run — unless one is in progress (then this fire is skipped, as SourceImage triggers do on Conflict).

The trigger's ``status`` says what the last fire did; ``lastFiredTime`` is when.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from vmforge import schedule
from vmforge.errors import ArmError, Conflict
from vmforge.runner import fingerprint
from vmforge.service.ids import TemplatePath, iso, utcnow
from vmforge.store.models import Template, Trigger

log = logging.getLogger("vmforge.triggers")

MIN_WAIT = 0.05


class ScheduleWatcher:
    def __init__(self, services: Any, interval: float, clock: Callable[[], datetime] = utcnow,
                 inputs: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.services = services
        self.interval = interval
        self.clock = clock
        self.inputs = inputs or self._current_inputs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vmforge-schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        schedule.changed.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if schedule.changed.wait(self.wait_seconds()):  # a trigger was put: its fire time may be sooner
                schedule.changed.clear()
                if self._stop.is_set():
                    return
                continue
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 — the watcher outlives a bad check
                log.exception("schedule check failed")

    def wait_seconds(self) -> float:
        """Until the earliest fire time, at most ``interval`` (new triggers are seen within it)."""
        try:
            with self.services.db.read() as s:
                earliest = s.scalar(select(func.min(Trigger.next_run_time)).where(
                    Trigger.kind == "Schedule", Trigger.provisioning_state == "Succeeded"))
        except Exception:  # noqa: BLE001
            log.exception("reading the next fire time failed")
            return self.interval
        if earliest is None:
            return self.interval
        return min(self.interval, max(schedule.seconds_until(earliest, self.clock()), MIN_WAIT))

    # ------------------------------------------------------------------ one pass
    def check_once(self, now: datetime | None = None) -> list[str]:
        """Fire every Schedule trigger due at ``now`` (default: the clock); the names of the templates run."""
        now = now or self.clock()
        with self.services.db.read() as s:
            rows = list(s.execute(
                select(Trigger.id, Trigger.name, Trigger.schedule, Trigger.time_zone, Trigger.condition,
                       Trigger.next_run_time, Template.id, Template.subscription_id, Template.resource_group,
                       Template.name, Template.properties)
                .join(Template, Trigger.template_id == Template.id)
                .where(Trigger.kind == "Schedule", Trigger.provisioning_state == "Succeeded",
                       Trigger.next_run_time <= now)))
        started = []
        for trig_id, _, expr, tz, condition, due_at, tpl_id, sub, group, name, props in rows:
            try:
                nxt: datetime | None = schedule.next_fire(expr, tz, now)
            except (ValueError, KeyError, OSError):  # no fire time left (or the zone vanished from tzdata)
                nxt = None
            if not self._claim(trig_id, due_at, nxt, now):
                continue  # another server fired it, or the trigger was changed meanwhile
            when = f"Fired at {iso(now)}"
            after = f" Next fire at {iso(nxt)}." if nxt else " The schedule has no later fire time."
            reason = "condition 'always'"
            if condition == "onChange":
                last = fingerprint.last_success(self.services.db, tpl_id)
                if last is None:
                    legacy = fingerprint.last_success(self.services.db, tpl_id, recorded=False)
                    reason = (f"run {legacy[0]} succeeded before runs recorded their inputs: nothing to compare with"
                              if legacy else "no successful run yet")
                else:
                    try:
                        now_inputs = self.inputs(props)
                    except ArmError as e:
                        self._set(trig_id, "Unhealthy", f"{when}: the template's inputs cannot be checked: "
                                  f"{e.message} No run was started.{after}")
                        continue
                    changes = fingerprint.differences(last[1], now_inputs)
                    if not changes:
                        self._set(trig_id, "Healthy", f"{when}: unchanged since run {last[0]} (the source version "
                                  "and every download are the same): no run was started." + after)
                        continue
                    reason = f"changed since run {last[0]}: " + "; ".join(changes)
            try:
                op = self.services.runs.start(TemplatePath(sub, group, name))
            except Conflict as e:
                self._set(trig_id, "Healthy", f"{when}: {e.message} This fire was skipped.{after}")
                continue
            except ArmError as e:
                self._set(trig_id, "Unhealthy", f"{when}: the run could not start: {e.message}{after}")
                continue
            self._set(trig_id, "Healthy", f"{when} ({reason}): a run was started (run {op.run_id}, operation "
                      f"{op.id}).{after}")
            started.append(name)
        return started

    def _claim(self, trig_id: int, due_at: datetime, nxt: datetime | None, now: datetime) -> bool:
        with self.services.db.session() as s:
            res = s.execute(update(Trigger).where(Trigger.id == trig_id, Trigger.next_run_time == due_at)
                            .values(next_run_time=nxt, last_fired_time=now))
            return res.rowcount == 1

    def _set(self, trig_id: int, code: str, message: str) -> None:
        with self.services.db.session() as s:
            row = s.get(Trigger, trig_id)
            if row is not None:
                row.status_code, row.status_message, row.status_time = code, message, utcnow()

    def _current_inputs(self, props: dict[str, Any]) -> dict[str, Any]:
        from vmforge import fetch

        settings = self.services.settings
        return fingerprint.current(self.services.artifacts, props, Path(settings.data_dir) / "fingerprints",
                                   fetch.policy_from_settings(settings))
