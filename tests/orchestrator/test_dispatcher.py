"""The dispatcher end to end: the real `kanban` executable, real git repositories, real workers.

Every worker is a small Python program run by the `command` runtime. Dispatchers run as
subprocesses (`kanban dispatch`), so signals, restarts and races are the real thing. Nothing
sleeps to coordinate: workers wait for files the test creates, and the test polls the board
(or the file system) for a condition with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import signal
import subprocess
from pathlib import Path

from support.cli import KANBAN
from support.gitrepo import git, make_repo
from support.processes import gone, identities
from support.waiting import wait_for
from support.world import PY, Kanban, read_when_written

from board import connection, tasks

# Worker programs. Each gets its arguments in sys.argv[1:].

APPEND_TASK_ID = """
import os, sys
with open(sys.argv[1], "a") as log:
    log.write(os.environ["HERMES_KANBAN_TASK"] + "\\n")
"""

# Starts a grandchild in a session of its own, records both pids, then goes quiet forever.
QUIET_WITH_GRANDCHILD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         start_new_session=True)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
if len(sys.argv) > 2:  # chatty: prints a line often, so it never looks stalled
    while True:
        print("still working", flush=True)
        time.sleep(0.1)
time.sleep(300)
"""

# Appends its task id to a marker, waits for a go file, writes a file in its worktree, exits.
WAIT_FOR_GO = """
import os, sys, time
marker, go, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(marker, "a") as out:
    out.write(os.environ["HERMES_KANBAN_TASK"] + "\\n")
while not os.path.exists(go):
    time.sleep(0.02)
with open("result.txt", "w") as out:
    out.write("work of " + os.environ["HERMES_KANBAN_TASK"] + "\\n")
sys.exit(code)
"""


def pids_of(path: Path) -> list[int]:
    return [int(p) for p in read_when_written(path).split()]


# --- races, restarts -------------------------------------------------------------------------


