"""Crash windows, tested at the window: a pause point stops a process at the exact step.

Each test arms a named pause point (`worker.pause`) in a real `kanban dispatch` subprocess (or
its shim), waits for the process to stop there, kills what the window is about, restarts,
and checks what must survive: every task ends once, its work is on its branch, no process of
any run is left, no two runs of a task overlap, and the board passes `PRAGMA integrity_check`.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import KANBAN
from support.gitrepo import git, make_repo
from support.processes import gone
from support.waiting import wait_for
from support.world import Kanban, read_when_written

from board import connection, records, runs, tasks
from orchestrator import retry
from worker import scope


def paused(pauses: Path, name: str) -> Path:
    """Wait until a process stops at the pause point `name`; returns its marker file."""
    return wait_for(
        lambda: next(iter(sorted(pauses.glob(f"{name}.*"))), None), f"a process paused at {name}"
    )


def pid_of(marker: Path) -> int:
    return int(marker.name.split(".")[-2])


def arm(pauses: Path, *names: str) -> dict[str, str]:
    return {"KANBAN_PAUSE": ",".join(names), "KANBAN_PAUSE_DIR": str(pauses)}


@pytest.fixture(params=[scope.CGROUP, scope.SUBREAPER])
def mechanism(request: pytest.FixtureRequest) -> str:
    """Each way of containing a run's processes (`KANBAN_SCOPE`), where this machine has it."""
    if request.param == scope.CGROUP and scope.cgroup_root() is None:
        pytest.skip("cgroup v2 is not writable here; the subreaper case covers this machine")
    return request.param


def assert_intact(kb: Kanban) -> None:
    """The board is sound, no two runs of a task overlapped, no run's cgroup is left."""
    verdict, _ = connection.inspect(kb.db_path)
    assert verdict == ["ok"]
    root = scope.cgroup_root()
    if root is not None and (board_cgroups := Path(root) / kb.board_id).is_dir():
        assert [p.name for p in board_cgroups.iterdir() if p.is_dir()] == []
    all_runs = connection.read(kb.db, "SELECT * FROM runs ORDER BY task_id, id")
    for before, after in itertools.pairwise(all_runs):
        if before["task_id"] == after["task_id"]:
            assert before["ended_at"] is not None and before["ended_at"] <= after["started_at"]


COUNT_SETUP = "import sys; open(sys.argv[1], 'a').write('setup\\n')"


def identity_file(path: Path) -> tuple[int, float]:
    pid, started = read_when_written(path).split()
    return int(pid), float(started)


# Agents. Each records "pid create-time" of the processes it starts, so the test can check
# that exactly those processes are gone (a pid alone could have been reused).

WAIT_FOR_GO = """
import os, sys, time, psutil
state = sys.argv[1]
me = psutil.Process()
with open(os.path.join(state, "agent"), "w") as out:
    out.write(f"{me.pid} {me.create_time()}")
while not os.path.exists(os.path.join(state, "go")):
    time.sleep(0.02)
with open("result.txt", "w") as out:
    out.write("the work")
"""

FIRST_HANGS_THEN_WORKS = """
import os, subprocess, sys, time, psutil
state = sys.argv[1]
first = os.path.join(state, "first")
def record(name, proc):
    with open(os.path.join(state, name + ".tmp"), "w") as out:
        out.write(f"{proc.pid} {proc.create_time()}")
    os.rename(os.path.join(state, name + ".tmp"), os.path.join(state, name))
def alive(name):
    pid, started = open(os.path.join(state, name)).read().split()
    try:
        proc = psutil.Process(int(pid))
        same = abs(proc.create_time() - float(started)) < 0.05
        return same and proc.status() != psutil.STATUS_ZOMBIE  # a zombie has died
    except psutil.NoSuchProcess:
        return False
if not os.path.exists(first):
    # A helper in a session of its own: it outlives the agent unless kanban stops it.
    helper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    record("helper", psutil.Process(helper.pid))
    record("first", psutil.Process())
    while True:
        time.sleep(1)
with open("result.txt", "w") as out:
    out.write(f"alive when the retry started: agent {alive('first')}, helper {alive('helper')}")
"""

