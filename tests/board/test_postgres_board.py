"""What only the PostgreSQL board has: a server that drops its connections, and one URL
shared by processes that must never show its password."""

from __future__ import annotations

import psycopg
import pytest

from board import connection, errors, tasks


def drop_other_connections(url: str) -> None:
    """What a server restart or a network cut does to every other connection."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = current_database()"
        )


def test_a_dropped_connection_is_busy_once_then_opened_again(pg_url: str) -> None:
    db = connection.connect(pg_url)
    task_id = tasks.create(db, tasks.NewTask("before the cut"))
    drop_other_connections(pg_url)
    with pytest.raises(errors.BoardBusy, match="unavailable for now"):
        tasks.get(db, task_id)
    assert tasks.get(db, task_id).title == "before the cut"  # a long-lived process goes on
    assert tasks.create(db, tasks.NewTask("after the cut")) == task_id + 1
    db.conn.close()


def test_a_transaction_cut_short_writes_nothing_and_is_retried_whole(pg_url: str) -> None:
    db = connection.connect(pg_url)
    with pytest.raises(errors.BoardBusy):
        with connection.transaction(db) as tx:
            tasks.insert(tx, tasks.NewTask("half written"))
            drop_other_connections(pg_url)
            tx.execute("SELECT 1")  # the connection is gone: the transaction with it
    assert not db.conn.in_transaction
    assert [t.title for t in tasks.list_tasks(db)] == []  # nothing of it was written
    tasks.create(db, tasks.NewTask("the retry"))
    assert [t.title for t in tasks.list_tasks(db)] == ["the retry"]
    db.conn.close()
