"""The real PostgreSQL the board's tests run on (testing/postgres.py, the `pg_url` fixture).

A fresh database per test, reached over TCP on 127.0.0.1 with the server's password; the
server runs as an unprivileged user (PostgreSQL refuses root) and leaves nothing behind: not
when its session ends, not when the process that started it is killed.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import support.postgres
from support import REPO_ROOT
from support.waiting import wait_for

from testing import postgres as testing_postgres


@pytest.fixture
def another_pg_url(postgres: support.postgres.Server) -> Iterator[str]:
    with support.postgres.database(postgres) as url:
        yield url


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_a_test_database_keeps_what_is_written_to_it(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO notes (body) VALUES (%s), (%s)", ("first", "second"))
    with psycopg.connect(pg_url) as conn:  # committed: a new connection sees it
        rows = conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
    assert rows == [(1, "first"), (2, "second")]


def test_two_databases_of_one_session_are_distinct_and_start_empty(
    pg_url: str, another_pg_url: str
) -> None:
    assert pg_url != another_pg_url
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(another_pg_url) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_a_test_database_is_dropped_after_its_test(postgres: support.postgres.Server) -> None:
    with support.postgres.database(postgres) as url:
        name = url.rsplit("/", 1)[1]
        left_open = psycopg.connect(url)  # a test that forgets to close must not block the drop
    exists = "SELECT count(*) FROM pg_database WHERE datname = %s"
    assert postgres.admin.execute(exists, (name,)).fetchone() == (0,)
    left_open.close()


def test_the_server_runs_as_an_unprivileged_user(
    postgres: support.postgres.Server, pg_url: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        data_dir = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert backend is not None and data_dir is not None
    uid = pwd.getpwnam(postgres.user).pw_uid
    assert uid != 0
    assert psutil.Process(backend[0]).uids().real == uid
    assert psutil.Process(postmaster_pid(Path(data_dir[0]))).uids().effective == uid
    assert os.stat(data_dir[0]).st_uid == uid
    if os.geteuid() == 0:
        assert postgres.user == testing_postgres.SYSTEM_USER


def test_the_server_listens_on_the_loopback_only_and_asks_for_its_password(
    postgres: support.postgres.Server, pg_url: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        listening = conn.execute("SELECT current_setting('listen_addresses')").fetchone()
    assert listening == ("127.0.0.1",)
    wrong = pg_url.replace(postgres.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_a_server_is_stopped_and_its_directory_removed_at_the_end() -> None:
    with testing_postgres.server() as pg:
        base, pid = pg.base, postmaster_pid(pg.data_dir)
        assert psutil.pid_exists(pid)
    assert not base.exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


STARTER = r"""
import sys, time
from testing import postgres
with postgres.server() as pg:
    print(pg.base, flush=True)
    time.sleep(120)
"""


def test_a_server_whose_starter_is_killed_is_stopped_and_removed_all_the_same() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert starter.stdout is not None
    base = Path(starter.stdout.readline().strip())
    pid = postmaster_pid(base / "data")
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    starter.stdout.close()
    wait_for(lambda: not psutil.pid_exists(pid), "the orphaned server to stop")
    wait_for(lambda: not base.exists(), f"{base} to be removed")


def test_without_the_server_programs_the_message_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(testing_postgres, "BIN_GLOB", str(tmp_path / "*" / "bin"))
    with pytest.raises(testing_postgres.PostgresUnavailable) as failure:
        with testing_postgres.server():
            pass
    message = str(failure.value)
    assert "initdb" in message
    assert "make test" in message
    assert "postgresql-15" in message
