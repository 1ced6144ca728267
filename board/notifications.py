"""The notifications outbox: each event worth telling is sent once per sink, across restarts.

`scan` copies the events worth a notification into ``notifications`` (one row per event and
sink) in the same transaction that moves the board's cursor past them, so an event is queued
exactly once whoever scans and whenever they stop. `claim` hands due rows to one sender for a
while (a second dispatcher skips them); `sent`, `retry_later` and `give_up` record what became
of them. A sender killed between a delivery and `sent` sends that one again after its claim
expires: the only window, and receivers get the same ``id`` both times (see docs/web.md).
"""

from __future__ import annotations

import dataclasses
import json

import sqlite_utils

from board import states
from board.connection import Tx, rows, transaction

CURSOR_KEY = "notify_cursor"
KINDS = ("blocked", "failed", "done", "landed", "budget")
# Block reasons that mean a budget or a governor stopped the task (`board.spending`).
BUDGET_REASONS = ("budget exceeded", "the budget of batch", "respawn governor", "fan-out governor")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """A notification to send: which event of which task, to which sink, how often tried."""

    id: int
    event_id: int
    task_id: int
    sink: str
    kind: str
    attempts: int
    at: float  # when the event happened
    reason: str | None
    data: dict


def kind_of(event: dict) -> str | None:
    """What an event is worth telling as (one of `KINDS`), or None."""
    if event["kind"] == "landed":
        return "landed"
    if event["kind"] != "status":
        return None
    to = event["to_status"]
    if to == states.Status.BLOCKED:
        reason = _reason(event) or ""
        return "budget" if reason.startswith(BUDGET_REASONS) else "blocked"
    if to in (states.Status.FAILED, states.Status.DONE):
        return str(to)
    return None


def _reason(event: dict) -> str | None:
    data = json.loads(event["data"]) if event["data"] else {}
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) else None


def scan(
    db: sqlite_utils.Database,
    *,
    sinks: list[str],
    kinds: frozenset[str],
    now: float,
    max_age: float,
    limit: int = 1000,
) -> int:
    """Queue the events after the cursor for every sink; returns how many rows were queued.

    Events older than `max_age` seconds are passed over (a board's first notifier does not
    announce its whole history). Cheap when nothing happened: one read of the newest event id.
    """
    latest = rows(db.conn, "SELECT coalesce(max(id), 0) AS id FROM events")[0]["id"]
    if latest <= _cursor_outside(db):
        return 0
    queued = 0
    with transaction(db, now=now) as tx:
        start = _cursor(tx)
        found = tx.all(
            "SELECT id, task_id, at, kind, to_status, data FROM events"
            " WHERE id > ? AND kind IN ('status', 'landed') ORDER BY id LIMIT ?",
            (start, limit),
        )
        # Past every event read (the whole log when fewer than `limit` were worth reading).
        end = found[-1]["id"] if len(found) == limit else _latest(tx)
        for event in found:
            kind = kind_of(event)
            if kind is None or kind not in kinds or event["at"] < now - max_age:
                continue
            for sink in sinks:
                cursor = tx.execute(
                    "INSERT OR IGNORE INTO notifications (event_id, task_id, sink, kind,"
                    " next_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (event["id"], event["task_id"], sink, kind, tx.now, tx.now),
                )
                queued += cursor.rowcount
        tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (CURSOR_KEY, str(end), tx.now),
        )
    return queued


def _latest(tx: Tx) -> int:
    return int(tx.value("SELECT coalesce(max(id), 0) FROM events"))


def _cursor(tx: Tx) -> int:
    value = tx.value("SELECT value FROM settings WHERE key = ?", (CURSOR_KEY,))
    return int(value or 0)


def _cursor_outside(db: sqlite_utils.Database) -> int:
    found = rows(db.conn, "SELECT value FROM settings WHERE key = ?", (CURSOR_KEY,))
    return int(found[0]["value"]) if found else 0


