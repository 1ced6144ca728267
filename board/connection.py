"""Opening the board and the one helper that opens write transactions.

The dispatcher, the CLI and every MCP server process write the same SQLite file at once, so:
WAL (readers never block the writer), a generous ``busy_timeout``, ``BEGIN IMMEDIATE`` for
every write transaction (take the write lock up front instead of failing on upgrade), and short
transactions. ``synchronous=NORMAL`` in WAL mode survives a crash of any process; only a power
loss can drop the last commits.

Only SQLite ever opens the board file: closing any other descriptor of it would drop SQLite's
POSIX locks for the whole process (../shared/benchmarking.md, trap 1).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import sqlite3
import time
import typing
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from board import errors, migrations, pg_schema, postgres, wake

BUSY_TIMEOUT_MS = 30_000
BUSY_TIMEOUT_ENV = "KANBAN_BUSY_TIMEOUT"  # seconds; tests and impatient scripts lower it
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def default_path() -> Path:
    """``$KANBAN_DB``, else ``~/.kanban/board.db`` (a home of our own, apart from Hermes').

    Always absolute (see `resolve`).
    """
    env = os.environ.get("KANBAN_DB")
    return resolve(env) if env else Path(os.path.abspath(Path.home() / ".kanban" / "board.db"))


def resolve(path: str | os.PathLike[str] | None = None) -> Path:
    """The board's location as an absolute path: `path`, else `default_path()`.

    Resolved once, here: the dispatcher hands `path_of` to every process it starts, and those
    run in worktrees elsewhere, where a relative path would name another board. Locations a
    SQLite board cannot live at (a URL, a NUL byte) are refused.
    """
    if path is None:
        return default_path()
    text = os.fspath(path)
    if not text.strip():
        raise errors.BoardError("the board's path is empty; pass --db the path of a board file")
    if "\0" in text:
        raise errors.BoardError("the board's path contains a NUL byte; pass a file path")
    if _URL.match(text):
        # The URL is not repeated: it may carry a password.
        scheme = text.split(":", 1)[0].lower()
        raise errors.BoardError(
            f"{scheme}:// locations are not supported: a board is a SQLite file or a "
            "postgresql:// database; pass --db (or KANBAN_DB) e.g. ~/.kanban/board.db"
        )
    return Path(os.path.abspath(Path(text).expanduser()))


ENV_REFERENCE = "env:KANBAN_DB"  # `--db` for a process that finds the board in its environment


def location(path: str | os.PathLike[str] | None = None) -> str:
    """Where the board is: a PostgreSQL URL as given, a file as an absolute path (`resolve`).

    `path` None: ``$KANBAN_DB``, else the default file. ``env:KANBAN_DB`` (`ENV_REFERENCE`):
    the variable's value, for processes kanban starts on a PostgreSQL board (`handed`).
    """
    if path is not None and os.fspath(path) == ENV_REFERENCE:
        path = os.environ.get("KANBAN_DB") or ""
        if not path:
            raise errors.BoardError(f"--db {ENV_REFERENCE} but $KANBAN_DB is not set")
    if path is None:
        path = os.environ.get("KANBAN_DB") or None
    if path is not None and postgres.is_url(os.fspath(path)):
        return os.fspath(path)
    return str(resolve(path))


def shown(where: str) -> str:
    """The board's location for people (messages, logs): a URL without its password."""
    return postgres.redacted(where) if postgres.is_url(where) else where


def handed(where: str) -> tuple[str, dict[str, str]]:
    """How to hand the board at `where` to a process kanban starts: its ``--db`` argument and
    what to add to its environment. A PostgreSQL URL (it may hold a password) goes in the
    environment, never on a command line, where every local user could read it."""
    if postgres.is_url(where):
        return ENV_REFERENCE, {"KANBAN_DB": where}
    return where, {}


def is_postgres(db_or_location: object) -> bool:
    """Is this board (a connection, or a location) on PostgreSQL?"""
    if isinstance(db_or_location, str | os.PathLike):
        return postgres.is_url(os.fspath(db_or_location))
    return isinstance(getattr(db_or_location, "conn", None), postgres.Connection)


def busy_timeout_ms() -> int:
    """How long a statement waits for another process's write lock before failing.

    ``$KANBAN_BUSY_TIMEOUT`` (seconds) if set, else `BUSY_TIMEOUT_MS`.
    """
    text = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not text:
        return BUSY_TIMEOUT_MS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= 86_400):
        raise errors.BoardError(
            f"${BUSY_TIMEOUT_ENV} is {text!r}; it must be a number of seconds from 0 to 86400"
        )
    return int(seconds * 1000)


