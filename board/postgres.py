"""The board on PostgreSQL: the same queries as on SQLite, through a small dialect layer.

The board's modules speak one SQL, written for SQLite, through `sqlite3.Connection.execute`.
On PostgreSQL a `Connection` stands in for that connection: each statement is translated once
(`translate`, cached) and run through psycopg 3. The translation is mechanical and small:

- ``?`` placeholders become ``%s`` (and a literal ``%`` is doubled);
- ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``;
- ``INDEXED BY name`` (a hint for SQLite's planner) is dropped;
- ``printf('%010d', x)`` becomes ``lpad(x::text, 10, '0')``;
- an ``INSERT`` into a table with an ``id`` gets ``RETURNING id``, for ``cursor.lastrowid``.

Where the engines truly differ the board asks `dialect(db)` (a day from an epoch, the schema
version, an integrity check); that is the only other place that knows which engine it is on.

Transactions: SQLite serialises writers with ``BEGIN IMMEDIATE``; here every write
transaction takes the board's transaction-scoped advisory lock first, so writes are
serialised the same way and every invariant the board checks inside a transaction (a task's
one live run, fencing, dependency cycles, the budgets) holds exactly as on SQLite, from any
number of processes on any number of hosts. Reads take no lock (a statement sees a committed
snapshot, as in WAL mode). Wake-ups are ``NOTIFY`` on the board's channel, sent on commit
(`wake`).

A board's URL may carry a password: it is never put in an error message (`redacted`).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from board import errors

SCHEMES = ("postgresql", "postgres")
# The advisory lock every write transaction takes: one per database (a board is a database).
WRITE_LOCK = 0x6B616E62616E  # "kanban"
CHANNEL = "kanban_wake"

# Tables whose rows have an `id` the board reads back after an INSERT (`lastrowid`).
_ID_TABLES = frozenset(
    {"tasks", "runs", "events", "comments", "batches", "dispatchers", "notifications"}
)
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)
_PRINTF_PAD = re.compile(r"printf\('%0(\d+)d',\s*([\w.]+)\)")


def is_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


@functools.lru_cache(maxsize=1024)
def translate(sql: str, named: bool = False) -> tuple[str, bool]:
    """`sql` for PostgreSQL, and whether it returns the inserted row's id. `named`: its
    parameters are ``:name`` ones (given as a mapping)."""
    out = _INDEXED_BY.sub("", sql)
    out = _PRINTF_PAD.sub(lambda m: f"lpad(CAST({m[2]} AS TEXT), {m[1]}, '0')", out)
    out = _placeholders(out, named)
    insert = _INSERT.match(out)
    returns_id = False
    if insert:
        if insert[1]:
            out = _INSERT.sub(lambda m: f"INSERT INTO {m[2]}", out, count=1)
            out = _before_returning(out, " ON CONFLICT DO NOTHING")
        if insert[2].lower() in _ID_TABLES and not re.search(r"\bRETURNING\b", out, re.I):
            out += " RETURNING id"
            returns_id = True
    return out, returns_id


def _before_returning(sql: str, clause: str) -> str:
    found = re.search(r"\s+RETURNING\b", sql, re.IGNORECASE)
    return sql + clause if found is None else sql[: found.start()] + clause + sql[found.start() :]


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _placeholders(sql: str, named: bool) -> str:
    """``?`` (or ``:name``) to ``%s`` (``%(name)s``) outside string literals; a literal
    ``%`` doubled."""
    pieces = sql.split("'")  # odd pieces are inside a string literal ('' splits in two)
    for index in range(0, len(pieces)):
        piece = pieces[index].replace("%", "%%")
        if index % 2 == 0:
            piece = _NAMED.sub(r"%(\1)s", piece) if named else piece.replace("?", "%s")
        pieces[index] = piece
    return "'".join(pieces)


def _plain(value: Any) -> Any:
    """A value as SQLite would have returned it (sums are NUMERIC on PostgreSQL)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class Cursor:
    """The part of `sqlite3.Cursor` the board uses."""

    def __init__(self, cursor: Any, returns_id: bool) -> None:
        self._cursor = cursor  # None: a statement that had nothing to do
        self.lastrowid: int | None = None
        if returns_id:
            row = cursor.fetchone()
            self.lastrowid = None if row is None else row[0]
        self.rowcount: int = -1 if cursor is None else cursor.rowcount

    @property
    def description(self) -> Any:
        return None if self._cursor is None else self._cursor.description

    def fetchone(self) -> tuple | None:
        row = None if self._cursor is None else self._cursor.fetchone()
        return None if row is None else tuple(_plain(v) for v in row)

    def fetchall(self) -> list[tuple]:
        if self._cursor is None:
            return []
        return [tuple(_plain(v) for v in row) for row in self._cursor.fetchall()]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())


