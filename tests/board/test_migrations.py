"""The board file: schema from numbered migrations, refusals of files it must not touch."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from board import (
    connection,
    dispatchers,
    errors,
    identity,
    migrations,
    pg_schema,
    runs,
    states,
    tasks,
)

M001_TABLES = {"tasks", "runs", "deps", "events", "comments", "dispatchers"}
M002_TABLES = {"batches", "schedules", "schedule_fires"}
M003_TABLES = {"settings"}
M004_TABLES = {"sqlite_sequence"}  # dispatchers' ids are AUTOINCREMENT: never reused
M008_TABLES = {"notifications"}
EXPECTED_TABLES = M001_TABLES | M002_TABLES | M003_TABLES | M004_TABLES | M008_TABLES
EXPECTED_INDEXES = {
    "tasks_ready": "tasks",
    "tasks_retry_at": "tasks",
    "tasks_status": "tasks",
    "tasks_parent": "tasks",
    "tasks_batch": "tasks",
    "runs_one_unended": "runs",
    "runs_task": "runs",
    "runs_token_hash": "runs",
    "runs_started": "runs",
    "tasks_created_by_run": "tasks",
    "deps_blocked": "deps",
    "events_task": "events",
    "comments_task": "comments",
    "notifications_due": "notifications",
    "tasks_ended": "tasks",
}
EXPECTED_TRIGGERS = {"events_no_update", "events_no_delete"}


def schema(conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {"table": {}, "index": {}, "trigger": {}, "view": {}}
    for kind, name, table in conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%'"
    ):
        found[kind][name] = table
    return found


def index_flags(conn: sqlite3.Connection, table: str) -> dict[str, tuple[bool, bool]]:
    """{index name: (unique, partial)}."""
    return {
        row[1]: (bool(row[2]), bool(row[4])) for row in conn.execute(f"PRAGMA index_list({table})")
    }


def test_migrating_an_empty_file_yields_exactly_the_expected_schema(db_path: Path) -> None:
    db = connection.connect(db_path)
    try:
        found = schema(db.conn)
        assert set(found["table"]) == EXPECTED_TABLES
        assert found["index"] == EXPECTED_INDEXES
        assert set(found["trigger"]) == EXPECTED_TRIGGERS
        assert found["view"] == {}
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == migrations.latest() == len(migrations.MIGRATIONS)
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == connection.BUSY_TIMEOUT_MS
        assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        db.conn.close()


def test_one_unended_run_per_task_and_the_ready_queue_are_partial_indexes(db_path: Path) -> None:
    db = connection.connect(db_path)
    try:
        runs_indexes = index_flags(db.conn, "runs")
        task_indexes = index_flags(db.conn, "tasks")
        assert runs_indexes["runs_one_unended"] == (True, True)
        assert task_indexes["tasks_ready"] == (False, True)
        sql = db.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'runs_one_unended'"
        ).fetchone()[0]
        assert "WHERE ended_at IS NULL" in sql
        sql = db.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tasks_ready'").fetchone()
        assert "WHERE status = 'ready'" in sql[0]
    finally:
        db.conn.close()


def test_reconnecting_does_not_migrate_again(db_path: Path) -> None:
    first = connection.connect(db_path)
    schema_version = first.conn.execute("PRAGMA schema_version").fetchone()[0]
    first.conn.execute(
        "INSERT INTO dispatchers (pid, host, started_at, heartbeat_at) VALUES (1, 'h', 0, 0)"
    )
    first.conn.close()

    second = connection.connect(db_path)
    try:
        # Any CREATE or PRAGMA user_version would have bumped the schema cookie.
        assert second.conn.execute("PRAGMA schema_version").fetchone()[0] == schema_version
        assert second.conn.execute("SELECT count(*) FROM dispatchers").fetchone()[0] == 1
    finally:
        second.conn.close()


def test_dispatcher_ids_are_never_reused_even_after_the_highest_is_unregistered(
    db_path: Path,
) -> None:
    db = connection.connect(db_path)
    try:
        first = dispatchers.register(db, pid=1, pid_started_at=None, host="h", wake_address=None)
        dispatchers.unregister(db, first)
        second = dispatchers.register(db, pid=2, pid_started_at=None, host="h", wake_address=None)
        assert second > first
    finally:
        db.conn.close()


def test_m004_keeps_dispatcher_ids_above_those_runs_already_name(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("BEGIN")
    for number, migration in enumerate(migrations.MIGRATIONS[:3], start=1):
        migration(raw)
        raw.execute(f"PRAGMA user_version = {number}")
    raw.execute(
        "INSERT INTO tasks (title, status, runtime, created_at, updated_at)"
        " VALUES ('t', 'ready', 'command', 0, 0)"
    )
    # A run of dispatcher 7, which has since unregistered: the id must not come back.
    raw.execute(
        "INSERT INTO runs (task_id, attempt, kind, token, dispatcher_id, started_at)"
        " VALUES (1, 1, 'first', 'x', 7, 0)"
    )
    raw.execute("COMMIT")
    raw.close()

    db = connection.connect(db_path)
    try:
        fresh = dispatchers.register(db, pid=1, pid_started_at=None, host="h", wake_address=None)
        assert fresh == 8
        assert len(identity.board_id(db)) == 8
    finally:
        db.conn.close()


def test_every_board_has_an_id_of_its_own(tmp_path: Path) -> None:
    ids = set()
    for name in ("a.db", "b.db"):
        db = connection.connect(tmp_path / name)
        ids.add(identity.board_id(db))
        db.conn.close()
    assert len(ids) == 2


def test_a_board_written_by_a_newer_kanban_is_refused(db_path: Path) -> None:
    connection.connect(db_path).conn.close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {migrations.latest() + 1}")
    raw.close()

    with pytest.raises(errors.BoardError, match=r"newer kanban.*upgrade kanban"):
        connection.connect(db_path)


def test_a_file_that_is_not_a_database_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    # A fresh path no SQLite connection has opened, so plain file I/O cannot disturb its locks.
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"these are my notes, not a board\n" * 200)

    with pytest.raises(errors.BoardError, match=r"is not a kanban board.*--db"):
        connection.connect(junk)
    assert junk.read_bytes().startswith(b"these are my notes")


def test_a_directory_given_as_the_board_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.BoardError, match="is a directory"):
        connection.connect(tmp_path)


def test_an_unusable_board_directory_says_to_pass_a_writable_path(tmp_path: Path) -> None:
    # Tests run as root, for whom chmod does not stop writes: use a regular file as the parent.
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")

    for target in (not_a_directory / "board.db", not_a_directory / "sub" / "board.db"):
        with pytest.raises(errors.BoardError, match="writable directory") as caught:
            connection.connect(target)
        assert str(target.parent) in str(caught.value)
        assert isinstance(caught.value.__cause__, OSError)


def test_events_are_append_only(db_path: Path) -> None:
    db = connection.connect(db_path)
    try:
        db.conn.execute(
            "INSERT INTO tasks (title, status, runtime, created_at, updated_at)"
            " VALUES ('t', 'todo', 'hermes', 0, 0)"
        )
        db.conn.execute(
            "INSERT INTO events (task_id, at, kind, actor) VALUES (1, 0, 'created', 'operator')"
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.conn.execute("UPDATE events SET kind = 'edited'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.conn.execute("DELETE FROM events")
        assert db.conn.execute("SELECT kind FROM events").fetchall() == [("created",)]
    finally:
        db.conn.close()


def test_a_write_refused_by_the_schema_is_a_board_error_and_rolls_back(db_path: Path) -> None:
    db = connection.connect(db_path)
    try:
        with pytest.raises(errors.BoardError, match="append-only"):
            with connection.transaction(db) as tx:
                tx.execute(
                    "INSERT INTO tasks (title, status, runtime, created_at, updated_at)"
                    " VALUES ('t', 'todo', 'hermes', 0, 0)"
                )
                tx.execute(
                    "INSERT INTO events (task_id, at, kind, actor)"
                    " VALUES (1, 0, 'created', 'operator')"
                )
                tx.execute("DELETE FROM events")
        assert db.conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
        assert not db.conn.in_transaction
    finally:
        db.conn.close()


def test_the_check_constraint_accepts_every_status_and_rejects_an_unknown_one(
    db_path: Path,
) -> None:
    db = connection.connect(db_path)
    insert = (
        "INSERT INTO tasks (title, status, runtime, current_run_id, created_at, updated_at)"
        " VALUES ('t', ?, 'hermes', ?, 0, 0)"
    )
    try:
        for status in states.Status:
            db.conn.execute(insert, (status.value, 1 if status is states.Status.RUNNING else None))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            db.conn.execute(insert, ("in_review", None))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            db.conn.execute(insert, ("running", None))  # running needs a run
    finally:
        db.conn.close()


def test_m005_keeps_only_the_hash_of_a_run_token(db_path: Path) -> None:
    """A board from before m005 had tokens in the clear: after it, only their SHA-256."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path)
    conn.execute("BEGIN")
    for migration in migrations.MIGRATIONS[:4]:
        migration(conn)
    conn.execute("PRAGMA user_version = 4")
    conn.execute(
        "INSERT INTO tasks (title, status, runtime, current_run_id, created_at, updated_at)"
        " VALUES ('t', 'running', 'command', 1, 0, 0)"
    )
    conn.execute(
        "INSERT INTO runs (task_id, attempt, kind, token, started_at) VALUES (1, 1, 'first', ?, 0)",
        ("the-old-token",),
    )
    conn.commit()
    conn.close()

    db = connection.connect(db_path)
    try:
        columns = [row[1] for row in db.conn.execute("PRAGMA table_info(runs)")]
        assert "token" not in columns
        stored = db.conn.execute("SELECT token_hash FROM runs").fetchone()[0]
        assert stored == hashlib.sha256(b"the-old-token").hexdigest()
        assert runs.by_token(db, "the-old-token").id == 1  # the live worker keeps working
    finally:
        db.conn.close()


def test_m009_gives_every_run_a_host_and_runs_from_before_it_none(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN")
    for number, migration in enumerate(migrations.MIGRATIONS[:8], start=1):
        migration(conn)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute(
        "INSERT INTO tasks (title, status, runtime, created_at, updated_at)"
        " VALUES ('t', 'ready', 'command', 0, 0)"
    )
    conn.execute(
        "INSERT INTO runs (task_id, attempt, kind, token_hash, started_at, ended_at)"
        " VALUES (1, 1, 'first', 'x', 0, 1)"
    )
    conn.execute("COMMIT")
    conn.close()

    db = connection.connect(db_path)
    try:
        assert connection.schema_version(db) == 9
        assert runs.get(db, 1).host is None  # taken as this host's, as every run was then
    finally:
        db.conn.close()


def test_each_claimed_run_records_its_host_on_both_engines(db: sqlite_utils.Database) -> None:
    assert connection.schema_version(db) == migrations.latest() == pg_schema.latest() == 9
    tasks.create(db, tasks.NewTask("t", runtime="command", runtime_options={"argv": ["true"]}))
    [claim] = runs.claim(db, host="host-a")
    assert runs.get(db, claim.run_id).host == "host-a"
