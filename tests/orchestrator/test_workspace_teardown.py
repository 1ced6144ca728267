"""`kanban gc` runs a repository's `teardown` in each worktree it is about to remove, and only
there: once, in order, in the worktree, with `env`; a failing teardown keeps the worktree
(unless --force); nothing it starts outlives it."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
from support.gitrepo import git, make_repo
from support.waiting import wait_for
from support.world import Kanban

from board import connection

PY = sys.executable

# What the teardown commands below write to: a file outside the worktree, named by a variable
# of the gc process (commands come from the committed file, which cannot know tmp_path).
MARKS = "TEARDOWN_MARKS"

MARK = """\
import os, pathlib, sys
with open(os.environ["TEARDOWN_MARKS"], "a") as out:
    out.write(f"{sys.argv[1]} {os.getcwd()} {pathlib.Path('README').exists()}"
              f" {os.environ.get('GREETING')}\\n")
print("stopped the", sys.argv[1], "containers")
"""
LEAVE_A_FILE = "import pathlib; pathlib.Path('teardown-left.txt').write_text('left behind')"
FAIL = "import sys; print('cannot reach the docker daemon'); sys.exit(4)"


def _argv(code: str, *args: str) -> str:
    """One command (an argv, no shell) running ``python -c CODE ARGS...``, as TOML."""
    return json.dumps([PY, "-c", code, *args])


def _app(tmp_path: Path, kanban_toml: str) -> Path:
    return make_repo(tmp_path / "app", {"README": "hello\n", ".kanban.toml": kanban_toml})


def _ended_task(kb: Kanban, repo: Path) -> tuple[int, Path]:
    """A task that ran to `done` in its own worktree, changing nothing; and that worktree."""
    task_id = kb.create("done", "pass", repo=repo)
    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()
    tree = Path(kb.wait_status(task_id, "done").worktree)
    assert tree.is_dir()
    return task_id, tree


def _branch_exists(kb: Kanban, repo: Path, task_id: int) -> bool:
    return git(repo, "branch", "--list", kb.branch(task_id)) != ""


def test_teardown_runs_once_in_the_worktree_before_gc_removes_it(kb, tmp_path):
    teardown = f"[{_argv(MARK, 'app')}, {_argv(LEAVE_A_FILE)}, {_argv(MARK, 'db')}]"
    repo = _app(tmp_path, f'[workspace]\nteardown = {teardown}\nenv = {{ GREETING = "bye" }}\n')
    task_id, tree = _ended_task(kb, repo)
    marks = tmp_path / "marks"
    assert not marks.exists()  # a task's end runs no teardown: gc does

    first = kb.run("gc", **{MARKS: str(marks)})

    # In order, in the worktree while it was still there, with the workspace's env.
    assert marks.read_text().splitlines() == [f"app {tree} True bye", f"db {tree} True bye"]
    # What the teardown left there did not keep the worktree: it was clean before.
    assert not tree.exists()
    assert f"removed worktrees: {tree}" in first.stdout
    assert f"deleted branches: {kb.branch(task_id)}" in first.stdout
    log = (Path(kb.runs(task_id)[-1].log_path).parent / "teardown.log").read_text()
    assert "kanban: teardown: " in log
    assert "stopped the app containers" in log and "stopped the db containers" in log

    again = kb.run("gc", **{MARKS: str(marks)})

    assert len(marks.read_text().splitlines()) == 2  # a worktree gone gets no teardown
    assert again.stdout.strip() == "nothing to collect"


def test_a_failing_teardown_keeps_the_worktree_and_its_branch_until_forced(kb, tmp_path):
    teardown = f"[{_argv(MARK, 'app')}, {_argv(FAIL)}, {_argv(MARK, 'never')}]"
    repo = _app(tmp_path, f"[workspace]\nteardown = {teardown}\n")
    task_id, tree = _ended_task(kb, repo)
    marks = tmp_path / "marks"

    kept = kb.run("gc", check=False, **{MARKS: str(marks)})

    assert kept.returncode == 1
    assert marks.read_text().splitlines() == [f"app {tree} True None"]  # stopped at the failure
    assert tree.is_dir() and _branch_exists(kb, repo, task_id)
    assert f"kept worktrees: {tree}" in kept.stdout
    (problem,) = [line for line in kept.stdout.splitlines() if line.startswith("problems: ")]
    assert problem.startswith(f"problems: t_{task_id}: teardown failed: ")
    assert "sys.exit(4)" in problem  # the command
    assert "exited 4; last lines: cannot reach the docker daemon" in problem
    assert "--force removes it anyway" in problem

    forced = kb.run("gc", "--force", check=False, **{MARKS: str(marks)})

    assert forced.returncode == 1  # still reported: what the teardown should stop may run on
    assert f"t_{task_id}: teardown failed: " in forced.stdout
    assert "removed anyway (--force)" in forced.stdout
    assert not tree.exists() and not _branch_exists(kb, repo, task_id)
    assert marks.read_text().splitlines() == [f"app {tree} True None"] * 2


@pytest.mark.parametrize("how", ["dirty", "detached"])
def test_a_worktree_that_gc_keeps_gets_no_teardown(kb, tmp_path, how):
    repo = _app(tmp_path, f"[workspace]\nteardown = [{_argv(MARK, 'app')}]\n")
    task_id, tree = _ended_task(kb, repo)
    if how == "dirty":
        (tree / "late.txt").write_text("written after the task ended\n")
    else:
        git(tree, "checkout", "-q", "--detach")
    marks = tmp_path / "marks"

    result = kb.run("gc", check=False, **{MARKS: str(marks)})

    assert not marks.exists()
    assert tree.is_dir() and _branch_exists(kb, repo, task_id)
    assert f"kept worktrees: {tree}" in result.stdout
    assert "teardown" not in result.stdout


def test_a_teardown_over_its_timeout_is_killed_and_keeps_the_worktree(kb, tmp_path):
    hang = _argv("import time; print('waiting for the daemon', flush=True); time.sleep(60)")
    repo = _app(tmp_path, f"[workspace]\nteardown = [{hang}]\nsetup_timeout = 1\n")
    task_id, tree = _ended_task(kb, repo)

    result = kb.run("gc", check=False)

    assert result.returncode == 1
    assert "ran longer than its setup_timeout of 1 s" in result.stdout
    assert "last lines: waiting for the daemon" in result.stdout
    assert tree.is_dir() and _branch_exists(kb, repo, task_id)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_teardown_leaves_no_process_behind(kb, tmp_path):
    # A shell line that starts a server of sorts and returns at once.
    repo = _app(tmp_path, "[workspace]\nteardown = 'sleep 300 & echo $! > \"$TEARDOWN_PID\"'\n")
    _, tree = _ended_task(kb, repo)
    pid_file = tmp_path / "sleep.pid"

    kb.run("gc", TEARDOWN_PID=str(pid_file))

    pid = int(pid_file.read_text())
    try:
        wait_for(lambda: not _running(pid), f"the teardown's sleep ({pid}) to be gone")
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    assert not tree.exists()


def test_a_kanban_toml_that_cannot_be_read_at_the_base_keeps_the_worktree(kb, tmp_path):
    repo = _app(tmp_path, "")
    task_id, tree = _ended_task(kb, repo)
    # A subtask's base is its parent's branch, which may since hold a malformed file.
    git(repo, "checkout", "-q", "-b", "parent")
    (repo / ".kanban.toml").write_text('[workspace]\nteardown = "make down"\nports = "many"\n')
    git(repo, "commit", "-q", "-am", "a malformed .kanban.toml")
    git(repo, "checkout", "-q", "main")
    with connection.transaction(kb.db) as tx:
        tx.execute("UPDATE tasks SET base_ref = 'parent' WHERE id = ?", (task_id,))

    kept = kb.run("gc", check=False)

    assert kept.returncode == 1
    assert f"problems: t_{task_id}: its teardown cannot be known" in kept.stdout
    assert ".kanban.toml:3: ports must be a whole number" in kept.stdout
    assert tree.is_dir() and _branch_exists(kb, repo, task_id)

    forced = kb.run("gc", "--force", check=False)

    assert forced.returncode == 1
    assert "removed anyway (--force)" in forced.stdout
    assert not tree.exists()


def test_without_a_teardown_gc_runs_nothing_and_writes_no_teardown_log(kb, tmp_path):
    repo = _app(tmp_path, f"[workspace]\nsetup = [{_argv(MARK, 'setup')}]\n")
    marks = tmp_path / "marks"
    kb.env[MARKS] = str(marks)
    task_id, tree = _ended_task(kb, repo)

    result = kb.run("gc")

    assert marks.read_text().splitlines() == [f"setup {tree} True None"]  # setup only
    assert not tree.exists()
    assert f"removed worktrees: {tree}" in result.stdout
    assert not (Path(kb.runs(task_id)[-1].log_path).parent / "teardown.log").exists()
