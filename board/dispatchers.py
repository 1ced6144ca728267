"""Running dispatchers, as the board knows them: who they are, how to wake them, who is alive.

Each run records the dispatcher that supervises it, and the host it runs on. A run whose
dispatcher is gone (its process ended, or it stopped beating) is *orphaned*: another
dispatcher adopts it with a compare-and-set, so exactly one takes it over.

A host is named by `host`: the machine's hostname, or ``$KANBAN_HOST`` where it is set (for
tests that play several hosts on one machine, and for containers whose hostnames change or
repeat). Two machines must never share a name: a dispatcher watches the processes of its own
host's runs by pid, and would take another machine's pids for its own.
"""

from __future__ import annotations

import os
import socket

import sqlite_utils

from board import records
from board.connection import rows, transaction

HOST_ENV = "KANBAN_HOST"


def host() -> str:
    """This host's name, as the board records it on dispatchers, runs and tool servers."""
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


def register(
    db: sqlite_utils.Database,
    *,
    pid: int,
    pid_started_at: float | None,
    host: str,
    wake_address: str | None,
) -> int:
    with transaction(db) as tx:
        cursor = tx.execute(
            "INSERT INTO dispatchers (pid, pid_started_at, host, wake_address, started_at,"
            " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
            (pid, pid_started_at, host, wake_address, tx.now, tx.now),
        )
        return cursor.lastrowid or 0


def beat(db: sqlite_utils.Database, dispatcher_id: int, *, lease: float | None = None) -> bool:
    """The dispatcher is alive; with `lease`, so are the runs it holds: their leases are
    extended to at least `lease` seconds from now (a worker's heartbeats extend them too).

    False when the dispatcher's registration is gone: another dispatcher took it for dead.
    """
    with transaction(db) as tx:
        cursor = tx.execute(
            "UPDATE dispatchers SET heartbeat_at = ? WHERE id = ?", (tx.now, dispatcher_id)
        )
        if lease is not None:
            tx.execute(
                "UPDATE runs SET lease_expires_at = ? WHERE dispatcher_id = ?"
                " AND ended_at IS NULL AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
                (tx.now + lease, dispatcher_id, tx.now + lease),
            )
        return cursor.rowcount == 1


def unregister(db: sqlite_utils.Database, dispatcher_id: int) -> None:
    with transaction(db) as tx:
        tx.execute("DELETE FROM dispatchers WHERE id = ?", (dispatcher_id,))


def forget(db: sqlite_utils.Database, dispatcher_ids: list[int]) -> None:
    """Drop the registrations of dispatchers known to be dead."""
    if not dispatcher_ids:
        return
    with transaction(db) as tx:
        tx.execute(
            f"DELETE FROM dispatchers WHERE id IN ({', '.join('?' * len(dispatcher_ids))})",
            dispatcher_ids,
        )


def all_(db: sqlite_utils.Database) -> list[records.Dispatcher]:
    found = rows(db.conn, "SELECT * FROM dispatchers ORDER BY id")
    return [records.Dispatcher.from_row(row) for row in found]


def adopt(db: sqlite_utils.Database, run_id: int, new_owner: int, *, old_owner: int | None) -> bool:
    """Take over an orphaned run; False if someone else already did (or it ended)."""
    with transaction(db) as tx:
        cursor = tx.execute(
            "UPDATE runs SET dispatcher_id = ? WHERE id = ? AND ended_at IS NULL"
            " AND dispatcher_id IS NOT DISTINCT FROM ?",
            (new_owner, run_id, old_owner),
        )
        return cursor.rowcount == 1
