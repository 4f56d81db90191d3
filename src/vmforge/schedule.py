"""Cron schedules of ``Schedule`` triggers: validation and fire times (pure functions, the clock is an argument).

The cron expression is parsed and iterated by ``cronsim`` (a maintained parser with Debian cron's semantics,
no dependencies); vmforge only insists on the classic 5 fields (cronsim would also take a seconds field).
Time zones are IANA names read by ``zoneinfo`` from the system's tz database (Debian's ``tzdata``).

DST follows cronsim, i.e. Debian cron: in a time zone with DST, a job at a fixed time (minute and hour fields
not starting with ``*``) whose local time is skipped (spring forward) fires at the first minute after the gap;
one whose local time occurs twice (fall back) fires once, at the first occurrence. A job with ``*`` in the
minute or hour field runs by wall-clock time, so it does not fire in the skipped hour.

Missed fire times (the server was down, or a check came late) collapse: when a trigger is due, it fires once
and its next fire time is the first one *after now*, never a backlog.
"""

from __future__ import annotations

import functools
import threading
import zoneinfo
from datetime import datetime, timedelta, timezone
from typing import Any

from cronsim import CronSim, CronSimError

UTC = timezone.utc
MAX_SCHEDULE = 200  # characters (the stored column's size)
# Names in the tz database that are not IANA zones a user means: the host's own zone and helper files.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


# Set by vmforge.service.triggers once a Schedule trigger's creation or change is committed, so that the watcher
# of this process recomputes its sleep at once rather than after up to ``trigger_interval`` seconds.
changed = threading.Event()


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def schedule_error(expr: str) -> str | None:
    """Why ``expr`` is not a usable 5-field cron expression (the parser's reason), or None."""
    if len(expr) > MAX_SCHEDULE:
        return f"The schedule is {len(expr)} characters long; at most {MAX_SCHEDULE} are allowed."
    fields = expr.split()
    if len(fields) != 5:
        return (f"The schedule '{expr}' is not a valid cron expression: it has {len(fields)} fields; "
                "expected 5 (minute hour day-of-month month day-of-week).")
    try:
        it = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
        next(it)
    except CronSimError as e:
        return f"The schedule '{expr}' is not a valid cron expression: {e}."
    except StopIteration:
        return f"The schedule '{expr}' is not a valid cron expression: it never fires."
    return None


def zone_error(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone name, or None."""
    if name in _zones():
        return None
    hint = next((z for z in sorted(_zones()) if z.casefold() == name.casefold()), None)
    extra = f" Time zone names are case-sensitive: did you mean '{hint}'?" if hint else ""
    return f"The time zone '{name}' is not an IANA time zone name (for example 'UTC' or 'Europe/Berlin').{extra}"


def next_fire(expr: str, tz_name: str, after: datetime) -> datetime:
    """The first fire time of ``expr`` in ``tz_name`` strictly after ``after`` (an aware datetime), in UTC."""
    after = after.astimezone(UTC)
    tz = zoneinfo.ZoneInfo(tz_name)
    # cronsim iterates wall-clock time; around a fall-back the first candidates can lie before ``after`` in
    # absolute time (the repeated hour's first occurrence): skip those.
    it = CronSim(expr, after.astimezone(tz))
    for _ in range(10_000):
        try:
            cand = next(it).astimezone(UTC)
        except StopIteration:
            break
        if cand > after:
            return cand
    raise ValueError(f"the schedule '{expr}' has no fire time after {after.isoformat()}")


def due(next_run: datetime | None, now: datetime) -> bool:
    """Whether a trigger whose next fire time is ``next_run`` fires at ``now``."""
    return next_run is not None and now >= next_run


def seconds_until(next_run: datetime, now: datetime) -> float:
    return max((next_run - now) / timedelta(seconds=1), 0.0)


def configure(row: Any, props: dict[str, Any], now: datetime) -> None:
    """Write a validated trigger body's schedule onto its stored row (a ``Trigger``): a Schedule trigger gets its
    first fire time after ``now`` when it is new or its schedule or time zone changed; another kind has none."""
    if props.get("kind") != "Schedule":
        row.schedule = row.time_zone = row.condition = row.next_run_time = None
        return
    expr, tz = props["schedule"], props.get("timeZone") or "UTC"
    if row.schedule != expr or row.time_zone != tz or row.next_run_time is None:
        row.next_run_time = next_fire(expr, tz, now)
    row.schedule, row.time_zone, row.condition = expr, tz, props.get("condition") or "onChange"
