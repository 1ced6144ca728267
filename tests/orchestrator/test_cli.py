"""Acceptance tests: the real `kanban` executable, as a user or a script runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.cli import kanban

from board import connection


def integrity(db_path: Path) -> str:
    db = connection.connect(db_path)
    try:
        return db.conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.conn.close()


def test_create_prints_the_new_task_id_and_json_gives_the_task_object():
    assert kanban("create", "Write the docs").stdout.strip() == "t_1"
    obj = json.loads(
        kanban("create", "Review them", "--after", "t_1", "--priority", "3", "--json").stdout
    )
    for key in (
        "id",
        "title",
        "status",
        "priority",
        "parent",
        "blockers",
        "dependents",
        "children",
        "branch",
        "worktree",
        "attempts",
        "max_attempts",
        "summary",
        "block_reason",
    ):
        assert key in obj
    assert obj["id"] == "t_2"
    assert obj["status"] == "todo"
    assert obj["blockers"] == ["t_1"]
    assert obj["priority"] == 3


def test_show_json_has_runs_events_comments_and_says_why_a_task_cannot_run():
    kanban("create", "First")
    kanban("create", "Second", "--after", "t_1")
    kanban("comment", "t_2", "Use the v2 API")
    shown = json.loads(kanban("show", "t_2", "--json").stdout)
    assert shown["runs"] == []
    assert [c["body"] for c in shown["comments"]] == ["Use the v2 API"]
    assert [e["kind"] for e in shown["events"]][:1] == ["created"]
    assert "t_1" in shown["why_not_runnable"]
    assert json.loads(kanban("show", "t_1", "--json").stdout)["dependents"] == ["t_2"]


def test_list_filters_by_status_and_board_draws_columns():
    kanban("create", "A")
    kanban("create", "B", "--after", "t_1")
    ready = json.loads(kanban("list", "--status", "ready", "--json").stdout)
    assert [t["id"] for t in ready] == ["t_1"]
    drawn = kanban("board").stdout
    assert "ready (1)" in drawn and "todo (1)" in drawn


def test_command_is_split_like_a_shell_but_stored_as_argv():
    obj = json.loads(
        kanban("create", "Run", "--command", "printf '%s\\n' 'a b' c", "--json").stdout
    )
    assert obj["runtime"] == "command"
    assert obj["runtime_options"] == {"argv": ["printf", "%s\\n", "a b", "c"]}


def test_block_unblock_with_answer_cancel_and_retry():
    kanban("create", "Decide")
    kanban("block", "t_1", "Which database?")
    shown = json.loads(kanban("show", "t_1", "--json").stdout)
    assert shown["status"] == "blocked" and shown["block_reason"] == "Which database?"
    assert "ready" in kanban("unblock", "t_1", "--comment", "PostgreSQL").stdout
    shown = json.loads(kanban("show", "t_1", "--json").stdout)
    assert shown["comments"][-1]["body"] == "PostgreSQL"
    kanban("cancel", "t_1")
    assert json.loads(kanban("show", "t_1", "--json").stdout)["status"] == "cancelled"
    kanban("retry", "t_1")
    assert json.loads(kanban("show", "t_1", "--json").stdout)["status"] == "ready"


def test_complete_by_an_operator_and_link_unlink():
    kanban("create", "A")
    kanban("create", "B")
    kanban("link", "t_1", "t_2")
    assert json.loads(kanban("show", "t_2", "--json").stdout)["status"] == "todo"
    kanban("unlink", "t_1", "t_2")
    assert json.loads(kanban("show", "t_2", "--json").stdout)["status"] == "ready"
    kanban("link", "t_1", "t_2")
    kanban("complete", "t_1", "--summary", "done by hand")
    assert json.loads(kanban("show", "t_2", "--json").stdout)["status"] == "ready"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "t_99"), "task t_99 does not exist"),
        (("show", "banana"), "is not a task id"),
        (("unblock", "t_1"), "cannot go from ready to ready"),
        (("link", "t_2", "t_1"), "cannot block"),
        (("list", "--status", "sleeping"), "unknown status 'sleeping'"),
        (("complete", "t_1", "--summary", "  "), "summary must not be empty"),
        (("heartbeat", "t_1"), "heartbeat is sent by workers"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message_and_leaves_the_board_intact(db_path, args, message):
    kanban("create", "A")
    kanban("create", "B", "--after", "t_1")
    before = kanban("list", "--json").stdout
    result = kanban(*args, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert kanban("list", "--json").stdout == before
    assert integrity(db_path) == "ok"


def test_an_unwritable_board_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    result = kanban("--db", str(blocker / "board.db"), "list", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "--db" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2():
    assert kanban("create", check=False).returncode == 2
    assert kanban("no-such-command", check=False).returncode == 2


def test_the_db_option_and_the_environment_variable_choose_the_board(tmp_path, db_path):
    other = tmp_path / "other.db"
    kanban("--db", str(other), "create", "Elsewhere")
    env = {**os.environ, "KANBAN_DB": str(other)}
    assert [t["title"] for t in json.loads(kanban("list", "--json", env=env).stdout)] == [
        "Elsewhere"
    ]
    assert not db_path.exists()


def test_inside_a_worker_commands_act_as_its_run_and_a_stale_token_is_refused(db_path):
    from board import runs

    kanban("create", "Worker task")
    db = connection.connect(db_path)
    claim = runs.claim(db)[0]
    env = {
        **os.environ,
        "HERMES_KANBAN_TASK": "t_1",
        "HERMES_KANBAN_RUN_ID": str(claim.run_id),
        "HERMES_KANBAN_TOKEN": claim.token,
    }
    kanban("heartbeat", "--note", "compiling", env=env)
    child = kanban("create", "A subtask", env=env).stdout.strip()
    assert json.loads(kanban("show", child, "--json").stdout)["parent"] == "t_1"
    kanban("comment", "t_1", "halfway", env=env)
    stale = {**env, "HERMES_KANBAN_TOKEN": "not-the-token"}
    refused = kanban("complete", "--summary", "done", env=stale, check=False)
    assert refused.returncode == 1 and "no longer holds task t_1" in refused.stderr
    reported = kanban("complete", "--summary", "split in two", env=env).stdout
    assert "reported complete" in reported and "waits for its open subtasks" in reported
    assert json.loads(kanban("show", "t_1", "--json").stdout)["status"] == "running"
    after = kanban("comment", "t_1", "too late", env=env, check=False)
    assert after.returncode == 1 and "already ended" in after.stderr


def test_help_lists_every_command_with_an_example():
    text = kanban("--help").stdout
    for command in (
        "create",
        "list",
        "show",
        "board",
        "comment",
        "link",
        "unlink",
        "block",
        "unblock",
        "complete",
        "cancel",
        "retry",
        "heartbeat",
        "dispatch",
        "logs",
        "watch",
        "gc",
        "run",
        "schedule",
    ):
        assert command in text
    assert "Example" in kanban("create", "--help").stdout
