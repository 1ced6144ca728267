"""The board from async code: one connection, used from a worker thread, one call at a time.

The board is synchronous (sqlite3 is); the dispatcher is async (anyio). Every board call runs
in a thread so a busy board (another process holding the write lock) never stalls the event
loop, and a capacity limiter of one keeps the connection to one thread at a time.

A transient failure (`errors.BoardBusy`: the write lock held past the busy timeout, a full
disk) is waited out with backoff, forever: nothing was written, and a dispatcher that gave up
would strand every run it supervises. Any other error is the caller's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import sqlite_utils

from board import connection, errors, identity

T = TypeVar("T")
log = logging.getLogger("kanban.board")

BUSY_FIRST_DELAY = 0.5
BUSY_MAX_DELAY = 10.0


class Board:
    def __init__(self, path: str | None) -> None:
        self.db: sqlite_utils.Database = connection.connect(path)
        connection.check_intact(self.db)  # before the dispatcher writes anything
        self.path = connection.path_of(self.db)
        self.id = identity.board_id(self.db)
        self.on_postgres = connection.is_postgres(self.db)
        # What the file at `path` was when we opened it: a board replaced or removed under us
        # must stop the dispatcher, not split the work between two files. (A PostgreSQL board
        # is a database, not a file anyone can replace under us.)
        self.file = None if self.on_postgres else identity.file_identity(self.path)
        self._limiter = anyio.CapacityLimiter(1)
        self.on_busy: Callable[[str], None] = lambda message: None

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await board.call(tasks.get, 3)`` runs ``tasks.get(db, 3)`` in a thread."""
        delay = BUSY_FIRST_DELAY
        while True:
            # A stat per call (microseconds): a board removed or replaced under us is noticed
            # at the next use, before anything is written to the old file.
            self.check_same_file()
            try:
                return await anyio.to_thread.run_sync(
                    functools.partial(fn, self.db, *args, **kwargs), limiter=self._limiter
                )
            except errors.BoardBusy as exc:
                self.on_busy(f"{exc}; retrying in {delay:g} s")
                log.warning("board busy: %s", exc)
            await anyio.sleep(delay)
            delay = min(delay * 2, BUSY_MAX_DELAY)

    def check_same_file(self) -> None:
        """Raise `errors.BoardReplaced` if the board's file was removed or replaced."""
        if not self.on_postgres:
            identity.check_same(self.path, self.file)

    def close(self) -> None:
        """Close the connection, unless the file at our path is no longer our board.

        The last connection to close checkpoints and deletes ``<path>-wal`` and ``-shm`` *by
        name*: after a replacement those names may belong to the new board's live files.
        Leaving ours open until the process exits releases our locks and deletes nothing.
        """
        if self.on_postgres or identity.file_identity(self.path) == self.file:
            self.db.conn.close()
