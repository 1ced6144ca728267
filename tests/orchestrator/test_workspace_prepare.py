"""A new worktree is prepared as its repository's `.kanban.toml` says, before its agent starts:
ignored files copied, setup run once (again only after a failed one), `env` given to the
agent; a failing setup or a malformed file starts no agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support.gitrepo import git, make_repo

from orchestrator import workspace

PY = sys.executable


def _toml_argv(code: str, *args: object) -> str:
    """One setup command (an argv, no shell) running ``python -c CODE ARGS...``, as TOML."""
    return json.dumps([PY, "-c", code, *(str(a) for a in args)])


def _app(tmp_path: Path, kanban_toml: str) -> Path:
    return make_repo(
        tmp_path / "app",
        {"README": "hello\n", ".gitignore": ".env\ncache\n", ".kanban.toml": kanban_toml},
    )


WRITE_RESULT = """\
import os, pathlib
pathlib.Path("result.txt").write_text(pathlib.Path(".env").read_text() + os.environ["GREETING"])
"""


def test_an_ignored_env_file_is_copied_into_the_worktree_and_never_committed(kb, tmp_path):
    toml = '[workspace]\ncopy = [".env"]\nlink = ["cache"]\nenv = { GREETING = "hello" }\n'
    repo = _app(tmp_path, toml)
    (repo / "cache").mkdir()
    (repo / "cache" / "shared.bin").write_text("built once")
    secret = repo / ".env"
    secret.write_text("TOKEN=s3cret\n")
    secret.chmod(0o600)
    task_id = kb.create("reads .env", WRITE_RESULT, repo=repo)

    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "done")
    branch = kb.branch(task_id)
    assert git(repo, "show", f"{branch}:result.txt") == "TOKEN=s3cret\nhello"
    assert git(repo, "ls-tree", "--name-only", branch, ".env") == ""
    copied = Path(task.worktree) / ".env"
    assert copied.read_text() == "TOKEN=s3cret\n"
    assert copied.stat().st_mode & 0o777 == 0o600
    linked = Path(task.worktree) / "cache"
    assert linked.is_symlink() and linked.resolve() == (repo / "cache").resolve()
    assert git(repo, "ls-tree", "--name-only", branch, "cache") == ""


SETUP_COUNTS = """\
import os, pathlib, sys
with open(sys.argv[1], "a") as out:
    out.write(os.getcwd() + " " + os.environ["GREETING"] + "\\n")
"""
FAIL_FIRST = """\
import pathlib, sys
flag = pathlib.Path(sys.argv[1])
if not flag.exists():
    flag.write_text("tried")
    sys.exit(1)
"""


def test_setup_runs_once_in_a_new_worktree_and_not_again_on_a_retry(kb, tmp_path):
    counts = tmp_path / "setup-runs"
    setup = _toml_argv(SETUP_COUNTS, counts)
    repo = _app(tmp_path, f'[workspace]\nsetup = [{setup}]\nenv = {{ GREETING = "hi" }}\n')
    task_id = kb.create("fails once", FAIL_FIRST, tmp_path / "flag", repo=repo, max_attempts=2)

    assert kb.dispatch("--until-idle", KANBAN_RETRY_DELAY="0.1").wait() == 0
    task = kb.wait_status(task_id, "done")
    assert [run.outcome for run in kb.runs(task_id)] == ["crashed", "completed"]
    assert counts.read_text().splitlines() == [f"{task.worktree} hi"]
    log = Path(kb.runs(task_id)[0].log_path).read_text()
    assert "kanban: setup: " in log


FAILING_SETUP = """\
import sys
with open(sys.argv[1], "a") as out:
    out.write("setup\\n")
print("npm ERR! the registry is down")
sys.exit(3)
"""
MARK = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('agent ran')"


def test_a_failing_setup_fails_the_attempt_and_starts_no_agent(kb, tmp_path):
    counts = tmp_path / "setup-runs"
    repo = _app(tmp_path, f"[workspace]\nsetup = [{_toml_argv(FAILING_SETUP, counts)}]\n")
    agent_ran = tmp_path / "agent-ran"
    task_id = kb.create("never starts", MARK, agent_ran, repo=repo, max_attempts=2)

    assert kb.dispatch("--until-idle", KANBAN_RETRY_DELAY="0.1").wait() == 0
    task = kb.wait_status(task_id, "failed")
    runs = kb.runs(task_id)
    assert [run.outcome for run in runs] == ["spawn_failed", "spawn_failed"]  # retried once
    for run in runs:
        assert run.reason.startswith("setup_failed: ")
        assert "exited 3; last lines: npm ERR! the registry is down" in run.reason
        assert run.pid is None
    assert "all 2 attempts used" in task.failure_reason
    assert counts.read_text() == "setup\nsetup\n"  # a failed setup runs again on the retry
    assert not agent_ran.exists()


def test_a_malformed_kanban_toml_fails_the_task_with_its_line_and_starts_nothing(kb, tmp_path):
    repo = _app(tmp_path, '# the ports\n[workspace]\nports = "many"\n')
    agent_ran = tmp_path / "agent-ran"
    task_id = kb.create("never starts", MARK, agent_ran, repo=repo, max_attempts=3)

    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "failed")
    (run,) = kb.runs(task_id)  # permanent: not retried
    assert run.outcome == "spawn_failed"
    expected = f"{repo / '.kanban.toml'}:3: ports must be a whole number from 0 to 16"
    assert expected in task.failure_reason
    assert task.worktree is None
    assert not agent_ran.exists()


@pytest.mark.parametrize("value", ["0", "-1", "inf", "true", '"10"'])
def test_setup_timeout_must_be_positive_seconds(value):
    with pytest.raises(workspace.WorkspaceError, match="setup_timeout must be a positive"):
        workspace.parse(f"[workspace]\nsetup_timeout = {value}\n", "x/.kanban.toml")
    assert workspace.parse("", "x").workspace.setup_timeout == 600.0


def test_a_setup_over_its_timeout_is_killed_and_fails_the_attempt(kb, tmp_path):
    hang = _toml_argv("import time; print('waiting for the network', flush=True); time.sleep(60)")
    repo = _app(tmp_path, f"[workspace]\nsetup = [{hang}]\nsetup_timeout = 1\n")
    agent_ran = tmp_path / "agent-ran"
    task_id = kb.create("never starts", MARK, agent_ran, repo=repo, max_attempts=1)

    assert kb.dispatch("--until-idle").wait() == 0
    task = kb.wait_status(task_id, "failed")
    assert "ran longer than its setup_timeout of 1 s" in task.failure_reason
    assert "last lines: waiting for the network" in task.failure_reason
    assert not agent_ran.exists()
