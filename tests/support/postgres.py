"""The tests' real PostgreSQL: testing/postgres.py (shared with the benchmarks), and a fresh
database per test on it.

The `postgres` (one server per test session, or per xdist worker) and `pg_url` (a fresh
database) fixtures in tests/conftest.py use these.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from testing.postgres import PostgresUnavailable, Server, server

__all__ = ["PostgresUnavailable", "Server", "database", "server"]


@contextlib.contextmanager
def database(pg: Server, *, template: str = "template0") -> Iterator[str]:
    """A new database on `pg` (a copy of `template`), its URL; dropped afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    pg.create_database(name, template=template)
    try:
        yield pg.url(name)
    finally:
        pg.drop_database(name)
