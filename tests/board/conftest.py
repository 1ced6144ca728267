"""A fresh board per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from board import connection


@pytest.fixture
def db(db_path: Path) -> Iterator[sqlite_utils.Database]:
    database = connection.connect(db_path)
    yield database
    database.conn.close()
