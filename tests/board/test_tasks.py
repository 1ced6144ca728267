"""Tasks: creation, the state machine's refusals, subtasks, block/unblock, cancel, retry, views."""

from __future__ import annotations

import pytest
import sqlite_utils
from support.board_kit import claim, finish, new, status, worker

from board import errors, runs, tasks, views
from board.states import Outcome, Status


def events(db: sqlite_utils.Database, task_id: int, kind: str = "status") -> list[tuple]:
    return db.conn.execute(
        "SELECT from_status, to_status FROM events WHERE task_id = ? AND kind = ? ORDER BY id",
        (task_id, kind),
    ).fetchall()


# Creation


def test_a_task_without_blockers_is_created_ready(db: sqlite_utils.Database) -> None:
    task_id = new(db, "Fix the login bug", body="steps", priority=5)

    task = tasks.get(db, task_id)
    assert (task.status, task.title, task.body, task.priority) == (
        "ready",
        "Fix the login bug",
        "steps",
        5,
    )
    assert task.runtime == tasks.DEFAULT_RUNTIME
    assert events(db, task_id, "created") == [(None, "todo")]
    assert events(db, task_id) == [("todo", "ready")]


def test_a_task_with_an_unfinished_blocker_is_created_todo(db: sqlite_utils.Database) -> None:
    blocker = new(db)
    blocked = new(db, after=[blocker])

    assert status(db, blocked) == "todo"
    assert events(db, blocked) == []


def test_a_task_whose_blockers_are_all_done_is_created_ready(db: sqlite_utils.Database) -> None:
    blocker = new(db)
    tasks.complete(db, blocker, "done by hand")

    assert status(db, new(db, after=[blocker, blocker])) == "ready"


def test_a_title_must_not_be_empty_and_blockers_must_exist(db: sqlite_utils.Database) -> None:
    with pytest.raises(errors.InvalidInput, match="non-empty title"):
        new(db, "   ")
    with pytest.raises(errors.TaskNotFound, match="t_99"):
        new(db, after=[99])
    with pytest.raises(errors.InvalidInput, match="max attempts"):
        new(db, max_attempts=0)
    assert tasks.list_tasks(db) == []


def test_a_subtask_inherits_runtime_options_and_repo_from_its_parent(
    db: sqlite_utils.Database,
) -> None:
    parent = new(db, runtime="command", runtime_options={"argv": ["true"]}, repo="/r")
    child = new(db, parent=parent)
    other = new(db, parent=parent, runtime="codex")

    assert tasks.get(db, child).runtime == "command"
    assert views.task_object(db, child)["runtime_options"] == {"argv": ["true"]}
    assert (tasks.get(db, child).repo, tasks.get(db, child).depth) == ("/r", 1)
    assert views.task_object(db, other)["runtime_options"] == {}


# The state machine's refusals


