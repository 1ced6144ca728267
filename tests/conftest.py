"""Shared fixtures: every test runs with its own homes, so none touches the user's files.

Helpers live in tests/support/ and are imported like any module; never from a conftest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
import support.postgres

from board import connection

# The `kb` (a kanban world) and `repo` fixtures, for every test module.
pytest_plugins = ("support.world",)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME, the board, HERMES_HOME and CODEX_HOME at tmp_path and pin git's identity.

    Inherited ``GIT_*`` and ``HERMES_KANBAN_*`` variables are removed: a test run from inside a
    git hook or a kanban worker must behave like any other.
    """
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith(("GIT_", "HERMES_KANBAN_", "KANBAN_")) and name not in (
            "KANBAN_HERMES_BIN",
            "KANBAN_CODEX_BIN",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KANBAN_DB", str(home / ".kanban" / "board.db"))
    monkeypatch.setenv("HERMES_HOME", str(home / ".hermes"))
    monkeypatch.setenv("CODEX_HOME", str(home / ".codex"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # A board's tool server outlives its dispatcher; a test's goes soon after the test.
    monkeypatch.setenv("KANBAN_TOOL_SERVER_IDLE_EXIT", "8")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Kanban Tests\n\temail = tests@kanban.invalid\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    return home


@pytest.fixture
def db_path(isolated_home: Path) -> Path:
    return isolated_home / ".kanban" / "board.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A connection to the test's board, closed afterwards."""
    database = connection.connect(db_path)
    yield database
    database.conn.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[support.postgres.Server]:
    """A real PostgreSQL server for the session (each xdist worker its own), started the first
    time a test asks for it, stopped at the end. No PostgreSQL fails the test, never skips it."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(support.postgres.server())
        except support.postgres.PostgresUnavailable as exc:
            pytest.fail(f"no PostgreSQL for the tests: {exc}", pytrace=False)
        yield server


@pytest.fixture
def pg_url(postgres: support.postgres.Server) -> Iterator[str]:
    """The URL of a new, empty database of the test's own on the session's server."""
    with support.postgres.database(postgres) as url:
        yield url