def connect(
    path: str | os.PathLike[str] | None = None, *, create: bool = True
) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the board at `path`.

    With ``create=False`` (read commands) a board that does not exist is not created:
    `errors.BoardNotFound` says where it was looked for.

    Example::

        db = connection.connect("/tmp/board.db")
        with connection.transaction(db) as tx:
            tx.execute("...")

    `path` may be a ``postgresql://`` URL: the board is then that database (`postgres`).
    """
    where = location(path)
    if postgres.is_url(where):
        return _connect_postgres(where, create=create)
    target = Path(where)
    if target.is_dir():
        raise errors.BoardError(f"{target} is a directory; pass --db the path of a board file")
    if not create and not target.exists():
        raise errors.BoardNotFound(str(target))
    if create:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.BoardError(
                f"cannot create the board's directory {target.parent}: {exc.strerror}; "
                "pass --db (or set KANBAN_DB to) a path in a writable directory"
            ) from exc
    busy_ms = busy_timeout_ms()
    # mode=rw never creates the file, even if it vanished since the check above.
    uri = f"file:{urllib.parse.quote(str(target))}?mode={'rwc' if create else 'rw'}"
    try:
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise errors.BoardError(f"cannot switch {target} to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if migrations.pending(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                migrations.apply(conn)  # re-reads user_version under the write lock
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise errors.BoardError(_explain(target, exc)) from exc
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > migrations.latest():
        raise errors.BoardError(
            f"{target} was written by a newer kanban (schema {version}, this one knows "
            f"{migrations.latest()}); upgrade kanban"
        )
    db = sqlite_utils.Database(conn)
    db.kanban_path = str(target)  # type: ignore[attr-defined]
    return db


class PostgresBoard:
    """A board on PostgreSQL: what `connect` returns there, in place of a
    `sqlite_utils.Database` (the board's modules use only its ``conn``)."""

    def __init__(self, conn: postgres.Connection, url: str) -> None:
        self.conn = conn
        self.kanban_path = url


def _connect_postgres(url: str, *, create: bool) -> sqlite_utils.Database:
    conn = postgres.Connection(url)
    try:
        version = _pg_version(conn)
        if version is None and not create:
            raise errors.BoardNotFound(postgres.redacted(url))
        if version is None or version < pg_schema.latest():
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (postgres.WRITE_LOCK,))
                _pg_migrate(conn)  # re-reads the version under the lock
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            version = _pg_version(conn)
        assert version is not None
        if version > pg_schema.latest():
            raise errors.BoardError(
                f"{postgres.redacted(url)} was written by a newer kanban (schema {version}, "
                f"this one knows {pg_schema.latest()}); upgrade kanban"
            )
    except BaseException:
        conn.close()
        raise
    # The board's modules take a `sqlite_utils.Database` and use nothing of it but `conn`.
    return typing.cast(sqlite_utils.Database, PostgresBoard(conn, url))


def _pg_version(conn: postgres.Connection) -> int | None:
    found = conn.execute("SELECT to_regclass('kanban_schema') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return None
    row = conn.execute("SELECT version FROM kanban_schema").fetchone()
    return None if row is None else int(row[0])


def _pg_migrate(conn: postgres.Connection) -> None:
    version = _pg_version(conn)
    if version is None:
        conn.execute("CREATE TABLE kanban_schema (version BIGINT NOT NULL)")
        for statement in pg_schema.base():
            conn.execute(statement)
        conn.execute("INSERT INTO kanban_schema (version) VALUES (?)", (pg_schema.BASE,))
        # The board's own id, as SQLite's m004 makes it (`identity`).
        conn.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ('board_id', ?, 0)",
            (json.dumps(secrets.token_hex(4)),),
        )
        version = pg_schema.BASE
    for number in range(version + 1, pg_schema.latest() + 1):
        for statement in pg_schema.LATER[number]():
            conn.execute(statement)
        conn.execute("UPDATE kanban_schema SET version = ?", (number,))


def schema_version(db: sqlite_utils.Database) -> int:
    """The board's schema version (its migrations applied)."""
    if is_postgres(db):
        return _pg_version(db.conn) or 0  # type: ignore[arg-type]
    return int(db.conn.execute("PRAGMA user_version").fetchone()[0])


def local_day(db: sqlite_utils.Database, epoch: str) -> str:
    """SQL for the local date (``YYYY-MM-DD``) of the epoch seconds `epoch` (a column)."""
    if is_postgres(db):
        return f"to_char(to_timestamp({epoch}), 'YYYY-MM-DD')"
    return f"date({epoch}, 'unixepoch', 'localtime')"