def test_two_dispatchers_racing_on_one_board_run_each_task_exactly_once(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    ids = [kb.create(f"task {n}", APPEND_TASK_ID, ledger, repo=repo) for n in range(30)]

    first = kb.dispatch("--until-idle", "--max-workers", "4")
    second = kb.dispatch("--until-idle", "--max-workers", "4")

    assert first.wait(60) == 0, first.output()
    assert second.wait(60) == 0, second.output()
    for task_id in ids:
        assert kb.status(task_id) == "done", kb.logs()
        assert len(kb.runs(task_id)) == 1
    lines = ledger.read_text().split()
    assert sorted(lines) == sorted(f"t_{i}" for i in ids)  # each once, none twice


def test_sigkilled_dispatcher_is_replaced_and_every_task_ends_exactly_once(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started.txt"
    go_early, go_late = tmp_path / "go-early", tmp_path / "go-late"
    # Two finish while no dispatcher runs (one fails), one after the restart.
    early_ok = kb.create("early ok", WAIT_FOR_GO, started, go_early, 0, repo=repo)
    early_bad = kb.create("early bad", WAIT_FOR_GO, started, go_early, 5, repo=repo, max_attempts=1)
    late = kb.create("late", WAIT_FOR_GO, started, go_late, 0, repo=repo)
    old = kb.dispatch()
    wait_for(
        lambda: started.exists() and len(started.read_text().split()) == 3,
        "all three workers to start",
        on_fail=kb.logs,
    )

    old.proc.send_signal(signal.SIGKILL)
    old.wait()
    go_early.touch()
    wait_for(
        lambda: all(kb.runs(t)[0].exited_at for t in (early_ok, early_bad)),
        "the shims to record the early exits with no dispatcher running",
    )
    assert [kb.status(t) for t in (early_ok, early_bad, late)] == ["running"] * 3

    new = kb.dispatch("--until-idle")
    new.wait_for_output("adopting run")
    go_late.touch()
    assert new.wait() == 0, new.output()

    assert kb.status(early_ok) == "done"
    assert kb.status(late) == "done"
    bad = kb.task(early_bad)
    assert bad.status == "failed"
    assert "exit code 5" in bad.failure_reason
    for task_id in (early_ok, early_bad, late):
        (run,) = kb.runs(task_id)  # one run each: adopted, never restarted
        assert run.ended_at is not None
        assert git(repo, "show", f"{kb.branch(task_id)}:result.txt") == f"work of t_{task_id}"
        assert run.commit_sha == git(repo, "rev-parse", kb.branch(task_id))
    assert kb.runs(early_ok)[0].exit_code == 0
    assert kb.runs(early_bad)[0].exit_code == 5
    assert sorted(started.read_text().split()) == sorted(
        f"t_{t}" for t in (early_ok, early_bad, late)
    )


# --- kills: stall, timeout, cancel, signals -------------------------------------------------


def test_stalled_worker_is_killed_with_its_grandchild_and_nothing_is_left_behind(
    kb: Kanban, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    task_id = kb.create("quiet", QUIET_WITH_GRANDCHILD, pidfile, max_attempts=1)

    dispatcher = kb.dispatch("--until-idle", KANBAN_STALL_TIMEOUT="1.5")
    procs = identities(pids_of(pidfile))
    assert dispatcher.wait() == 0, dispatcher.output()

    (run,) = kb.runs(task_id)
    assert run.outcome == "stalled"
    assert "no heartbeat and no output" in run.reason
    assert kb.task(task_id).status == "failed"
    procs.append((run.shim_pid, run.shim_started_at))
    wait_for(lambda: all(gone(*p) for p in procs), "the worker, its grandchild and its shim to go")


def test_worker_over_its_timeout_is_killed_with_its_grandchild_even_while_it_prints(
    kb: Kanban, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    task_id = kb.create(
        "chatty", QUIET_WITH_GRANDCHILD, pidfile, "chatty", max_attempts=1, timeout=2.5
    )

    dispatcher = kb.dispatch("--until-idle", KANBAN_STALL_TIMEOUT="1.5")
    procs = identities(pids_of(pidfile))
    assert dispatcher.wait() == 0, dispatcher.output()

    (run,) = kb.runs(task_id)
    assert run.outcome == "timed_out"  # printing kept it from counting as stalled
    assert "timeout of 2.5 s" in run.reason
    assert kb.task(task_id).status == "failed"
    procs.append((run.shim_pid, run.shim_started_at))
    wait_for(lambda: all(gone(*p) for p in procs), "the worker, its grandchild and its shim to go")


def test_cancel_of_a_running_task_kills_its_worker_within_seconds(
    kb: Kanban, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    task_id = kb.create("long", QUIET_WITH_GRANDCHILD, pidfile)
    dispatcher = kb.dispatch()
    procs = identities(pids_of(pidfile))

    result = kb.run("cancel", f"t_{task_id}")

    assert f"t_{task_id}" in result.stdout
    wait_for(
        lambda: all(gone(*p) for p in procs),
        "the cancelled worker to be killed",
        timeout=10,
        on_fail=dispatcher.output,
    )
    wait_for(lambda: kb.runs(task_id)[0].ended_at, "the run to be settled", timeout=10)
    (run,) = kb.runs(task_id)
    assert run.outcome == "cancelled"
    assert kb.status(task_id) == "cancelled"


def test_sigint_once_starts_nothing_new_and_waits_for_the_running_worker(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    started, go = tmp_path / "started.txt", tmp_path / "go"
    running = kb.create("running", WAIT_FOR_GO, started, go, 0, repo=repo)
    dispatcher = kb.dispatch()
    read_when_written(started)

    dispatcher.proc.send_signal(signal.SIGINT)
    dispatcher.wait_for_output("starting no new workers")
    later = kb.create("later", APPEND_TASK_ID, tmp_path / "ledger.txt")
    go.touch()

    assert dispatcher.wait() == 0, dispatcher.output()
    assert kb.status(running) == "done"
    assert git(repo, "show", f"{kb.branch(running)}:result.txt") == f"work of t_{running}"
    assert kb.status(later) == "ready"
    assert kb.runs(later) == []


def test_sigint_twice_stops_the_running_worker_and_gives_its_attempt_back(
    kb: Kanban, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    task_id = kb.create("long", QUIET_WITH_GRANDCHILD, pidfile)
    dispatcher = kb.dispatch()
    procs = identities(pids_of(pidfile))

    dispatcher.proc.send_signal(signal.SIGINT)
    dispatcher.wait_for_output("starting no new workers")
    dispatcher.proc.send_signal(signal.SIGINT)

    assert dispatcher.wait() == 130  # interrupted: the work was stopped, not finished
    assert "stopping the running workers" in dispatcher.output()
    assert all(gone(*p) for p in procs)
    (run,) = kb.runs(task_id)
    assert run.outcome == "lost"
    assert run.reason == "the dispatcher was stopped"
    task = kb.task(task_id)
    assert task.status == "ready"  # the next dispatcher runs it again
    assert task.attempts == 0


# --- retries and failures that must not loop ---------------------------------------------------


def test_failing_task_is_retried_with_backoff_then_fails_with_the_reason(
    kb: Kanban, tmp_path: Path
) -> None:
    attempts_log = tmp_path / "attempts.txt"
    code = """
import os, sys
with open(sys.argv[1], "a") as out:
    out.write(os.environ.get("KANBAN_LAST_OUTCOME", "-") + "\\n")
print("something broke")
sys.exit(3)
"""
    task_id = kb.create("flaky", code, attempts_log, max_attempts=3)
    base = 0.6
    dispatcher = kb.dispatch("--until-idle", KANBAN_RETRY_DELAY=str(base))

    # Between attempts the task waits, ready, for its scheduled time.
    scheduled = wait_for(
        lambda: (t := kb.task(task_id)).status == "ready" and t.next_attempt_at and t,
        "the first retry to be scheduled",
        on_fail=dispatcher.output,
    )
    assert scheduled.attempts == 1
    assert dispatcher.wait() == 0, dispatcher.output()

    task = kb.task(task_id)
    assert task.status == "failed"
    assert task.failure_reason == "exit code 3; all 3 attempts used"
    history = kb.runs(task_id)
    assert [r.kind for r in history] == ["first", "retry", "retry"]
    assert [r.outcome for r in history] == ["crashed"] * 3
    # Exponential backoff with equal jitter: at least base/2, then at least base (counted
    # from the exit the shim recorded, which precedes the moment the retry was scheduled).
    assert history[1].started_at - history[0].exited_at >= base / 2
    assert history[2].started_at - history[1].exited_at >= base
    retries = [
        e for e in kb.events(task_id) if e["from_status"] == "running" and e["to_status"] == "ready"
    ]
    assert len(retries) == 2
    assert all("crashed: exit code 3" in json.loads(e["data"])["reason"] for e in retries)
    assert attempts_log.read_text().split() == ["-", "crashed", "crashed"]


def test_task_whose_command_does_not_exist_fails_at_once_with_the_reason(kb: Kanban) -> None:
    task_id = tasks.create(
        kb.db,
        tasks.NewTask(
            "missing", runtime="command", runtime_options={"argv": ["no-such-kanban-program"]}
        ),
    )

    assert kb.dispatch("--until-idle").wait() == 0

    task = kb.task(task_id)
    assert task.status == "failed"
    assert "no-such-kanban-program" in task.failure_reason
    assert "No such file" in task.failure_reason
    (run,) = kb.runs(task_id)
    assert run.outcome == "spawn_failed"


def test_task_whose_repository_was_deleted_fails_with_a_clear_reason(
    kb: Kanban, tmp_path: Path
) -> None:
    doomed = make_repo(tmp_path / "doomed")
    task_id = kb.create("orphan", APPEND_TASK_ID, tmp_path / "ledger.txt", repo=doomed)
    subprocess.run(["rm", "-rf", str(doomed)], check=True)

    assert kb.dispatch("--until-idle").wait() == 0

    task = kb.task(task_id)
    assert task.status == "failed"
    assert f"{doomed} is not a git repository (no such directory)" in task.failure_reason
    (run,) = kb.runs(task_id)
    assert run.outcome == "spawn_failed"
    assert not (tmp_path / "ledger.txt").exists()


# --- work, worktrees, gc -------------------------------------------------------------------


def test_worker_uncommitted_files_end_up_committed_on_its_branch(kb: Kanban, repo: Path) -> None:
    code = """
import os
with open("a.txt", "w") as out:
    out.write("changed\\n")
os.remove("b.txt")
os.makedirs("new", exist_ok=True)
with open("new/c.txt", "w") as out:
    out.write("new file\\n")
"""
    main_before = git(repo, "rev-parse", "main")
    task_id = kb.create("edit", code, repo=repo)

    assert kb.dispatch("--until-idle").wait() == 0

    branch = kb.branch(task_id)
    assert git(repo, "show", f"{branch}:a.txt") == "changed"
    assert git(repo, "show", f"{branch}:new/c.txt") == "new file"
    assert "b.txt" not in git(repo, "ls-tree", "-r", "--name-only", branch).split()
    (run,) = kb.runs(task_id)
    assert run.commit_sha == git(repo, "rev-parse", branch)
    assert git(repo, "rev-parse", f"{branch}~1") == main_before
    assert git(repo, "rev-parse", "main") == main_before
    assert git(repo, "status", "--porcelain") == ""  # the main checkout is untouched


def test_gc_removes_committed_worktrees_and_keeps_unmerged_branches_unless_forced(
    kb: Kanban, repo: Path
) -> None:
    changes = kb.create("changes", "open('x.txt', 'w').write('x')", repo=repo)
    nothing = kb.create("nothing", "pass", repo=repo)
    assert kb.dispatch("--until-idle").wait() == 0
    tree_changes = Path(kb.task(changes).worktree)
    tree_nothing = Path(kb.task(nothing).worktree)
    assert tree_changes.is_dir() and tree_nothing.is_dir()

    first = kb.run("gc")

    assert not tree_changes.exists() and not tree_nothing.exists()
    assert f"kept branches: {kb.branch(changes)}" in first.stdout
    assert f"deleted branches: {kb.branch(nothing)}" in first.stdout
    assert git(repo, "show", f"{kb.branch(changes)}:x.txt") == "x"
    assert git(repo, "branch", "--list", kb.branch(nothing)) == ""

    forced = kb.run("gc", "--force")

    assert f"deleted branches: {kb.branch(changes)}" in forced.stdout
    assert git(repo, "branch", "--list", "kanban/*") == ""


def test_gc_keeps_a_worktree_written_to_after_its_task_ended(kb: Kanban, repo: Path) -> None:
    task_id = kb.create("done", "pass", repo=repo)
    assert kb.dispatch("--until-idle").wait() == 0
    tree = Path(kb.task(task_id).worktree)
    (tree / "late.txt").write_text("written after the task ended\n")

    result = kb.run("gc")

    assert (tree / "late.txt").read_text() == "written after the task ended\n"
    assert f"kept worktrees: {tree}" in result.stdout
    assert kb.branch(task_id) in git(repo, "branch", "--list", "kanban/*")


def test_task_without_a_repository_runs_in_a_scratch_directory(kb: Kanban, tmp_path: Path) -> None:
    out = tmp_path / "where.json"
    code = """
import json, os, sys
json.dump({"cwd": os.getcwd(), "workspace": os.environ["HERMES_KANBAN_WORKSPACE"],
           "branch": os.environ.get("HERMES_KANBAN_BRANCH")}, open(sys.argv[1], "w"))
"""
    task_id = kb.create("no repo", code, out)

    assert kb.dispatch("--until-idle").wait() == 0

    where = json.loads(out.read_text())
    scratch = tmp_path / "scratch" / kb.board_id / f"t_{task_id}"
    assert Path(where["cwd"]) == scratch
    assert Path(where["workspace"]) == scratch
    assert where["branch"] is None
    task = kb.task(task_id)
    assert task.status == "done"
    assert task.branch is None


# --- the worker's environment and its own reports ---------------------------------------------

PRINT_ENV_AND_GIT = """
import json, os, subprocess
top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
print(json.dumps({"env": dict(os.environ), "toplevel": top.stdout.strip()}))
with open("from-worker.txt", "w") as out:
    out.write("hello\\n")
"""


def test_inherited_git_variables_reach_neither_the_worker_nor_git(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    decoy = make_repo(tmp_path / "decoy")
    decoy_head = git(decoy, "rev-parse", "HEAD")
    task_id = kb.create("env", PRINT_ENV_AND_GIT, repo=repo)

    dispatcher = kb.dispatch(
        "--until-idle",
        GIT_DIR=str(decoy / ".git"),
        GIT_WORK_TREE=str(decoy),
        GIT_INDEX_FILE=str(decoy / ".git/index"),
    )
    assert dispatcher.wait() == 0, dispatcher.output()

    (run,) = kb.runs(task_id)
    report = json.loads(Path(run.log_path).read_text().splitlines()[0])
    assert not {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"} & set(report["env"])
    assert Path(report["toplevel"]) == Path(kb.task(task_id).worktree)
    assert git(repo, "show", f"{kb.branch(task_id)}:from-worker.txt") == "hello"
    assert git(decoy, "rev-parse", "HEAD") == decoy_head
    assert git(decoy, "branch", "--list", "kanban/*") == ""
    assert git(decoy, "status", "--porcelain") == ""


def test_worker_environment_identifies_its_run_and_its_own_report_beats_its_exit_code(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    code = """
import json, os, subprocess, sys
kanban, out = sys.argv[1], sys.argv[2]
def run(*args, **env):
    result = subprocess.run([kanban, *args], capture_output=True, text=True,
                            env={**os.environ, **env})
    return [result.returncode, result.stderr.strip()]
report = {
    "env": {k: v for k, v in os.environ.items() if "KANBAN" in k},
    "heartbeat": run("heartbeat", "--note", "halfway there"),
    "forged": run("heartbeat", HERMES_KANBAN_TOKEN="not-the-token"),
    "complete": run("complete", "--summary", "did it by report"),
}
with open(out, "w") as handle:
    json.dump(report, handle)
sys.exit(3)  # the report stands, whatever the exit code
"""
    out = tmp_path / "report.json"
    task_id = kb.create("reports", code, KANBAN, out, repo=repo)

    assert kb.dispatch("--until-idle").wait() == 0

    report = json.loads(out.read_text())
    (run,) = kb.runs(task_id)
    task = kb.task(task_id)
    expected = {
        "HERMES_KANBAN_TASK": f"t_{task_id}",
        "HERMES_KANBAN_RUN_ID": str(run.id),
        "HERMES_KANBAN_WORKSPACE": task.worktree,
        "HERMES_KANBAN_BRANCH": kb.branch(task_id),
        "KANBAN_DB": str(kb.db_path),
    }
    assert {k: report["env"].get(k) for k in expected} == expected
    token = report["env"]["HERMES_KANBAN_TOKEN"]
    assert hashlib.sha256(token.encode()).hexdigest() == run.token_hash  # only its hash kept
    assert report["heartbeat"][0] == 0
    assert report["forged"][0] == 1
    assert report["forged"][1].startswith("Error:")
    assert report["complete"][0] == 0
    assert run.note == "halfway there"
    assert run.outcome == "completed"
    assert run.exit_code == 3
    assert task.status == "done"
    assert task.summary == "did it by report"


# --- event-driven start ----------------------------------------------------------------------


def test_task_created_by_another_process_starts_without_waiting_for_the_poll(
    kb: Kanban, tmp_path: Path
) -> None:
    dispatcher = kb.dispatch(KANBAN_POLL_INTERVAL="30")
    wait_for(
        lambda: connection.read(kb.db, "SELECT 1 FROM dispatchers"),
        "the dispatcher to register",
        on_fail=dispatcher.output,
    )
    marker = tmp_path / "marker"
    command = shlex.join([PY, "-c", "import sys; open(sys.argv[1], 'w').close()", str(marker)])

    kb.run("create", "prompt", "--command", command)

    # Well below the 30 s poll: only the wake-up can have started it.
    wait_for(marker.exists, "the worker to start", timeout=10, on_fail=dispatcher.output)


# --- subtasks ----------------------------------------------------------------------------------

PARENT = """
import json, os, shlex, subprocess, sys
kanban, state, child_code = sys.argv[1:4]
workspace = os.environ["HERMES_KANBAN_WORKSPACE"]
first_done = os.path.join(state, "parent-first-run")
if not os.path.exists(first_done):
    with open(os.path.join(workspace, "parent.txt"), "w") as out:
        out.write("parent\\n")
    for name in ("child1", "child2"):
        command = shlex.join([sys.executable, "-c", child_code, name, state])
        subprocess.run([kanban, "create", name, "--command", command], check=True)
    open(first_done, "w").close()
else:
    with open(os.path.join(state, "resumed.json"), "w") as out:
        json.dump(sorted(os.listdir(workspace)), out)
"""

CHILD = """
import os, sys, time
name, state = sys.argv[1:3]
while not os.path.exists(os.path.join(state, "go-children")):
    time.sleep(0.02)
saw = os.path.exists("parent.txt")
with open(name + ".txt", "w") as out:
    out.write(f"{name} saw parent.txt: {saw}\\n")
"""


def test_subtasks_run_on_branches_of_the_parent_which_resumes_with_them_merged(
    kb: Kanban, repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    parent = kb.create("orchestrate", PARENT, KANBAN, state, CHILD, repo=repo)
    dispatcher = kb.dispatch("--until-idle")

    kb.wait_status(parent, "waiting")
    children = tasks.list_tasks(kb.db, parent=parent)
    assert [c.title for c in children] == ["child1", "child2"]
    (state / "go-children").touch()
    assert dispatcher.wait() == 0, dispatcher.output()

    assert kb.status(parent) == "done"
    assert [r.kind for r in kb.runs(parent)] == ["first", "resume"]
    for child, name in zip(children, ("child1", "child2"), strict=True):
        assert kb.status(child.id) == "done"
        branch = kb.branch(child.id)
        assert git(repo, "show", f"{branch}:{name}.txt") == f"{name} saw parent.txt: True"
        # Branched from the parent's branch, with the parent's work so far committed.
        assert git(repo, "show", f"{branch}:parent.txt") == "parent"
        assert child.parent_id == parent
    resumed = json.loads((state / "resumed.json").read_text())
    assert {"parent.txt", "child1.txt", "child2.txt"} <= set(resumed)
    parent_branch = kb.branch(parent)
    files = git(repo, "ls-tree", "-r", "--name-only", parent_branch).split()
    assert {"parent.txt", "child1.txt", "child2.txt"} <= set(files)
    assert any(e["kind"] == "merged" for e in kb.events(parent))
