"""Firing cron schedules from the dispatcher (croniter), exactly once per fire time.

`due(schedule, now)` is the latest fire time in ``(last_fire_at, now]``: a dispatcher that was
down for a day fires a missed schedule once on start, not once per missed slot. `fire_due`
claims and submits in one board transaction (`board.schedules.fire`), so any number of
dispatchers may call it at once. The clock is a parameter: tests control it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import sqlite_utils
from croniter import CroniterError, croniter

from board import errors, schedules, tasks
from orchestrator import batch

log = logging.getLogger("kanban.schedules")

_EXAMPLES = '"0 3 * * *" (03:00 daily) or "*/15 * * * *" (every 15 minutes)'
_warned: set[tuple[str, str]] = set()  # (name, cron) of stored schedules already reported


def check_cron(expression: str, *, seconds: bool = False) -> str:
    """A cron expression that schedules can use; `errors.InvalidInput` says why not.

    Five fields (minute hour day-of-month month day-of-week) or a macro such as ``@daily``.
    croniter reads a sixth field as seconds (``* * * * * *`` fires every second), so six fields
    are taken only with `seconds` (``schedule add --seconds``), the user saying so. An
    expression that never fires (``0 0 30 2 *``, the 30th of February) is refused: croniter
    raises on every later look at it.
    """
    text = expression.strip()
    fields = len(text.split())
    if seconds and fields != 6:
        raise errors.InvalidInput(
            f"{expression!r} has {fields} field(s); with --seconds give six: minute hour "
            'day-of-month month day-of-week second, e.g. "* * * * * */30" (every 30 seconds)'
        )
    if not seconds and fields == 6:
        raise errors.InvalidInput(
            f"{expression!r} has six fields, and the sixth would be read as seconds; give five "
            f"(minute hour day-of-month month day-of-week), e.g. {_EXAMPLES}, or pass --seconds "
            "if you mean seconds"
        )
    if (not text.startswith("@") and fields not in (5, 6)) or not croniter.is_valid(text):
        raise errors.InvalidInput(f"{expression!r} is not a cron expression; e.g. {_EXAMPLES}")
    try:
        croniter(text, _moment(time.time())).get_next(float)
    except (CroniterError, ValueError, OverflowError):
        raise errors.InvalidInput(
            f"{expression!r} never fires (no date matches it, like the 30th of February); "
            f"e.g. {_EXAMPLES}"
        ) from None
    return text


def problem(schedule: dict[str, Any]) -> str | None:
    """Why a stored schedule cannot be used (an older kanban stored it), or None.

    Six stored fields were added with ``--seconds`` (or by an older kanban, which read them
    the same way): they keep their seconds.
    """
    try:
        check_cron(schedule["cron"], seconds=len(schedule["cron"].split()) == 6)
    except errors.InvalidInput as exc:
        return str(exc)
    return None


def _usable(schedule: dict[str, Any]) -> bool:
    """Enabled and usable; one bad schedule is skipped (said once), never stops the rest."""
    if not schedule["enabled"]:
        return False
    trouble = problem(schedule)
    if trouble is None:
        return True
    if (schedule["name"], schedule["cron"]) not in _warned:
        _warned.add((schedule["name"], schedule["cron"]))
        log.warning(
            "schedule %s is skipped: %s; replace it: `kanban schedule remove %s`, then add it"
            " again",
            schedule["name"],
            trouble,
            schedule["name"],
        )
    return False


def _moment(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).astimezone()


def next_after(expression: str, after: float) -> float:
    return float(croniter(expression, _moment(after)).get_next(float))


def due(schedule: dict[str, Any], now: float) -> float | None:
    """The most recent fire time after the last fire and not after `now`, if any."""
    last = schedule["last_fire_at"] or schedule["created_at"]
    first = next_after(schedule["cron"], last)
    if first > now:
        return None
    # Jump straight to the latest slot <= now (no replay of every missed slot).
    latest = float(croniter(schedule["cron"], _moment(now + 1e-6)).get_prev(float))
    return max(first, latest)


def fire_due(db: sqlite_utils.Database, now: float) -> list[tuple[str, float, str | None]]:
    """Fire every due schedule; returns (name, fire time, batch id or None) for each claim."""
    fired = []
    for schedule in schedules.all_(db):
        if not _usable(schedule):
            continue
        fire_at = due(schedule, now)
        if fire_at is None:
            continue
        try:
            _name, entries, budget = batch.load(schedule["batch_path"])
            error = None
        except errors.KanbanError as exc:
            entries, error, budget = None, str(exc), tasks.NO_BUDGET
        submitted = schedules.fire(
            db, schedule["name"], fire_at, entries=entries, error=error, now=now, budget=budget
        )
        if submitted.created or error:
            fired.append((schedule["name"], fire_at, submitted.batch_id))
            if error:
                log.warning("schedule %s could not fire: %s", schedule["name"], error)
    return fired


def seconds_until_next(db: sqlite_utils.Database, now: float) -> float | None:
    upcoming = [
        next_after(s["cron"], s["last_fire_at"] or s["created_at"])
        for s in schedules.all_(db)
        if _usable(s)
    ]
    return max(0.0, min(upcoming) - now) if upcoming else None


def listing(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every schedule with its last and next fire times (`kanban schedule list --json`, the
    web board). A schedule an older kanban stored with an unusable expression is listed with
    its `problem`, not fatal."""
    from board import views

    now = time.time()
    items = []
    for s in schedules.all_(db):
        trouble = problem(s)
        items.append(
            {
                "name": s["name"],
                "cron": s["cron"],
                "batch_file": s["batch_path"],
                "enabled": bool(s["enabled"]),
                "last_fire_at": views.when(s["last_fire_at"])
                if s["last_fire_at"] != s["created_at"]
                else None,
                "next_fire_at": None
                if trouble
                else views.when(next_after(s["cron"], max(now, s["last_fire_at"] or 0))),
                "problem": trouble,
            }
        )
    return items