def path_of(db: sqlite_utils.Database) -> str:
    return db.kanban_path  # type: ignore[attr-defined]


def check_intact(db: sqlite_utils.Database) -> None:
    """Raise `errors.BoardError` unless SQLite's quick check finds the board file intact.

    For the dispatcher, before its first write: on a damaged board it would otherwise fail at
    some later read, having written to the file meanwhile. (About 50 ms for 20,000 tasks.)
    A PostgreSQL server checks its own pages: there, nothing to do.
    """
    if is_postgres(db):
        return
    try:
        verdict = [row[0] for row in db.conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.Error as exc:
        raise _error(path_of(db), exc) from exc
    if verdict != ["ok"]:
        raise errors.BoardError(_damaged(Path(path_of(db)), "; ".join(verdict)))


def failure(path: str, exc: sqlite3.Error) -> errors.BoardError:
    """The kanban error for a SQLite error raised outside `transaction` (a plain read)."""
    return _error(path, exc)


def _damaged(path: Path, detail: str) -> str:
    return (
        f"the board {path} is damaged ({detail}); `kanban doctor` checks it: restore it from a "
        f"backup (`sqlite3 {path} .recover` may save what is left)"
    )


def _explain(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return (
            f"cannot write the board {path} ({text}); check the file's permissions or pass "
            "--db a writable path"
        )
    if "malformed" in text:
        return _damaged(path, text)
    if "not a database" in text:
        return f"{path} is not a kanban board ({text}); pass --db the path of a board file"
    return f"board {path}: {text}"


class Tx:
    """A write transaction in progress: statements, row helpers and one clock reading."""

    __slots__ = ("conn", "now", "wake")

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.wake = False  # set when a dispatcher should look at the board after commit

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        cursor = self.conn.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

    def all(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return rows(self.conn, sql, params)

    def value(self, sql: str, params: Any = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


def rows(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    try:
        cursor = conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]
    except sqlite3.OperationalError as exc:
        raise _error("the board", exc) from exc


# SQLite's words for failures that pass: the write lock held past the busy timeout, a full
# disk, a failing read or write. Nothing was written; the same call may succeed later.
_TRANSIENT = ("locked", "busy", "disk is full", "disk i/o error", "out of memory")


def _error(path: str, exc: sqlite3.Error) -> errors.BoardError:
    """The kanban error for a SQLite failure: `errors.BoardBusy` when it is transient."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(word in text for word in _TRANSIENT):
        return errors.BoardBusy(
            f"the board {path} is unavailable for now ({exc}): another process may hold its"
            " write lock, or its disk is full; try again, and see `kanban doctor`"
        )
    return errors.BoardError(_explain(Path(path), exc))


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database, *, now: float | None = None) -> Iterator[Tx]:
    """The one place that opens and ends write transactions (``BEGIN IMMEDIATE``).

    Rolls back on any exception; wraps SQLite's own errors in `errors.BoardError`; after a
    commit that changed what dispatchers should do, wakes them (see `wake`).
    """
    conn: sqlite3.Connection = db.conn
    on_postgres = isinstance(conn, postgres.Connection)
    if conn.in_transaction:
        raise RuntimeError("board transactions do not nest")
    try:
        if on_postgres:
            conn.execute("BEGIN")
            # Writers one at a time, as BEGIN IMMEDIATE makes them on SQLite.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (postgres.WRITE_LOCK,))
        else:
            conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise _error(path_of(db), exc) from exc
    except errors.BoardError:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    tx = Tx(conn, time.time() if now is None else now)
    try:
        yield tx
        if tx.wake and on_postgres:
            conn.execute(f"NOTIFY {postgres.CHANNEL}")  # delivered at commit, to every host
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise _error(path_of(db), exc) from exc
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise _error(path_of(db), exc) from exc
    if tx.wake and not on_postgres:
        wake.notify(conn)


def read(db: sqlite_utils.Database, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    """Rows of a read-only query, as dicts (a consistent snapshot, outside any transaction)."""
    return rows(db.conn, sql, params)


def inspect(path: str | os.PathLike[str]) -> tuple[list[str], int]:
    """``PRAGMA integrity_check`` and the schema version of a board, opened read-only.

    Read-only through SQLite only (never plain file I/O: closing any other descriptor of the
    file would drop SQLite's locks for this whole process), and without migrating it.
    """
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            verdict = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise errors.BoardError(f"{path}: {exc}") from exc
    return verdict, version