LEAVES_PROCESSES_BEHIND = """
import os, subprocess, sys, time, psutil
state = sys.argv[1]
def record(name, pid):
    with open(os.path.join(state, name + ".tmp"), "w") as out:
        out.write(f"{pid} {psutil.Process(pid).create_time()}")
    os.rename(os.path.join(state, name + ".tmp"), os.path.join(state, name))
# `sleep 300 &`: an orphan once this process exits.
record("background", subprocess.Popen(["sleep", "300"]).pid)
# A daemon: double fork and a session of its own, re-parented away from the agent.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        record("daemon", os.getpid())
        time.sleep(300)
        os._exit(0)
    os._exit(0)
os.wait()
while not os.path.exists(os.path.join(state, "daemon")):
    time.sleep(0.01)
with open("result.txt", "w") as out:
    out.write("left two processes behind")
"""

LOCKS_ITS_INDEX_ONCE = """
import os, subprocess, sys
state = sys.argv[1]
with open("result.txt", "w") as out:
    out.write("precious work")
if not os.path.exists(os.path.join(state, "locked-once")):
    open(os.path.join(state, "locked-once"), "w").close()
    git_dir = subprocess.run(["git", "rev-parse", "--absolute-git-dir"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # What a full disk or a crashed git leaves: `git add` cannot take the index.
    open(os.path.join(git_dir, "index.lock"), "w").close()
    with open(os.path.join(state, "lock-path"), "w") as out:
        out.write(os.path.join(git_dir, "index.lock"))
"""


# --- window 2: the dispatcher dies between starting the shim and recording it -------------


