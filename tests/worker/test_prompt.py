"""The worker's prompt says everything a worker must know (Hermes' own prompt never arrives)."""

from __future__ import annotations

import sqlite_utils

from board import actors, runs, tasks
from board.states import Outcome
from worker import prompt


def render(db: sqlite_utils.Database, task_id: int, **kwargs) -> str:
    claim = runs.claim(db, task_id=task_id)[0]
    return prompt.render(
        db,
        claim.task,
        attempt=claim.attempt,
        kind=claim.kind,
        workspace="/work/t",
        branch="kanban/t_1",
        **kwargs,
    )


def test_a_first_attempt_has_the_task_the_worktree_and_the_protocol(db):
    task = tasks.create(db, tasks.NewTask("Add a --verbose flag", body="Use click's count."))
    text = render(db, task)
    assert 'task t_1 of a kanban board: "Add a --verbose flag"' in text
    assert "Use click's count." in text
    assert "/work/t on branch kanban/t_1" in text
    for tool in ("kanban_heartbeat", "kanban_complete", "kanban_block", "kanban_create"):
        assert f"`{tool}`" in text
    assert "attempt" not in text.split("## How to report")[1].lower().split("counts as")[0]
    assert "Comments on this task" not in text and "being resumed" not in text


def test_a_retry_says_why_the_previous_attempt_ended_and_shows_comments(db):
    task = tasks.create(db, tasks.NewTask("Fix the build"))
    first = runs.claim(db)[0]
    runs.settle(
        db,
        first.run_id,
        Outcome.EXITED_WITHOUT_REPORT,
        reason="the agent exited without calling kanban_complete or kanban_block",
        retry_at=0.0,
    )
    tasks.comment(db, task, "The failing test is test_cli.py")
    text = render(db, task)
    assert "## This is attempt 2 of 3" in text
    assert "exited_without_report (the agent exited without calling kanban_complete" in text
    assert "operator: The failing test is test_cli.py" in text


def test_blockers_results_and_an_answer_after_unblock_are_in_the_prompt(db):
    first = tasks.create(db, tasks.NewTask("Design the schema"))
    second = tasks.create(db, tasks.NewTask("Write the migration", after=[first]))
    claim = runs.claim(db)[0]
    tasks.complete(
        db,
        first,
        "Two tables: users and keys",
        actor=actors.Worker(first, claim.run_id, claim.token),
    )
    runs.settle(db, claim.run_id, Outcome.COMPLETED)
    text = render(db, second)
    assert '- t_1 "Design the schema" (done): Two tables: users and keys' in text


def test_a_resumed_parent_gets_its_subtasks_outcomes_and_the_merge_conflicts(db):
    parent = tasks.create(db, tasks.NewTask("Build it in parts"))
    claim = runs.claim(db)[0]
    worker = actors.Worker(parent, claim.run_id, claim.token)
    done = tasks.create(db, tasks.NewTask("part A"), worker)
    broken = tasks.create(db, tasks.NewTask("part B"), worker)
    tasks.complete(db, parent, "split in two", actor=worker)
    runs.settle(db, claim.run_id, Outcome.COMPLETED)
    for child, outcome in ((done, Outcome.COMPLETED), (broken, Outcome.CRASHED)):
        child_claim = runs.claim(db, task_id=child)[0]
        runs.settle(
            db,
            child_claim.run_id,
            outcome,
            reason="exit code 2",
            summary="wrote a.txt" if outcome is Outcome.COMPLETED else None,
        )
    merges = [
        prompt.Merge("kanban/t_2", "merged"),
        prompt.Merge("kanban/t_3", "conflicted", ("app.py", "README.md")),
    ]
    text = render(db, parent, merges=merges)
    assert "You are being resumed" in text
    assert '- t_2 "part A": done: wrote a.txt' in text
    assert '- t_3 "part B": failed (exit code 2)' in text
    assert "- kanban/t_2: merged" in text
    assert "kanban/t_3: conflicted; CONFLICTS left for you to resolve" in text
    assert "app.py, README.md" in text
    assert "This is attempt" not in text  # a resume is a fresh start, not a retry


def test_a_prompt_never_outgrows_one_command_line_argument(db):
    body = "é" * 49_000  # 98,000 bytes: just under the board's limit for a body
    task = tasks.create(db, tasks.NewTask("Big", body=body, max_attempts=5))
    for n in range(40):
        tasks.comment(db, task, f"note {n}: " + "x" * 5_000)

    text = render(db, task)

    assert len(text.encode("utf-8")) <= prompt.MAX_BYTES < 131_072
    assert body in text  # the task itself is never cut
    assert "note 10: xxx" in text  # the oldest of the 30 most recent comments made it
    assert "`kanban show t_1` (or kanban_show) has all of it" in text
