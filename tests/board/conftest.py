"""The board's tests run on both engines: every test that takes `db` runs once on a SQLite
file and once on a real PostgreSQL database of its own (`pg_url`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from board import connection

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def location(request: pytest.FixtureRequest, db_path: Path) -> str:
    """Where the test's board is: a file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(db_path)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(location: str) -> Iterator[sqlite_utils.Database]:
    database = connection.connect(location)
    yield database
    database.conn.close()


@pytest.fixture
def sqlite_db(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A SQLite board, for what only SQLite has (its query planner's choices)."""
    database = connection.connect(db_path)
    yield database
    database.conn.close()
