"""Cron schedules that submit a batch file, fired exactly once per fire time.

The board stores each schedule and every fire. Firing claims the row ``(schedule, fire_at)``
of ``schedule_fires`` (its primary key) in the same transaction that creates the batch's
tasks: two dispatchers, or one restarted, can never fire the same time twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlite_utils

from board import actors, batches, errors, policy, records, tasks
from board.connection import rows, transaction

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def add(
    db: sqlite_utils.Database,
    name: str,
    cron: str,
    *,
    batch_path: str,
    actor: actors.Actor = actors.OPERATOR,
    now: float | None = None,
) -> None:
    policy.check_schedule(actor)
    if not NAME.match(name):
        raise errors.InvalidInput(
            f"{name!r} is not a schedule name: use letters, digits, '.', '_' and '-'"
        )
    with transaction(db, now=now) as tx:
        if tx.value("SELECT 1 FROM schedules WHERE name = ?", (name,)):
            raise errors.InvalidInput(
                f"a schedule named {name!r} exists; `kanban schedule remove {name}` first"
            )
        # Fire times before the schedule existed are not "missed".
        tx.execute(
            "INSERT INTO schedules (name, cron, batch_path, created_at, last_fire_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, cron, batch_path, tx.now, tx.now),
        )
        tx.wake = True  # running dispatchers recompute their next fire time


def remove(db: sqlite_utils.Database, name: str, *, actor: actors.Actor = actors.OPERATOR) -> None:
    policy.check_schedule(actor)
    with transaction(db) as tx:
        if not tx.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount:
            raise errors.InvalidInput(f"no schedule named {name!r}; `kanban schedule list`")


def all_(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return rows(db.conn, "SELECT * FROM schedules ORDER BY name")


def get(db: sqlite_utils.Database, name: str) -> dict[str, Any]:
    found = rows(db.conn, "SELECT * FROM schedules WHERE name = ?", (name,))
    if not found:
        raise errors.InvalidInput(f"no schedule named {name!r}; `kanban schedule list`")
    return found[0]


def fires(db: sqlite_utils.Database, name: str | None = None) -> list[dict[str, Any]]:
    if name is None:
        return rows(db.conn, "SELECT * FROM schedule_fires ORDER BY fire_at")
    return rows(
        db.conn, "SELECT * FROM schedule_fires WHERE schedule = ? ORDER BY fire_at", (name,)
    )


def fire(
    db: sqlite_utils.Database,
    name: str,
    fire_at: float,
    *,
    entries: Sequence[batches.Entry] | None,
    error: str | None = None,
    now: float | None = None,
    budget: records.Budget = tasks.NO_BUDGET,
) -> batches.Submitted:
    """Fire `name` for `fire_at`: claim it and submit the batch, in one transaction.

    Returns ``created=False`` if this fire time was already claimed. With `error` (the batch
    file could not be read), the fire is recorded as failed so it is not retried every loop.
    """
    with transaction(db, now=now) as tx:
        claimed = tx.execute(
            "INSERT OR IGNORE INTO schedule_fires (schedule, fire_at, fired_at, error)"
            " VALUES (?, ?, ?, ?)",
            (name, fire_at, tx.now, error),
        ).rowcount
        if not claimed:
            return batches.Submitted(None, False, {})
        tx.execute(
            "UPDATE schedules SET last_fire_at = CASE WHEN coalesce(last_fire_at, 0) > ?"
            " THEN last_fire_at ELSE ? END WHERE name = ?",
            (fire_at, fire_at, name),
        )
        if error is not None or not entries:
            return batches.Submitted(None, False, {})
        submitted = batches.insert(
            tx, entries, name=name, schedule=name, fire_at=fire_at, budget=budget
        )
        # Without an idempotency key, insert always makes a new batch and names it.
        assert submitted.batch_id is not None
        tx.execute(
            "UPDATE schedule_fires SET batch_id = ? WHERE schedule = ? AND fire_at = ?",
            (int(submitted.batch_id.removeprefix(batches.PREFIX)), name, fire_at),
        )
        return submitted