def test_a_dispatcher_killed_before_recording_its_shim_is_adopted_and_nothing_is_lost(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state, pauses = tmp_path / "state", tmp_path / "pauses"
    state.mkdir(), pauses.mkdir()
    task_id = kb.create("slow", WAIT_FOR_GO, state, repo=repo)
    first = kb.dispatch(**arm(pauses, "dispatcher.spawned"))
    marker = paused(pauses, "dispatcher.spawned")
    (run,) = kb.runs(task_id)
    assert run.log_path and run.worktree  # prepared before the shim existed

    os.kill(pid_of(marker), signal.SIGKILL)
    first.proc.wait()
    agent = identity_file(state / "agent")  # the shim lives on and started its agent
    second = kb.dispatch("--until-idle")
    second.wait_for_output("adopting run")
    assert kb.status(task_id) == "running"  # not judged while the shim may still write
    (state / "go").touch()

    assert second.wait() == 0, kb.logs()
    assert kb.status(task_id) == "done"
    (run,) = kb.runs(task_id)  # adopted, never run twice
    assert run.outcome == "completed" and run.exit_code == 0
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == "the work"
    assert gone(*agent)
    assert_intact(kb)


def test_a_dispatcher_killed_after_committing_and_before_settling_is_settled_once_by_the_next(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    task_id = kb.create("quick", "open('result.txt', 'w').write('the work')", repo=repo)
    first = kb.dispatch(**arm(pauses, "dispatcher.before-settle"))
    marker = paused(pauses, "dispatcher.before-settle")
    (run,) = kb.runs(task_id)
    assert run.exit_code == 0 and run.ended_at is None  # exited, committed, not settled

    os.kill(pid_of(marker), signal.SIGKILL)
    first.proc.wait()
    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()

    assert kb.status(task_id) == "done"
    (run,) = kb.runs(task_id)  # settled once, never run again
    assert run.outcome == "completed"
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == "the work"
    assert_intact(kb)


def test_a_dispatcher_killed_after_setup_and_before_marking_the_worktree_ready_sets_it_up_again(
    kb: Kanban, tmp_path: Path
) -> None:
    setups, pauses = tmp_path / "setups", tmp_path / "pauses"
    pauses.mkdir()
    count = json.dumps([sys.executable, "-c", COUNT_SETUP, str(setups)])
    repo = make_repo(
        tmp_path / "app", {"README": "x\n", ".kanban.toml": f"[workspace]\nsetup = [{count}]\n"}
    )
    task_id = kb.create("set up", "open('result.txt', 'w').write('the work')", repo=repo)
    first = kb.dispatch(**arm(pauses, "dispatcher.set-up"))
    marker = paused(pauses, "dispatcher.set-up")
    assert setups.read_text() == "setup\n"
    (run,) = kb.runs(task_id)
    assert run.pid is None and run.shim_pid is None  # no agent in a half-set-up worktree

    os.kill(pid_of(marker), signal.SIGKILL)
    first.proc.wait()
    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()

    task = kb.task(task_id)
    assert task.status == "done"
    assert [r.outcome for r in kb.runs(task_id)] == ["lost", "completed"]
    assert task.attempts == 1  # the lost run was the orchestrator's failure: refunded
    assert setups.read_text() == "setup\nsetup\n"  # not marked ready: set up again
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == "the work"
    assert_intact(kb)


def test_a_shim_killed_after_its_agent_exited_loses_no_work_and_costs_no_attempt(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state, pauses = tmp_path / "state", tmp_path / "pauses"
    state.mkdir(), pauses.mkdir()
    code = (
        "import os, sys\n"
        "runs = os.path.join(sys.argv[1], 'runs')\n"
        "open(runs, 'a').write('x')\n"
        "open('result.txt', 'w').write('the work')\n"
    )
    task_id = kb.create("quick", code, state, repo=repo, max_attempts=1)
    dispatcher = kb.dispatch("--until-idle", **arm(pauses, "shim.agent-exited"))
    marker = paused(pauses, "shim.agent-exited")  # the agent is gone; its exit not recorded

    os.kill(pid_of(marker), signal.SIGKILL)

    def release_the_retry() -> bool:  # the retry's shim pauses at the same point: let it go
        for waiting in pauses.glob("shim.agent-exited.*"):
            if waiting != marker:
                waiting.unlink()
        return dispatcher.proc.poll() is not None

    wait_for(release_the_retry, "the dispatcher to finish", on_fail=kb.logs)
    assert dispatcher.proc.returncode == 0, kb.logs()
    assert kb.status(task_id) == "done"
    lost, done = kb.runs(task_id)
    assert lost.outcome == "lost" and lost.refunded and lost.commit_sha  # its work committed
    assert done.outcome == "completed"
    assert (state / "runs").read_text() == "xx"  # its exit unknown, the agent ran again
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == "the work"
    assert_intact(kb)


# --- window 4: the shim dies while its agent runs ------------------------------------------


def test_a_killed_shim_takes_its_agent_along_before_the_retry_starts_and_costs_no_attempt(
    kb: Kanban, repo: Path, tmp_path: Path, mechanism: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    task_id = kb.create("hangs once", FIRST_HANGS_THEN_WORKS, state, repo=repo, max_attempts=1)
    dispatcher = kb.dispatch("--until-idle", KANBAN_SCOPE=mechanism)
    first_agent = identity_file(state / "first")
    run = wait_for(lambda: (r := kb.runs(task_id)[0]).shim_pid and r, "the shim's pid")

    os.kill(run.shim_pid, signal.SIGKILL)

    assert dispatcher.wait() == 0, kb.logs()
    assert gone(*first_agent) and gone(*identity_file(state / "helper"))
    task = kb.task(task_id)
    assert task.status == "done", task
    lost, retried = kb.runs(task_id)
    assert lost.outcome == "lost" and lost.refunded  # our failure, not the agent's
    assert retried.outcome == "completed"
    on_branch = git(repo, "show", f"{kb.branch(task_id)}:result.txt")
    assert on_branch == "alive when the retry started: agent False, helper False"
    assert_intact(kb)


# --- window 5: processes outlive their run ---------------------------------------------------


def test_every_process_a_run_started_is_gone_when_it_ends(
    kb: Kanban, repo: Path, tmp_path: Path, mechanism: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    task_id = kb.create("messy", LEAVES_PROCESSES_BEHIND, state, repo=repo)

    dispatcher = kb.dispatch("--until-idle", KANBAN_SCOPE=mechanism)
    assert dispatcher.wait() == 0, kb.logs()

    assert f"contained by {mechanism}" in dispatcher.output()
    assert kb.status(task_id) == "done"
    for name in ("background", "daemon"):
        assert gone(*identity_file(state / name)), f"the {name} process outlived its run"
    assert_intact(kb)


# --- window 3: a resume lost mid-merge ------------------------------------------------------

PARENT = """
import json, os, shlex, subprocess, sys
kanban, state, child_code = sys.argv[1:4]
first_done = os.path.join(state, "parent-first-run")
if not os.path.exists(first_done):
    open("parent.txt", "w").write("parent")
    for name in ("child1", "child2"):
        command = shlex.join([sys.executable, "-c", child_code, name])
        subprocess.run([kanban, "create", name, "--command", command], check=True)
    open(first_done, "w").close()
else:
    with open(os.path.join(state, "resumed.json"), "w") as out:
        json.dump(sorted(os.listdir(".")), out)
"""

CHILD = "import sys; open(sys.argv[1] + '.txt', 'w').write(sys.argv[1])"


def test_a_resume_cut_short_while_merging_is_resumed_again_with_every_subtask_merged(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state, pauses = tmp_path / "state", tmp_path / "pauses"
    state.mkdir(), pauses.mkdir()
    parent = kb.create("orchestrate", PARENT, KANBAN, state, CHILD, repo=repo, max_attempts=1)
    first = kb.dispatch(**arm(pauses, "dispatcher.merging"))
    marker = paused(pauses, "dispatcher.merging")  # child1 merged, child2 not yet

    os.kill(pid_of(marker), signal.SIGKILL)
    first.proc.wait()
    second = kb.dispatch("--until-idle")

    assert second.wait() == 0, kb.logs()
    assert kb.status(parent) == "done"
    assert [r.kind for r in kb.runs(parent)] == ["first", "resume", "resume"]
    seen = json.loads((state / "resumed.json").read_text())
    assert {"parent.txt", "child1.txt", "child2.txt"} <= set(seen)
    files = git(repo, "ls-tree", "-r", "--name-only", kb.branch(parent)).split()
    assert {"parent.txt", "child1.txt", "child2.txt"} <= set(files)
    assert_intact(kb)


# --- window 6: a failed post-run commit ------------------------------------------------------


def test_a_run_whose_work_cannot_be_committed_leaves_its_task_blocked_with_the_work_in_place(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    task_id = kb.create("precious", LOCKS_ITS_INDEX_ONCE, state, repo=repo)

    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()

    task = kb.task(task_id)
    assert task.status == "blocked"
    assert "could not be committed" in task.block_reason
    assert (Path(task.worktree) / "result.txt").read_text() == "precious work"
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt", check=False) == ""

    Path((state / "lock-path").read_text()).unlink()  # the cause is fixed
    kb.run("unblock", f"t_{task_id}")
    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()

    assert kb.status(task_id) == "done"
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == "precious work"
    assert_intact(kb)


# --- window 7: two boards on one repository --------------------------------------------------


def test_two_boards_on_one_repository_share_no_branch_worktree_or_log(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    other_db = kb.db_path.parent / "other.db"  # same directory: logs/ is shared too
    write = "import sys; open('who.txt', 'w').write(sys.argv[1])"
    mine = kb.create("first board", write, "first", repo=repo)
    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()
    kb.run(
        "create",
        "second board",
        "--repo",
        str(repo),
        "--command",
        "sh -c 'printf second > who.txt'",
        KANBAN_DB=str(other_db),
    )
    assert kb.dispatch("--until-idle", KANBAN_DB=str(other_db)).wait() == 0, kb.logs()

    second = connection.connect(other_db)
    try:
        (their_task,) = tasks.list_tasks(second)
        (their_run,) = runs.for_task(second, their_task.id)
    finally:
        second.conn.close()
    my_task, (my_run,) = kb.task(mine), kb.runs(mine)
    assert mine == their_task.id == 1  # the same task id on both boards...
    assert my_task.branch != their_task.branch  # ...and nothing else in common
    assert my_task.worktree != their_task.worktree
    assert my_run.log_path != their_run.log_path
    assert git(repo, "show", f"{my_task.branch}:who.txt") == "first"
    assert git(repo, "show", f"{their_task.branch}:who.txt") == "second"


# --- windows 1 and 10: a dispatcher that stops on an error; its board replaced -------------


def test_a_dispatcher_whose_board_is_removed_stops_with_a_clear_error(kb: Kanban) -> None:
    first = kb.dispatch()
    first.wait_for_output("started")

    kb.db_path.unlink()  # `rm board.db`: an unlink opens nothing, SQLite's locks are safe

    assert first.wait(timeout=30) == 1
    assert "was removed while this process had it open" in first.output()
    assert "Traceback" not in first.output()


def test_a_board_restored_under_a_dispatcher_stops_it_and_the_next_adopts_its_live_run(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    task_id = kb.create("slow", WAIT_FOR_GO, state, repo=repo)
    first = kb.dispatch()
    identity_file(state / "agent")
    wait_for(lambda: kb.runs(task_id)[0].pid, "the agent's pid recorded")
    backup = kb.db_path.with_name("backup.db")
    with sqlite3.connect(kb.db_path) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # through SQLite: a consistent copy holding the live run
    live.close()
    copy.close()
    for suffix in ("-wal", "-shm"):  # the old board's; the restored one makes its own
        kb.db_path.with_name(kb.db_path.name + suffix).unlink()
    kb.db.conn.close()

    os.replace(backup, kb.db_path)  # restored from a backup while the dispatcher runs

    kb.db = connection.connect(kb.db_path)
    assert first.wait(timeout=30) == 1
    assert "was replaced by another file" in first.output()
    assert "Traceback" not in first.output()
    (run,) = kb.runs(task_id)
    assert not gone(run.shim_pid, run.shim_started_at), "the shim died with its dispatcher"
    second = kb.dispatch("--until-idle")  # the first one's runs are adoptable
    second.wait_for_output("adopting run")
    (state / "go").touch()
    assert second.wait() == 0, kb.logs()
    assert kb.status(task_id) == "done"
    assert len(kb.runs(task_id)) == 1
    assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == "the work"
    assert_intact(kb)


def test_a_task_whose_argv_holds_a_nul_byte_fails_alone_and_the_dispatcher_goes_on(
    kb: Kanban, repo: Path
) -> None:
    bad = kb.create("from an older board", "pass", repo=repo)
    good = kb.create("fine", "open('ok.txt', 'w').write('ok')", repo=repo)
    # Validation refuses NUL bytes now; a board written before it may still hold one.
    raw = sqlite3.connect(kb.db_path)
    raw.execute(
        "UPDATE tasks SET runtime_options = json_object('argv', json_array('echo', 'a' || char(0)"
        " || 'b')) WHERE id = ?",
        (bad,),
    )
    raw.commit()
    raw.close()

    dispatcher = kb.dispatch("--until-idle")
    assert dispatcher.wait() == 0, kb.logs()

    assert kb.status(good) == "done"
    failed = kb.task(bad)
    assert failed.status == "failed"
    assert "null byte" in failed.failure_reason
    assert "Traceback" not in dispatcher.output()


def test_a_write_lock_held_past_the_busy_timeout_is_waited_out(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    task_id = kb.create("slow", WAIT_FOR_GO, state, repo=repo)
    dispatcher = kb.dispatch("--until-idle", KANBAN_BUSY_TIMEOUT="0.2")
    identity_file(state / "agent")
    holder = sqlite3.connect(kb.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    (state / "go").touch()  # the shim's exit record now waits for the lock
    dispatcher.wait_for_output("unavailable for now")
    holder.execute("ROLLBACK")
    holder.close()

    assert dispatcher.wait() == 0, kb.logs()
    assert kb.status(task_id) == "done"
    assert_intact(kb)


# --- window 9: which spawn errors pass -----------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system with no room left for a new file or directory (a tiny tmpfs)."""
    where = tmp_path / "full"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=8", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        for n in itertools.count():  # take every inode left
            try:
                (where / f"filler-{n}").write_text("x")
            except OSError:
                break
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_at_spawn_is_waited_out_without_spending_attempts(
    kb: Kanban, full_disk: Path
) -> None:
    task_id = kb.create("no room yet", "print('ran')", max_attempts=1)
    dispatcher = kb.dispatch("--until-idle", KANBAN_SCRATCH_ROOT=str(full_disk))
    first = wait_for(
        lambda: next((r for r in kb.runs(task_id) if r.ended_at), None), "a failed start"
    )
    assert first.outcome == "spawn_failed" and first.refunded
    assert "No space left on device" in (first.reason or "")
    assert kb.status(task_id) in ("ready", "running")  # waiting for a retry, not failed

    for filler in full_disk.glob("filler-*"):  # room again
        filler.unlink()

    assert dispatcher.wait() == 0, kb.logs()
    task = kb.task(task_id)
    assert task.status == "done", task
    assert task.attempts == 1  # the failed starts were given back


@pytest.mark.parametrize(
    ("error", "passes"),
    [
        (OSError(28, "No space left on device"), True),
        (OSError(24, "Too many open files"), True),
        (RuntimeError("git: fatal: unable to write file: No space left on device"), True),
        (FileNotFoundError(2, "No such file or directory: 'hermes'"), False),
        (ValueError("embedded null byte"), False),
        (PermissionError(13, "Permission denied"), False),
    ],
)
def test_spawn_errors_that_pass_are_retried_and_the_rest_fail_at_once(
    error: BaseException, passes: bool
) -> None:
    assert retry.transient(error) is passes


# A stand-in for Claude Code: it works, reports usage as Claude Code's stream-json does, then
# waits forever; only its budget can end it.
SPENDING_CLAUDE = """#!{python}
import json, os, sys, time, psutil
open("spent.txt", "w").write("work done before the budget ran out")
me = psutil.Process()
open({agent!r} + ".tmp", "w").write(f"{{me.pid}} {{me.create_time()}}")
os.rename({agent!r} + ".tmp", {agent!r})
print(json.dumps({{"type": "system", "subtype": "init", "model": "fake-claude"}}), flush=True)
usage = {{"input_tokens": 1500, "output_tokens": 500}}
message = {{"id": "m1", "model": "fake-claude", "content": [], "usage": usage}}
print(json.dumps({{"type": "assistant", "message": message}}), flush=True)
time.sleep(600)
"""


def test_a_dispatcher_killed_after_stopping_a_run_over_its_budget_leaves_it_blocked_not_lost(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    pauses, agent = tmp_path / "pauses", tmp_path / "agent"
    pauses.mkdir()
    claude = tmp_path / "claude"
    claude.write_text(SPENDING_CLAUDE.format(python=sys.executable, agent=str(agent)))
    claude.chmod(0o755)
    task_id = tasks.create(
        kb.db,
        tasks.NewTask(
            "spends", repo=str(repo), runtime="claude", budget=records.Budget(tokens=1000)
        ),
    )
    env = {"KANBAN_CLAUDE_BIN": str(claude), **arm(pauses, "dispatcher.over-budget")}
    first = kb.dispatch(**env)
    marker = paused(pauses, "dispatcher.over-budget")
    task = kb.task(task_id)
    assert task.status == "blocked"  # decided and recorded, the agent not stopped yet
    assert task.block_reason.startswith("budget exceeded: used 2,000 of 1,000 tokens")
    pid, started = identity_file(agent)
    assert not gone(pid, started)

    os.kill(pid_of(marker), signal.SIGKILL)
    first.proc.wait()
    assert kb.dispatch("--until-idle", KANBAN_CLAUDE_BIN=str(claude)).wait() == 0, kb.logs()

    assert gone(pid, started)
    task = kb.task(task_id)
    assert task.status == "blocked" and task.block_reason.startswith("budget exceeded")
    (run,) = kb.runs(task_id)  # stopped and settled once, never started again
    assert run.outcome == "blocked" and run.ended_at is not None
    assert (run.usage.tokens, run.usage.model) == (2000, "fake-claude")
    assert git(repo, "show", f"{kb.branch(task_id)}:spent.txt") == (
        "work done before the budget ran out"
    )
    assert_intact(kb)
