"""A kanban world for tests: a board, real git repositories, `kanban dispatch` subprocesses.

Imported as ``from support import world`` (tests/ is on sys.path through its conftest), whose
`pytest_plugins` also registers the `kb` and `repo` fixtures here for every test module.
Nothing here sleeps to coordinate: `support.waiting.wait_for` polls a condition with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from board import connection, identity, runs, tasks
from support.cli import KANBAN, kanban
from support.gitrepo import make_repo
from support.processes import end_board_processes
from support.waiting import DEADLINE, wait_for

PY = sys.executable


def read_when_written(path: Path, timeout: float = DEADLINE) -> str:
    return wait_for(
        lambda: path.exists() and path.read_text(), f"{path.name} to be written", timeout
    )


class Dispatcher:
    """A `kanban dispatch` subprocess with its stderr in a file."""

    def __init__(self, log: Path, env: dict[str, str], args: tuple[str, ...]) -> None:
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [KANBAN, "dispatch", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the dispatcher did not exit within {timeout:g} s:\n{self.output()}"
            ) from None

    def wait_for_output(self, text: str) -> None:
        wait_for(
            lambda: text in self.output(), f"{text!r} from the dispatcher", on_fail=self.output
        )


class Kanban:
    """One test's world: a board, the dispatcher's environment, and what it started."""

    def __init__(self, tmp_path: Path, db_path: Path) -> None:
        self.tmp = tmp_path
        self.db_path = db_path
        self.db: sqlite_utils.Database = connection.connect(db_path)
        self.env = dict(os.environ)
        self.env.update(
            KANBAN_WORKTREE_ROOT=str(tmp_path / "worktrees"),
            KANBAN_SCRATCH_ROOT=str(tmp_path / "scratch"),
            KANBAN_KILL_GRACE="1",
            KANBAN_RETRY_DELAY="0.2",
            KANBAN_STALL_TIMEOUT="30",
        )
        self.dispatchers: list[Dispatcher] = []

    def dispatch(self, *args: str, **env: str) -> Dispatcher:
        log = self.tmp / f"dispatcher-{len(self.dispatchers) + 1}.log"
        dispatcher = Dispatcher(log, {**self.env, **env}, args)
        self.dispatchers.append(dispatcher)
        return dispatcher

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return kanban(*args, env={**self.env, **env}, check=check)

    def create(
        self, title: str, code: str, *args: object, repo: Path | None = None, **options: Any
    ) -> int:
        """A `command` task running ``python -c CODE ARGS...``."""
        argv = [PY, "-c", code, *(str(a) for a in args)]
        spec = tasks.NewTask(
            title,
            repo=str(repo) if repo else None,
            runtime="command",
            runtime_options={"argv": argv},
            **options,
        )
        return tasks.create(self.db, spec)

    def task(self, task_id: int) -> dict[str, Any]:
        return tasks.get(self.db, task_id)

    def runs(self, task_id: int) -> list[dict[str, Any]]:
        return runs.for_task(self.db, task_id)

    def events(self, task_id: int) -> list[dict[str, Any]]:
        return connection.read(
            self.db, "SELECT * FROM events WHERE task_id = ? ORDER BY id", (task_id,)
        )

    def status(self, task_id: int) -> str:
        return self.task(task_id).status

    @property
    def board_id(self) -> str:
        return identity.board_id(self.db)

    def branch(self, task_id: int) -> str:
        """The task's branch, as the dispatcher named it (``kanban/<board id>/t_N``)."""
        return f"kanban/{self.board_id}/t_{task_id}"

    def logs(self) -> str:
        return "\n".join(f"--- {d.log.name}\n{d.output()}" for d in self.dispatchers)

    def wait_status(self, task_id: int, *statuses: str) -> dict[str, Any]:
        return wait_for(
            lambda: (t := self.task(task_id)).status in statuses and t,
            f"t_{task_id} to be {' or '.join(statuses)}",
            on_fail=self.logs,
        )

    def cleanup(self) -> None:
        for dispatcher in self.dispatchers:
            if dispatcher.proc.poll() is None:
                dispatcher.proc.kill()
                dispatcher.proc.wait()
        # Workers live in sessions of their own and outlive a killed dispatcher, and so does
        # the board's tool server.
        end_board_processes(self.db)
        self.db.conn.close()


@pytest.fixture
def kb(tmp_path: Path, db_path: Path) -> Iterator[Kanban]:
    world = Kanban(tmp_path, db_path)
    try:
        yield world
    finally:
        world.cleanup()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "app", {"README": "hello\n", "a.txt": "a\n", "b.txt": "b\n"})