class Connection:
    """The part of `sqlite3.Connection` the board uses, over one psycopg connection.

    In autocommit mode, as the board's SQLite connections are (``isolation_level=None``): a
    statement outside ``BEGIN`` commits on its own.

    A connection the server dropped (a restart, a network cut) is opened again at the next
    statement outside a transaction, so a long-lived dispatcher carries on once the server is
    back. Inside a transaction it is not: what the transaction wrote is gone, so the statement
    fails as `errors.BoardBusy` (the caller retries the whole transaction) and the ROLLBACK
    that follows is a no-op.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._transaction = False  # between our BEGIN and its COMMIT or ROLLBACK
        self._connect()

    def _connect(self) -> None:
        import psycopg
        from psycopg.types.numeric import Int8Dumper

        try:
            self.raw = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            # Every integer as BIGINT, as SQLite has them (psycopg picks the smallest type,
            # which a recursive query's first row would then impose on every later one).
            self.raw.adapters.register_dumper(int, Int8Dumper)
            # Local days (`connection.local_day`) in this process's time zone, as on SQLite.
            offset = datetime.datetime.now().astimezone().utcoffset() or datetime.timedelta()
            self.raw.execute(f"SET TIME ZONE {offset.total_seconds() / 3600:+.4f}")
        except psycopg.Error as exc:
            raise errors.BoardError(
                f"cannot reach the board {redacted(self.url)} ({_first_line(exc)}); check that "
                "the server runs and the URL (--db or KANBAN_DB) is right, then `kanban doctor`"
            ) from exc

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        import psycopg

        verb = sql.lstrip()[:8].upper()
        if self.raw.closed:
            if self._transaction:
                self._transaction = verb not in ("ROLLBACK", "COMMIT")
                if verb == "ROLLBACK":
                    return Cursor(None, False)
                raise errors.BoardBusy(
                    f"the board {redacted(self.url)} went away in the middle of a transaction "
                    "(nothing of it was written); try again"
                )
            try:
                self._connect()
            except errors.BoardError as exc:
                raise errors.BoardBusy(f"{exc}; trying again") from exc
        named = isinstance(params, Mapping)
        text, returns_id = translate(sql, named)
        values = dict(params) if named else (tuple(params) or None)
        try:
            cursor = Cursor(self.raw.execute(text, values), returns_id)
        except psycopg.Error as exc:
            if self.raw.broken:
                self.raw.close()  # opened again at the next statement outside a transaction
            raise failure(self.url, exc) from exc
        if verb.startswith("BEGIN"):
            self._transaction = True
        elif verb.startswith(("COMMIT", "ROLLBACK")):
            self._transaction = False
        return cursor

    @property
    def in_transaction(self) -> bool:
        if self.raw.closed:
            return self._transaction
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK" if kind is not None else "COMMIT")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# PostgreSQL's SQLSTATE classes for failures that pass: a connection lost or refused,
# a serialization or deadlock failure, insufficient resources, an operator intervention.
_TRANSIENT_CLASSES = ("08", "40", "53", "57")


def failure(url: str, exc: Exception) -> errors.BoardError:
    """The kanban error for a psycopg error: `errors.BoardBusy` when it may pass."""
    state = getattr(exc, "sqlstate", None) or ""
    text = _first_line(exc)
    if state[:2] in _TRANSIENT_CLASSES or (state == "" and "connection" in text.lower()):
        return errors.BoardBusy(
            f"the board {redacted(url)} is unavailable for now ({text}); try again, and see "
            "`kanban doctor`"
        )
    return errors.BoardError(f"board {redacted(url)}: {text}")