def test_an_illegal_transition_names_the_task_and_both_states(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    tasks.cancel(db, task_id)

    with pytest.raises(errors.InvalidTransition) as caught:
        tasks.complete(db, task_id, "too late")
    assert (caught.value.task_id, caught.value.from_status, caught.value.to_status) == (
        "t_1",
        "cancelled",
        "done",
    )
    assert "task t_1 cannot go from cancelled to done" in str(caught.value)

    tasks.retry(db, task_id)
    tasks.complete(db, task_id, "done")
    with pytest.raises(errors.InvalidTransition, match="t_1 cannot go from done to ready"):
        tasks.retry(db, task_id)
    with pytest.raises(errors.InvalidTransition, match="from done to cancelled"):
        tasks.cancel(db, task_id)
    with pytest.raises(errors.InvalidTransition, match="from done to blocked"):
        tasks.block(db, task_id, "why")
    assert status(db, task_id) == "done"


def test_only_a_blocked_task_can_be_unblocked(db: sqlite_utils.Database) -> None:
    task_id = new(db)

    with pytest.raises(errors.InvalidTransition, match=r"from ready to ready.*only blocked"):
        tasks.unblock(db, task_id)


def test_a_refused_change_leaves_no_trace(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    tasks.cancel(db, task_id)
    before = db.conn.execute("SELECT count(*) FROM events").fetchone()[0]

    with pytest.raises(errors.InvalidTransition):
        tasks.unblock(db, task_id, comment="please")

    assert db.conn.execute("SELECT count(*) FROM events").fetchone()[0] == before
    assert db.conn.execute("SELECT count(*) FROM comments").fetchone()[0] == 0


def test_an_unknown_task_is_reported_by_its_id(db: sqlite_utils.Database) -> None:
    with pytest.raises(errors.TaskNotFound, match="t_42 does not exist"):
        tasks.complete(db, 42, "x")
    with pytest.raises(errors.TaskNotFound, match="t_42"):
        tasks.comment(db, 42, "x")


# Block, unblock, comment


def test_block_then_unblock_with_a_comment_returns_the_task_to_ready(
    db: sqlite_utils.Database,
) -> None:
    task_id = new(db)
    tasks.block(db, task_id, "  needs the API key  ")
    assert tasks.get(db, task_id).block_reason == "needs the API key"
    assert status(db, task_id) == "blocked"

    assert tasks.unblock(db, task_id, comment="key is in the vault") == Status.READY

    task = tasks.get(db, task_id)
    assert (task.status, task.block_reason) == ("ready", None)
    (note,) = views.show(db, task_id)["comments"]
    assert (note["author"], note["body"]) == ("operator", "key is in the vault")


def test_unblocking_a_task_with_an_unfinished_blocker_returns_it_to_todo(
    db: sqlite_utils.Database,
) -> None:
    blocker = new(db)
    blocked = new(db, after=[blocker])
    tasks.block(db, blocked, "wait")

    assert tasks.unblock(db, blocked) == Status.TODO
    assert status(db, blocked) == "todo"


def test_blocking_needs_a_reason_and_a_comment_needs_a_body(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    with pytest.raises(errors.InvalidInput, match="reason must not be empty"):
        tasks.block(db, task_id, " ")
    with pytest.raises(errors.InvalidInput, match="comment is empty"):
        tasks.comment(db, task_id, "\n")
    assert status(db, task_id) == "ready"


def test_an_operator_blocking_a_running_task_ends_its_run(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)

    tasks.block(db, task_id, "wrong approach")

    assert runs.get(db, claimed.run_id).outcome == Outcome.BLOCKED
    assert tasks.get(db, task_id).current_run_id is None
    with pytest.raises(errors.StaleRun):
        tasks.complete(db, task_id, "finished anyway", actor=worker(claimed))


# Subtasks


def test_completing_a_task_with_open_subtasks_makes_it_wait(db: sqlite_utils.Database) -> None:
    parent = new(db)
    claimed = claim(db, parent)
    child = tasks.create(db, tasks.NewTask("part 1"), worker(claimed))
    assert tasks.get(db, child).parent_id == parent

    assert tasks.complete(db, parent, "split into parts", actor=worker(claimed)) == Status.RUNNING
    runs.settle(db, claimed.run_id, Outcome.COMPLETED)

    assert status(db, parent) == "waiting"
    assert (
        "waiting for its subtasks to end: t_2 (ready)"
        in views.task_object(db, parent)["why_not_runnable"]
    )


@pytest.mark.parametrize("ending", ["done", "failed", "cancelled"])
def test_the_last_subtask_ending_makes_the_parent_ready_to_resume(
    db: sqlite_utils.Database, ending: str
) -> None:
    parent = new(db)
    claimed = claim(db, parent)
    first = tasks.create(db, tasks.NewTask("part 1"), worker(claimed))
    last = tasks.create(db, tasks.NewTask("part 2", max_attempts=1), worker(claimed))
    tasks.complete(db, parent, "split", actor=worker(claimed))
    runs.settle(db, claimed.run_id, Outcome.EXITED_WITHOUT_REPORT)
    tasks.complete(db, first, "part 1 done")
    assert status(db, parent) == "waiting"

    if ending == "done":
        tasks.complete(db, last, "part 2 done")
    elif ending == "failed":
        child_run = claim(db, last)
        runs.settle(db, child_run.run_id, Outcome.CRASHED, reason="exit 1")
    else:
        tasks.cancel(db, last)

    assert status(db, last) == ending
    parent_row = tasks.get(db, parent)
    assert (parent_row.status, parent_row.resume) == ("ready", 1)
    resumed = claim(db, parent)
    assert resumed.kind == "resume"


def test_a_resume_stays_a_resume_until_a_run_of_it_completes(db: sqlite_utils.Database) -> None:
    parent = new(db, max_attempts=3)
    claimed = claim(db, parent)
    child = tasks.create(db, tasks.NewTask("part"), worker(claimed))
    tasks.complete(db, parent, "split", actor=worker(claimed))
    runs.settle(db, claimed.run_id, Outcome.COMPLETED)
    tasks.complete(db, child, "done")

    resumed = claim(db, parent)
    assert resumed.kind == "resume"
    # Its dispatcher dies mid-merge: the run is lost, and the next attempt resumes again.
    runs.settle(db, resumed.run_id, Outcome.LOST, retry_at=0, refund=True)
    again = claim(db, parent)
    assert again.kind == "resume"
    assert finish(db, again, "integrated") == Status.DONE
    assert tasks.get(db, parent).resume == 0


def test_subtasks_that_end_before_their_parents_run_does_are_integrated_by_a_resume(
    db: sqlite_utils.Database,
) -> None:
    parent = new(db)
    claimed = claim(db, parent)
    child = tasks.create(db, tasks.NewTask("part"), worker(claimed))
    tasks.complete(db, parent, "split", actor=worker(claimed))
    tasks.complete(db, child, "done")
    assert status(db, parent) == "running"  # reported; its run has not ended

    runs.settle(db, claimed.run_id, Outcome.COMPLETED)

    assert (status(db, parent), tasks.get(db, parent).resume) == ("ready", True)
    assert tasks.get(db, parent).attempts == 0  # a resume gets a fresh set of attempts
    resumed = claim(db, parent)
    assert resumed.kind == "resume"
    assert finish(db, resumed, "merged the part") == Status.DONE


def test_a_waiting_parent_is_not_resumed_before_its_previous_run_is_settled(
    db: sqlite_utils.Database,
) -> None:
    parent = new(db)
    claimed = claim(db, parent)
    child = tasks.create(db, tasks.NewTask("part"), worker(claimed))
    tasks.block(db, parent, "needs the part first", actor=worker(claimed))
    tasks.unblock(db, parent)
    tasks.complete(db, child, "done")

    assert status(db, parent) == "ready"
    assert runs.claim(db) == []  # the parent's first run is still un-ended
    runs.settle(db, claimed.run_id, Outcome.EXITED_WITHOUT_REPORT)
    assert claim(db, parent).task.id == parent


def test_subtask_depth_and_breadth_are_limited(db: sqlite_utils.Database) -> None:
    limits = tasks.Limits(max_depth=2, max_children=2)
    root = new(db)
    child = tasks.create(db, tasks.NewTask("c", parent=root), limits=limits)
    grandchild = tasks.create(db, tasks.NewTask("g", parent=child), limits=limits)

    with pytest.raises(errors.LimitExceeded, match="at most 2 deep"):
        tasks.create(db, tasks.NewTask("too deep", parent=grandchild), limits=limits)
    tasks.create(db, tasks.NewTask("c2", parent=root), limits=limits)
    with pytest.raises(errors.LimitExceeded, match="already has 2 subtasks, the limit is 2"):
        tasks.create(db, tasks.NewTask("c3", parent=root), limits=limits)
    assert len(tasks.list_tasks(db, parent=root)) == 2


def test_an_ended_task_cannot_get_subtasks(db: sqlite_utils.Database) -> None:
    parent = new(db)
    tasks.complete(db, parent, "done")

    with pytest.raises(errors.InvalidInput, match="subtasks need an open parent"):
        new(db, parent=parent)


# Cancel and retry


def test_cancel_cascades_to_open_descendants_and_ends_their_live_runs(
    db: sqlite_utils.Database,
) -> None:
    root = new(db)
    child = new(db, parent=root)
    grandchild = new(db, parent=child)
    finished = new(db, parent=root)
    tasks.complete(db, finished, "already done")
    unrelated = new(db)
    child_run = claim(db, child)
    grandchild_run = claim(db, grandchild)

    changed = tasks.cancel(db, root, reason="wrong plan")

    assert sorted(changed) == sorted([root, child, grandchild])
    for task_id in changed:
        task = tasks.get(db, task_id)
        assert (task.status, task.failure_reason) == ("cancelled", "wrong plan")
    assert status(db, finished) == "done"
    assert status(db, unrelated) == "ready"
    for claimed in (child_run, grandchild_run):
        run = runs.get(db, claimed.run_id)
        assert (run.outcome, run.ended_at) == (Outcome.CANCELLED, None)
        with pytest.raises(errors.StaleRun):
            runs.heartbeat(db, worker(claimed))
    # The dispatcher still has to stop the processes and settle the runs.
    assert {r.id for r in runs.unended(db)} == {child_run.run_id, grandchild_run.run_id}


def test_retry_gives_a_failed_task_a_fresh_set_of_attempts(db: sqlite_utils.Database) -> None:
    task_id = new(db, max_attempts=1)
    claimed = claim(db, task_id)
    runs.settle(db, claimed.run_id, Outcome.CRASHED, reason="segfault")
    task = tasks.get(db, task_id)
    assert (task.status, task.attempts, task.failure_reason) == ("failed", 1, "segfault")

    assert tasks.retry(db, task_id) == Status.READY

    task = tasks.get(db, task_id)
    assert (task.status, task.attempts, task.failure_reason) == ("ready", 0, None)
    again = claim(db, task_id)
    assert (again.attempt, again.kind) == (1, "first")


def test_retry_of_a_task_with_an_unfinished_blocker_returns_it_to_todo(
    db: sqlite_utils.Database,
) -> None:
    blocker = new(db)
    blocked = new(db, after=[blocker])
    tasks.cancel(db, blocked)

    assert tasks.retry(db, blocked) == Status.TODO


def test_only_failed_cancelled_or_blocked_tasks_can_be_retried(
    db: sqlite_utils.Database,
) -> None:
    task_id = new(db)
    with pytest.raises(errors.InvalidTransition, match="only failed, cancelled or blocked"):
        tasks.retry(db, task_id)


# Listing and views


def test_list_is_in_priority_then_age_order_and_filters(db: sqlite_utils.Database) -> None:
    low = new(db, "low", priority=-1)
    first = new(db, "first", priority=2)
    second = new(db, "second", priority=2)
    child = new(db, "child", parent=low, batch_id="b1", priority=-1)
    tasks.block(db, second, "why")

    assert [t.id for t in tasks.list_tasks(db)] == [first, second, low, child]
    assert [t.id for t in tasks.list_tasks(db, ["ready"])] == [first, low, child]
    assert [t.id for t in tasks.list_tasks(db, ["blocked", "ready"], limit=2)] == [
        first,
        second,
    ]
    assert [t.id for t in tasks.list_tasks(db, parent=low)] == [child]
    assert [t.id for t in tasks.list_tasks(db, batch_id="b1")] == [child]
    assert tasks.list_tasks(db, ["done"]) == []


def test_list_rejects_an_unknown_status_naming_the_valid_ones(db: sqlite_utils.Database) -> None:
    with pytest.raises(errors.InvalidInput, match=r"unknown status 'in_progress'.*todo, ready"):
        tasks.list_tasks(db, ["ready", "in_progress"])


REQUIRED_KEYS = {
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
}


def test_a_task_object_has_the_documented_shape(db: sqlite_utils.Database) -> None:
    blocker = new(db, "blocker")
    parent = new(db, "parent", after=[blocker])
    child = new(db, "child", parent=parent)
    dependent = new(db, "dependent", after=[parent])
    tasks.set_placement(db, parent, branch="kanban/t_2", worktree="/wt/t_2")

    obj = views.task_object(db, parent)

    assert REQUIRED_KEYS <= set(obj)
    assert tuple(obj) == views.TASK_FIELDS
    assert obj["id"] == "t_2"
    assert (obj["blockers"], obj["dependents"], obj["children"]) == (
        [f"t_{blocker}"],
        [f"t_{dependent}"],
        [f"t_{child}"],
    )
    assert views.task_object(db, child)["parent"] == "t_2"
    assert (obj["branch"], obj["worktree"]) == ("kanban/t_2", "/wt/t_2")
    assert (obj["attempts"], obj["max_attempts"], obj["summary"], obj["block_reason"]) == (
        0,
        3,
        None,
        None,
    )
    assert obj["created_at"].endswith("Z")
    assert obj["why_not_runnable"] == "waiting for its blockers: t_1 is ready"


def test_show_adds_runs_events_comments_and_subtasks(db: sqlite_utils.Database) -> None:
    parent = new(db, "parent")
    child = new(db, "child", parent=parent)
    new(db, "grandchild", parent=child)
    claimed = claim(db, parent)
    runs.heartbeat(db, worker(claimed), note="reading the code")
    tasks.comment(db, parent, "looks good", actor=worker(claimed))

    shown = views.show(db, parent)

    assert {"runs", "events", "comments", "subtasks"} <= set(shown)
    assert REQUIRED_KEYS <= set(shown)
    (run,) = shown["runs"]
    assert (run["id"], run["attempt"], run["kind"], run["note"]) == (
        claimed.run_id,
        1,
        "first",
        "reading the code",
    )
    assert [e["kind"] for e in shown["events"]] == ["created", "status", "status", "heartbeat"]
    assert shown["events"][-2]["to"] == "running"
    (note,) = shown["comments"]
    assert (note["author"], note["body"]) == (f"run {claimed.run_id}", "looks good")
    assert [(s["id"], s["level"]) for s in shown["subtasks"]] == [("t_2", 1), ("t_3", 2)]
    assert views.task_object(db, parent) == {k: shown[k] for k in views.TASK_FIELDS}


def test_listing_the_ready_queue_walks_its_index_instead_of_sorting(
    sqlite_db: sqlite_utils.Database,
) -> None:
    db = sqlite_db  # SQLite's planner
    for priority in (0, 2, 1):
        new(db, priority=priority)
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        listed = tasks.list_tasks(db, ["ready"], limit=2)
    finally:
        db.conn.set_trace_callback(None)

    assert [t.priority for t in listed] == [2, 1]
    (select,) = [s for s in seen if s.startswith("SELECT")]
    plan = [row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {select}")]
    assert plan == ["SCAN tasks USING INDEX tasks_ready"]