def claim(
    db: sqlite_utils.Database,
    *,
    claimer: str,
    now: float,
    hold: float,
    sinks: list[str],
    limit: int = 16,
) -> list[Delivery]:
    """Due deliveries to `sinks`, held by `claimer` for `hold` seconds (others skip them)."""
    if not sinks:
        return []
    marks = ", ".join("?" * len(sinks))
    with transaction(db, now=now) as tx:
        found = tx.all(
            "SELECT n.id, n.event_id, n.task_id, n.sink, n.kind, n.attempts, e.at, e.data"
            " FROM notifications n INDEXED BY notifications_due JOIN events e"
            " ON e.id = n.event_id WHERE n.sent_at IS NULL AND n.gave_up_at IS NULL"
            f" AND n.next_at <= ? AND n.sink IN ({marks})"
            " AND (n.claimed_until IS NULL OR n.claimed_until < ?)"
            " ORDER BY n.next_at, n.id LIMIT ?",
            (tx.now, *sinks, tx.now, limit),
        )
        for row in found:
            tx.execute(
                "UPDATE notifications SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                (claimer, tx.now + hold, row["id"]),
            )
    out = []
    for row in found:
        data = json.loads(row["data"]) if row["data"] else {}
        reason = data.get("reason") if isinstance(data, dict) else None
        out.append(
            Delivery(
                id=row["id"],
                event_id=row["event_id"],
                task_id=row["task_id"],
                sink=row["sink"],
                kind=row["kind"],
                attempts=row["attempts"],
                at=row["at"],
                reason=reason if isinstance(reason, str) else None,
                data=data if isinstance(data, dict) else {},
            )
        )
    return out


def next_due(db: sqlite_utils.Database, sinks: list[str]) -> float | None:
    """When the next pending delivery to `sinks` is due (None: nothing pending)."""
    if not sinks:
        return None
    marks = ", ".join("?" * len(sinks))
    found = rows(
        db.conn,
        "SELECT min(CASE WHEN coalesce(claimed_until, 0) > next_at THEN claimed_until"
        " ELSE next_at END) AS due"
        " FROM notifications INDEXED BY notifications_due"
        f" WHERE sent_at IS NULL AND gave_up_at IS NULL AND sink IN ({marks})",
        sinks,
    )
    return found[0]["due"]


def sent(db: sqlite_utils.Database, delivery_id: int, *, claimer: str) -> None:
    with transaction(db) as tx:
        tx.execute(
            "UPDATE notifications SET sent_at = ?, attempts = attempts + 1, error = NULL,"
            " claimed_until = NULL WHERE id = ? AND claimed_by = ?",
            (tx.now, delivery_id, claimer),
        )


def retry_later(
    db: sqlite_utils.Database, delivery_id: int, *, claimer: str, error: str, at: float
) -> None:
    with transaction(db) as tx:
        tx.execute(
            "UPDATE notifications SET attempts = attempts + 1, error = ?, next_at = ?,"
            " claimed_until = NULL WHERE id = ? AND claimed_by = ?",
            (error[:2000], at, delivery_id, claimer),
        )


def give_up(db: sqlite_utils.Database, delivery_id: int, *, claimer: str, error: str) -> None:
    with transaction(db) as tx:
        tx.execute(
            "UPDATE notifications SET attempts = attempts + 1, error = ?, gave_up_at = ?,"
            " claimed_until = NULL WHERE id = ? AND claimed_by = ?",
            (error[:2000], tx.now, delivery_id, claimer),
        )


def history(db: sqlite_utils.Database, *, limit: int = 100) -> list[dict]:
    """The newest notifications with what became of them (newest first)."""
    return rows(
        db.conn,
        "SELECT id, event_id, task_id, sink, kind, attempts, sent_at, gave_up_at, error,"
        " created_at FROM notifications ORDER BY id DESC LIMIT ?",
        (limit,),
    )
