"""A kanban world for tests: a board, real git repositories, `kanban dispatch` subprocesses.

Imported as ``from support import world`` (tests/ is on sys.path through its conftest).
Nothing here sleeps to coordinate: `wait_for` polls a condition with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlite_utils

from board import connection, identity, runs, tasks

KANBAN = str(Path(sys.executable).with_name("kanban"))
PY = sys.executable
DEADLINE = 20.0  # generous: a loaded CI machine must not fail these


# --- helpers -------------------------------------------------------------------------------


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run(
        ["git", "-C", str(cwd), *args], env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {args} failed: {result.stderr}")
    return result.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in (files or {"README": "hello\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = DEADLINE,
    on_fail: Callable[[], str] = str,
) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{on_fail()}")
        time.sleep(0.02)


def gone(pid: int, started_at: float) -> bool:
    """The process that had `pid` at `started_at` has ended (a zombie counts as ended)."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started_at) > 0.05:
            return True
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def identities(pids: list[int]) -> list[tuple[int, float]]:
    return [(pid, psutil.Process(pid).create_time()) for pid in pids]


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
        result = subprocess.run(
            [KANBAN, *args], env={**self.env, **env}, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kanban {args} exited {result.returncode}: {result.stderr}")
        return result

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
        # Workers live in sessions of their own and outlive a killed dispatcher.
        for run in connection.read(self.db, "SELECT * FROM runs"):
            for pid, started in (
                (run["pid"], run["pid_started_at"]),
                (run["shim_pid"], run["shim_started_at"]),
            ):
                if pid and started and not gone(pid, started):
                    try:
                        for proc in [
                            *psutil.Process(pid).children(recursive=True),
                            psutil.Process(pid),
                        ]:
                            proc.kill()
                    except psutil.NoSuchProcess:
                        pass
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
