"""The real `kanban` CLI inside a worker obeys the board's one policy (board.policy).

A worker's environment is that of a live run claimed with the board's own functions, so the
CLI acts as that run exactly as it would inside a dispatched worker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.cli import kanban
from support.gitrepo import make_repo

from board import connection, records, runs, tasks


def inside_worker(db_path: Path, *create_args: str) -> tuple[dict[str, str], int]:
    """Create a task as an operator, claim it, and return its worker's environment."""
    kanban("create", "the worker's task", *create_args)
    db = connection.connect(db_path)
    try:
        (claim,) = runs.claim(db)
    finally:
        db.conn.close()
    env = {
        **os.environ,
        "HERMES_KANBAN_TASK": f"t_{claim.task.id}",
        "HERMES_KANBAN_RUN_ID": str(claim.run_id),
        "HERMES_KANBAN_TOKEN": claim.token,
    }
    return env, claim.task.id


def subtasks(db_path: Path, task_id: int) -> list[records.Task]:
    db = connection.connect(db_path)
    try:
        return tasks.list_tasks(db, parent=task_id)
    finally:
        db.conn.close()


def test_a_sandboxed_worker_cannot_create_command_or_claude_tasks(db_path):
    env, me = inside_worker(db_path)  # on hermes, the default runtime

    for args in (["--command", "curl example.com"], ["--runtime", "claude"]):
        refused = kanban("create", "escape", *args, env=env, check=False)
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: your task t_1 runs on hermes")
        assert "leave the runtime and any command out to use hermes" in refused.stderr
    allowed = kanban("create", "fine", "--runtime", "codex", "--json", env=env, check=False)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["parent"] == "t_1"
    assert [t.title for t in subtasks(db_path, me)] == ["fine"]


def test_a_command_worker_creates_command_subtasks(db_path):
    env, me = inside_worker(db_path, "--command", "make check")

    inherited = kanban("create", "again", "--json", env=env, check=False)
    other = kanban("create", "docs", "--command", "make docs", "--json", env=env, check=False)

    assert inherited.returncode == 0 and other.returncode == 0, inherited.stderr + other.stderr
    assert json.loads(inherited.stdout)["runtime_options"] == {"argv": ["make", "check"]}
    assert json.loads(other.stdout)["runtime_options"] == {"argv": ["make", "docs"]}
    assert len(subtasks(db_path, me)) == 2


def test_a_worker_creates_subtasks_only_in_its_repository_and_from_its_branch(tmp_path, db_path):
    app = make_repo(tmp_path / "app", {}).resolve()
    other = make_repo(tmp_path / "other", {}).resolve()
    env, me = inside_worker(db_path, "--repo", str(app))

    elsewhere = kanban("create", "x", "--repo", str(other), env=env, check=False)
    assert elsewhere.returncode == 1
    assert "a subtask works in its parent's repository" in elsewhere.stderr
    rebased = kanban("create", "x", "--repo", str(app), "--base", "HEAD", env=env, check=False)
    assert rebased.returncode == 1 and "Leave the base out" in rebased.stderr
    here = kanban("create", "part", "--repo", str(app), "--json", env=env, check=False)
    assert here.returncode == 0, here.stderr
    # Its base is decided when it starts: its parent's branch.
    assert [(t.repo, t.base_ref) for t in subtasks(db_path, me)] == [(str(app), None)]


def test_a_worker_cannot_submit_a_batch(tmp_path, db_path):
    env, me = inside_worker(db_path)
    batch = tmp_path / "b.toml"
    batch.write_text('[tasks.a]\ntitle = "A"\ncommand = "true"\n')

    refused = kanban("run", str(batch), env=env, check=False)

    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: submitting a batch is for people, cron")
    assert "create subtasks of your task instead" in refused.stderr
    db = connection.connect(db_path)
    try:
        assert [t.id for t in tasks.list_tasks(db)] == [me]
    finally:
        db.conn.close()


def test_a_worker_cannot_add_or_remove_schedules(tmp_path, db_path):
    batch = tmp_path / "b.toml"
    batch.write_text('[tasks.a]\ntitle = "A"\ncommand = "true"\n')
    operator_env = {**os.environ, "KANBAN_DB": str(db_path)}
    kanban("schedule", "add", "nightly", "--cron", "0 3 * * *", str(batch), env=operator_env)
    env, _me = inside_worker(db_path)

    added = kanban(
        "schedule", "add", "mine", "--cron", "* * * * *", str(batch), env=env, check=False
    )
    removed = kanban("schedule", "remove", "nightly", env=env, check=False)

    for refused in (added, removed):
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: adding or removing a schedule is for people")
    listed = kanban("schedule", "list", "--json", env=operator_env).stdout
    assert [s["name"] for s in json.loads(listed)] == ["nightly"]
