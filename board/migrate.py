"""Moving a board from SQLite to PostgreSQL (`kanban migrate-board`).

Everything is copied, ids included (branches, worktrees and logs are named after the board's
id and its task ids, so the board keeps its id), in one transaction on the target: a failure
leaves the target as empty as it was. The source is only read. Then every table's rows are
counted on both sides.

The source must be at rest: no run may be live (its shim would go on writing to the old
file) and no dispatcher registered. The target must be a new board: no task on it.
"""

from __future__ import annotations

import dataclasses

import sqlite_utils

from board import connection, errors, ids, postgres
from board.connection import rows

# Parents before children (foreign keys): tasks before their deps, runs, events, comments.
TABLES = (
    "settings",
    "batches",
    "tasks",
    "deps",
    "runs",
    "events",
    "comments",
    "schedules",
    "schedule_fires",
    "notifications",
)
_IDENTITY = ("tasks", "runs", "events", "comments", "batches", "dispatchers", "notifications")


@dataclasses.dataclass(frozen=True)
class Moved:
    counts: dict[str, int]  # rows per table, equal on both sides
    board_id: str


def move(source: str, target: str) -> Moved:
    """Copy the SQLite board at `source` into the new PostgreSQL board at `target`."""
    if not postgres.is_url(target):
        raise errors.InvalidInput(
            "--to must be a postgresql:// URL (the password in $PGPASSWORD or ~/.pgpass "
            "keeps it off the command line)"
        )
    if connection.is_postgres(source):
        raise errors.InvalidInput("--from must be a SQLite board file")
    old = connection.connect(source, create=False)
    try:
        _check_at_rest(old, source)
        new = connection.connect(target)
        try:
            if connection.schema_version(old) != connection.schema_version(new):
                raise errors.BoardError(
                    f"the boards' schemas differ ({connection.schema_version(old)} and "
                    f"{connection.schema_version(new)}); use one version of kanban for both"
                )
            counts = _copy(old, new, target)
            board_id = rows(old.conn, "SELECT value FROM settings WHERE key = 'board_id'")
        finally:
            new.conn.close()
    finally:
        old.conn.close()
    return Moved(counts, str(board_id[0]["value"]).strip('"') if board_id else "")


def _check_at_rest(db: sqlite_utils.Database, source: str) -> None:
    live = rows(db.conn, "SELECT id, task_id FROM runs WHERE ended_at IS NULL ORDER BY id")
    if live:
        named = ", ".join(f"run {r['id']} of {ids.format(r['task_id'])}" for r in live[:5])
        raise errors.InvalidInput(
            f"{source} has live runs ({named}): stop its dispatchers (`kanban dispatch` ends "
            "them on Ctrl-C twice; their runs then settle) and let them settle first"
        )
    registered = rows(db.conn, "SELECT id, host, pid FROM dispatchers")
    if registered:
        named = ", ".join(f"{r['id']} (pid {r['pid']} on {r['host']})" for r in registered)
        raise errors.InvalidInput(
            f"dispatchers are registered on {source}: {named}; stop them first"
        )


def _columns(conn: object, table: str) -> list[str]:
    found = conn.execute(  # type: ignore[attr-defined]
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    ).fetchall()
    return [row[0] for row in found]


def _copy(old: sqlite_utils.Database, new: sqlite_utils.Database, target: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with connection.transaction(new) as tx:
        if tx.value("SELECT count(*) FROM tasks"):
            raise errors.InvalidInput(
                f"{postgres.redacted(target)} already holds tasks: migrate into a new database"
            )
        tx.execute("DELETE FROM settings")  # its own board id, made when it was created
        for table in TABLES:
            columns = _columns(tx.conn, table)
            found = rows(old.conn, f"SELECT * FROM {table}")
            shared = [c for c in (found[0] if found else {}) if c in columns]
            marks = ", ".join("?" * len(shared))
            names = ", ".join(shared)
            for row in found:
                tx.execute(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})", [row[c] for c in shared]
                )
            counts[table] = len(found)
        for table in _IDENTITY:
            # Identity columns go on after the highest id copied (SQLite never reuses one).
            tx.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        # Dispatcher ids go on after those the runs name, as m004 ensures on SQLite.
        highest = rows(old.conn, "SELECT max(dispatcher_id) AS id FROM runs")[0]["id"] or 0
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('dispatchers', 'id'), ?, false)",
            (max(highest, tx.value("SELECT coalesce(max(id), 0) FROM dispatchers")) + 1,),
        )
    for table, expected in counts.items():
        got = rows(new.conn, f"SELECT count(*) AS n FROM {table}")[0]["n"]
        if got != expected:
            raise errors.BoardError(
                f"after the copy {table} has {got} rows on {postgres.redacted(target)}, "
                f"{expected} on the source: the copy is not to be trusted"
            )
    return counts
