"""The board from async code: one connection, used from a worker thread, one call at a time.

The board is synchronous (sqlite3 is); the dispatcher is async (anyio). Every board call runs
in a thread so a busy board (another process holding the write lock) never stalls the event
loop, and a capacity limiter of one keeps the connection to one thread at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import sqlite_utils

from board import connection

T = TypeVar("T")


class Board:
    def __init__(self, path: str | None) -> None:
        self.db: sqlite_utils.Database = connection.connect(path)
        self.path = connection.path_of(self.db)
        self._limiter = anyio.CapacityLimiter(1)

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await board.call(tasks.get, 3)`` runs ``tasks.get(db, 3)`` in a thread."""
        return await anyio.to_thread.run_sync(
            functools.partial(fn, self.db, *args, **kwargs), limiter=self._limiter
        )

    def close(self) -> None:
        self.db.conn.close()
