"""What the web board reads: columns a page at a time, and what changed since a cursor.

The board page shows each status as a column of at most a page of tasks, so its cost does not
grow with the board: open columns in board order (priority, then age), ended ones most
recent first. A page after the first starts after the last task shown (a key, not an offset).

Changes are found without a wake-up from the writer: `data_version` tells in microseconds
whether another connection committed since the last look, and the ids of events and comments
are cursors, so what changed since is a range read of their primary keys.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import sqlite_utils

from board import records, states
from board.connection import rows, transaction
from board.states import Status

_SERVER_KEY = "web_server"
_TOKEN_KEY = "web_token"

# A column's order, and how a task's place in it is written (`sort_key`).
_OPEN_ORDER = "priority DESC, id"
_ENDED_ORDER = "ended_at DESC, id DESC"  # ended tasks always have ended_at (tasks_ended)


@dataclasses.dataclass(frozen=True)
class Cursor:
    """The newest event and comment seen: what a change feed has told so far."""

    events: int = 0
    comments: int = 0

    @property
    def label(self) -> str:
        return f"{self.events}.{self.comments}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        try:
            events, comments = (int(part) for part in (text or "").split("."))
        except ValueError:
            return None
        return cls(events, comments)


def data_version(db: sqlite_utils.Database) -> int | str:
    """A value that changes whenever another connection commits to the board.

    SQLite answers from its shared memory in microseconds. Another engine gives the newest
    event and comment ids instead (two index lookups): they move with every change a page
    shows, if not with a heartbeat.
    """
    if not isinstance(db.conn, sqlite3.Connection):
        return cursor(db).label
    try:
        return int(db.conn.execute("PRAGMA data_version").fetchone()[0])
    except sqlite3.Error:
        return -1  # a locked or vanished board: look again next time


def cursor(db: sqlite_utils.Database) -> Cursor:
    found = rows(
        db.conn,
        "SELECT (SELECT coalesce(max(id), 0) FROM events) AS events,"
        " (SELECT coalesce(max(id), 0) FROM comments) AS comments",
    )[0]
    return Cursor(found["events"], found["comments"])


def changes(
    db: sqlite_utils.Database, since: Cursor, *, limit: int = 500
) -> tuple[Cursor, list[int], bool]:
    """The tasks with events or comments after `since`: (the new cursor, their ids, whether
    there were more than `limit` of them, in which case the ids are not all there)."""
    events = rows(
        db.conn,
        "SELECT id, task_id FROM events WHERE id > ? ORDER BY id LIMIT ?",
        (since.events, limit + 1),
    )
    comments = rows(
        db.conn,
        "SELECT id, task_id FROM comments WHERE id > ? ORDER BY id LIMIT ?",
        (since.comments, limit + 1),
    )
    overflow = len(events) > limit or len(comments) > limit
    if overflow:
        return cursor(db), [], True
    found = dict.fromkeys(r["task_id"] for r in [*events, *comments])
    new = Cursor(
        events[-1]["id"] if events else since.events,
        comments[-1]["id"] if comments else since.comments,
    )
    return new, list(found), len(found) > limit


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Tasks per status, every status named (through the status index: no table scan)."""
    found = {status.value: 0 for status in Status}
    for row in rows(db.conn, "SELECT status, count(*) AS n FROM tasks GROUP BY status"):
        found[row["status"]] = row["n"]
    return found


def is_ended(status: str) -> bool:
    return status in states.ENDED


def sort_key(task: records.Task) -> list[float]:
    """A task's place in its column, smallest first (what `column` orders by)."""
    if is_ended(task.status):
        return [-(task.ended_at or 0.0), -task.id]
    return [-task.priority, task.id]


def column(
    db: sqlite_utils.Database,
    status: str,
    *,
    limit: int,
    after: Sequence[float] | None = None,
) -> list[records.Task]:
    """The tasks of one column in its order, at most `limit`, after the key `after`."""
    Status(status)  # a ValueError for anything else
    where: list[str] = ["status = ?"]
    params: list[Any] = [status]
    if is_ended(status):
        where.append("ended_at IS NOT NULL")  # says the partial index `tasks_ended` applies
    if after is not None:
        first, second = after
        if is_ended(status):
            # Keys are negated: ended_at descending, then id descending.
            where.append("(ended_at < ? OR (ended_at = ? AND id < ?))")
            params += [-first, -first, -second]
        else:
            where.append("(priority < ? OR (priority = ? AND id > ?))")
            params += [-first, -first, second]
    order = _ENDED_ORDER if is_ended(status) else _OPEN_ORDER
    found = rows(
        db.conn,
        f"SELECT * FROM tasks WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
        [*params, int(limit)],
    )
    return [records.Task.from_row(row) for row in found]


def tasks_by_id(db: sqlite_utils.Database, task_ids: Sequence[int]) -> list[records.Task]:
    found: list[records.Task] = []
    for start in range(0, len(task_ids), 500):
        chunk = list(task_ids[start : start + 500])
        marks = ", ".join("?" * len(chunk))
        found += [
            records.Task.from_row(row)
            for row in rows(db.conn, f"SELECT * FROM tasks WHERE id IN ({marks})", chunk)
        ]
    return sorted(found, key=lambda task: task.id)


def batches(db: sqlite_utils.Database, *, limit: int = 200) -> list[dict[str, Any]]:
    """The newest batches with their tasks' counts by status."""
    found = rows(
        db.conn,
        "SELECT id, name, source, schedule, created_at, budget_tokens, budget_usd"
        " FROM batches ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    for batch in found:
        batch["id"] = f"b_{batch['id']}"
        batch["counts"] = {
            row["status"]: row["n"]
            for row in rows(
                db.conn,
                "SELECT status, count(*) AS n FROM tasks WHERE batch_id = ? GROUP BY status",
                (batch["id"],),
            )
        }
    return found


def record_server(db: sqlite_utils.Database, url: str, pid: int) -> None:
    """Where `kanban serve` listens, for links in notifications."""
    _put(db, _SERVER_KEY, json.dumps({"url": url, "pid": pid}))


def server_url(db: sqlite_utils.Database) -> str | None:
    value = _get(db, _SERVER_KEY)
    try:
        return str(json.loads(value)["url"]) if value else None
    except (ValueError, KeyError, TypeError):
        return None


def token_hash(db: sqlite_utils.Database) -> str | None:
    """The hash of the web board's token (the token itself is never stored)."""
    value = _get(db, _TOKEN_KEY)
    try:
        found = json.loads(value) if value else None
    except ValueError:
        return None
    return found if isinstance(found, str) else None


def set_token_hash(db: sqlite_utils.Database, hashed: str) -> None:
    _put(db, _TOKEN_KEY, json.dumps(hashed))


def _get(db: sqlite_utils.Database, key: str) -> str | None:
    found = rows(db.conn, "SELECT value FROM settings WHERE key = ?", (key,))
    return found[0]["value"] if found else None


def _put(db: sqlite_utils.Database, key: str, value: str) -> None:
    with transaction(db) as tx:
        tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (key, value, tx.now),
        )
