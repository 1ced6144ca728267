"""Which board this is: its own id, and whether the file we opened is still the one at its path.

The board id (made once, by a migration) goes into every name kanban gives a task outside the
board: its branch, its worktree, its logs and the scope of its processes. Ids of tasks and runs
restart at 1 on every board; the board id keeps two boards on one repository, or a board
recreated after deletion, from ever sharing a name.
"""

from __future__ import annotations

import json
import os
import re

import sqlite_utils

from board import connection, errors

_ID = re.compile(r"[0-9a-f]{8}")


def board_id(db: sqlite_utils.Database) -> str:
    """The board's id: eight lowercase hex digits, safe in paths and branch names."""
    value = connection.read(db, "SELECT value FROM settings WHERE key = 'board_id'")
    found = json.loads(value[0]["value"]) if value else None
    if not isinstance(found, str) or not _ID.fullmatch(found):
        raise errors.BoardError(
            f"board {connection.shown(connection.path_of(db))} has no valid id ({found!r}); it "
            "may have been "
            "edited by hand: restore it from a backup"
        )
    return found


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, or None if there is none.

    ``os.stat`` opens no descriptor, so SQLite's locks are safe (benchmarking.md, trap 1).
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def check_same(path: str, opened: tuple[int, int] | None) -> None:
    """Raise `BoardReplaced` unless the file at `path` is still the one we opened."""
    now = file_identity(path)
    if now != opened:
        raise errors.BoardReplaced(path, removed=now is None)
