"""Runs: claims, leases, fencing of worker writes, and settlement."""

from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils
from support.board_kit import claim, new, status, worker

from board import actors, deps, errors, runs, tasks
from board.states import Outcome, Status

NOW = 1_800_000_000.0


def event_count(db: sqlite_utils.Database) -> int:
    return db.conn.execute("SELECT count(*) FROM events").fetchone()[0]


# Claims


def test_claim_picks_the_highest_priority_then_the_oldest_task(db: sqlite_utils.Database) -> None:
    old_low = new(db, "old low", priority=0)
    old_high = new(db, "old high", priority=3)
    new_high = new(db, "new high", priority=3)
    blocked = new(db, "blocked", priority=9)
    tasks.block(db, blocked, "not now")

    order = [runs.claim(db)[0].task.id for _ in range(3)]

    assert order == [old_high, new_high, old_low]
    assert runs.claim(db) == []


def test_a_claim_starts_a_run_with_its_own_token_and_lease(db: sqlite_utils.Database) -> None:
    first, second = new(db), new(db)

    claims = runs.claim(db, limit=5, now=NOW, lease=60.0, dispatcher_id=7)

    assert [c.task.id for c in claims] == [first, second]
    assert len({c.token for c in claims}) == 2
    for claimed in claims:
        run = runs.get(db, claimed.run_id)
        assert (run.task_id, run.attempt, run.kind, run.dispatcher_id) == (
            claimed.task.id,
            1,
            "first",
            7,
        )
        assert (run.started_at, run.lease_expires_at, run.outcome) == (
            NOW,
            NOW + 60.0,
            None,
        )
        task = tasks.get(db, claimed.task.id)
        assert (task.status, task.current_run_id, task.attempts) == (
            "running",
            claimed.run_id,
            1,
        )
        assert claimed.task.status == Status.RUNNING


def test_claim_honours_next_attempt_at(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    first = claim(db, task_id, now=NOW)
    runs.settle(db, first.run_id, Outcome.CRASHED, retry_at=NOW + 30, now=NOW + 1)

    assert runs.claim(db, now=NOW + 29) == []
    assert runs.next_retry_at(db) == NOW + 30
    again = claim(db, task_id, now=NOW + 30)
    assert (again.attempt, again.kind) == (2, "retry")
    assert tasks.get(db, task_id).next_attempt_at is None


def test_a_task_whose_previous_run_is_unended_is_never_claimed(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    first = claim(db, task_id)
    tasks.block(db, task_id, "need a decision", actor=worker(first))
    tasks.unblock(db, task_id, comment="decided")
    assert status(db, task_id) == "ready"

    assert runs.claim(db) == []  # the dispatcher has not settled the first run yet

    runs.settle(db, first.run_id, Outcome.EXITED_WITHOUT_REPORT)
    assert claim(db, task_id).attempt == 1  # unblock gave it a fresh set of attempts


def test_the_schema_refuses_a_second_unended_run_of_a_task(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claim(db, task_id)

    with pytest.raises((sqlite3.IntegrityError, errors.BoardError), match=r"UNIQUE|duplicate key"):
        db.conn.execute(
            "INSERT INTO runs (task_id, attempt, kind, token_hash, started_at)"
            " VALUES (?, 2, 'retry', 'x', 0)",
            (task_id,),
        )


def test_the_claim_query_walks_the_ready_index_without_sorting(
    sqlite_db: sqlite_utils.Database,
) -> None:
    db = sqlite_db  # SQLite's planner
    for _ in range(3):
        new(db)
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        runs.claim(db)
    finally:
        db.conn.set_trace_callback(None)

    (select,) = [s for s in seen if s.lstrip().startswith("SELECT * FROM tasks")]
    plan = [row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {select}")]
    assert plan[0] == "SCAN tasks USING INDEX tasks_ready"
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan
    assert any("USING INDEX runs_one_unended" in step for step in plan)


# Fencing


def superseded(db: sqlite_utils.Database) -> tuple[int, runs.Claim, runs.Claim]:
    """A task whose first run was settled for a retry and which was claimed again."""
    task_id = new(db)
    old = claim(db, task_id, now=NOW)
    runs.settle(db, old.run_id, Outcome.STALLED, retry_at=NOW, now=NOW)
    current = claim(db, task_id, now=NOW)
    return task_id, old, current


def test_a_superseded_run_can_no_longer_complete_block_heartbeat_or_comment(
    db: sqlite_utils.Database,
) -> None:
    task_id, old, current = superseded(db)
    stale = worker(old)
    before = event_count(db)

    with pytest.raises(errors.StaleRun, match="already ended: stalled"):
        tasks.complete(db, task_id, "late result", actor=stale)
    with pytest.raises(errors.StaleRun):
        tasks.block(db, task_id, "late block", actor=stale)
    with pytest.raises(errors.StaleRun):
        runs.heartbeat(db, stale, note="still here")
    with pytest.raises(errors.StaleRun):
        tasks.comment(db, task_id, "late comment", actor=stale)
    with pytest.raises(errors.StaleRun):
        tasks.create(db, tasks.NewTask("late subtask"), stale)
    with pytest.raises(errors.StaleRun):
        tasks.cancel(db, task_id, stale)
    with pytest.raises(errors.StaleRun):
        tasks.retry(db, task_id, stale)

    assert event_count(db) == before
    task = tasks.get(db, task_id)
    assert (task.status, task.current_run_id) == ("running", current.run_id)
    runs.heartbeat(db, worker(current))  # the live run is unaffected
    assert tasks.complete(db, task_id, "real result", actor=worker(current)) == Status.RUNNING
    runs.settle(db, current.run_id, Outcome.COMPLETED)
    assert tasks.get(db, task_id).status == Status.DONE


def test_a_wrong_token_or_another_runs_id_is_refused(db: sqlite_utils.Database) -> None:
    mine = claim(db, new(db))
    theirs = claim(db, new(db))
    forged = [
        actors.Worker(mine.task.id, mine.run_id, "not-the-token"),
        actors.Worker(mine.task.id, theirs.run_id, theirs.token),
        actors.Worker(mine.task.id, theirs.run_id, mine.token),
        actors.Worker(mine.task.id, 999, mine.token),
    ]

    for fake in forged:
        with pytest.raises(errors.StaleRun, match="unknown run, or a wrong token"):
            tasks.complete(db, mine.task.id, "forged", actor=fake)
        with pytest.raises(errors.StaleRun):
            runs.heartbeat(db, fake)
        with pytest.raises(errors.StaleRun):
            tasks.comment(db, mine.task.id, "forged", actor=fake)
    with pytest.raises(errors.StaleRun, match="wrong token"):
        runs.started(db, mine.run_id, theirs.token, pid=1, pid_started_at=0.0)
    with pytest.raises(errors.StaleRun, match="wrong token"):
        runs.exited(db, mine.run_id, "nope", exit_code=0, signal=None)
    assert status(db, mine.task.id) == "running"
    assert runs.get(db, mine.run_id).exited_at is None


def test_a_run_whose_outcome_is_set_can_change_nothing_more(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)
    me = worker(claimed)
    tasks.block(db, task_id, "need credentials", actor=me)

    with pytest.raises(errors.StaleRun, match="already ended: blocked"):
        tasks.complete(db, task_id, "done after all", actor=me)
    with pytest.raises(errors.StaleRun):
        runs.heartbeat(db, me)
    with pytest.raises(errors.StaleRun):
        tasks.comment(db, task_id, "hello?", actor=me)
    with pytest.raises(errors.StaleRun):
        tasks.unblock(db, task_id, me)
    assert status(db, task_id) == "blocked"


def test_a_worker_cannot_touch_another_task(db: sqlite_utils.Database) -> None:
    own = new(db)
    other = new(db)
    me = worker(claim(db, own))

    with pytest.raises(errors.NotYourTask, match=f"task t_{other} is not yours; your task is"):
        tasks.complete(db, other, "x", actor=me)
    with pytest.raises(errors.NotYourTask):
        tasks.block(db, other, "x", actor=me)
    with pytest.raises(errors.NotYourTask):
        tasks.comment(db, other, "x", actor=me)
    with pytest.raises(errors.NotYourTask):
        tasks.cancel(db, other, me)
    with pytest.raises(errors.NotYourTask):
        tasks.create(db, tasks.NewTask("sub", parent=other), me)
    with pytest.raises(errors.NotYourTask):
        tasks.create(db, tasks.NewTask("sub", after=[other]), me)
    assert status(db, other) == "ready"


def test_a_worker_may_comment_on_unblock_and_link_its_own_subtasks_but_not_complete_them(
    db: sqlite_utils.Database,
) -> None:
    own = new(db)
    me = worker(claim(db, own))
    first = tasks.create(db, tasks.NewTask("first"), me)
    second = tasks.create(db, tasks.NewTask("second", after=[first]), me)
    grandchild = tasks.create(db, tasks.NewTask("deeper", parent=second), me)
    assert tasks.get(db, grandchild).parent_id == second
    tasks.block(db, first, "needs the schema")

    tasks.comment(db, first, "the schema is in docs/", actor=me)
    assert tasks.unblock(db, first, me) == Status.READY
    deps.unlink(db, first, second, actor=me)
    deps.link(db, first, second, actor=me)
    with pytest.raises(errors.NotYourTask):
        tasks.complete(db, first, "did it myself", actor=me)
    assert status(db, first) == "ready"


def test_a_heartbeat_renews_the_lease_and_records_a_note(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id, now=NOW, lease=60.0)

    runs.heartbeat(db, worker(claimed), now=NOW + 10, lease=60.0)
    runs.heartbeat(db, worker(claimed), "running the tests", now=NOW + 20, lease=60.0)
    runs.heartbeat(db, worker(claimed), now=NOW + 30, lease=60.0)

    run = runs.get(db, claimed.run_id)
    assert (run.heartbeat_at, run.lease_expires_at, run.note) == (
        NOW + 30,
        NOW + 90,
        "running the tests",
    )
    notes = db.conn.execute(
        "SELECT data FROM events WHERE kind = 'heartbeat' AND task_id = ?", (task_id,)
    ).fetchall()
    assert notes == [('{"note": "running the tests"}',)]


def test_the_shim_records_the_agent_pid_and_exit_once(db: sqlite_utils.Database) -> None:
    claimed = claim(db, new(db))

    runs.started(db, claimed.run_id, claimed.token, pid=4242, pid_started_at=NOW)
    runs.exited(db, claimed.run_id, claimed.token, exit_code=None, signal=9)
    runs.exited(db, claimed.run_id, claimed.token, exit_code=0, signal=None)

    run = runs.get(db, claimed.run_id)
    assert (run.pid, run.pid_started_at, run.exit_code, run.signal) == (
        4242,
        NOW,
        None,
        9,
    )


# Settlement


def test_settle_keeps_an_outcome_the_worker_reported(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)
    tasks.block(db, task_id, "ambiguous spec", actor=worker(claimed))

    final = runs.settle(db, claimed.run_id, Outcome.CRASHED, reason="exit 1", commit_sha="abc")

    assert final == Outcome.BLOCKED
    run = runs.get(db, claimed.run_id)
    assert (run.outcome, run.reason, run.commit_sha, run.settled_by) == (
        "blocked",
        "ambiguous spec",
        "abc",
        "worker",
    )
    assert run.ended_at is not None
    task = tasks.get(db, task_id)
    assert (task.status, task.block_reason) == ("blocked", "ambiguous spec")


def test_settle_with_retry_at_makes_the_task_ready_at_that_time(
    db: sqlite_utils.Database,
) -> None:
    task_id = new(db)
    claimed = claim(db, task_id, now=NOW)

    assert (
        runs.settle(
            db, claimed.run_id, Outcome.CRASHED, reason="exit 3", retry_at=NOW + 60, now=NOW + 5
        )
        == Outcome.CRASHED
    )

    task = tasks.get(db, task_id)
    assert (task.status, task.next_attempt_at, task.attempts) == (
        "ready",
        NOW + 60,
        1,
    )
    assert task.current_run_id is None
    assert runs.last_ended(db, task_id).reason == "exit 3"


def test_a_refunded_retry_does_not_spend_an_attempt(db: sqlite_utils.Database) -> None:
    task_id = new(db, max_attempts=1)
    for _ in range(3):
        claimed = claim(db, task_id, now=NOW)
        runs.settle(db, claimed.run_id, Outcome.RATE_LIMITED, retry_at=NOW, refund=True, now=NOW)
        assert tasks.get(db, task_id).attempts == 0

    assert claim(db, task_id, now=NOW).attempt == 1


def test_a_task_whose_attempts_are_exhausted_fails(db: sqlite_utils.Database) -> None:
    task_id = new(db, max_attempts=2)
    first = claim(db, task_id, now=NOW)
    runs.settle(db, first.run_id, Outcome.CRASHED, reason="exit 1", retry_at=NOW, now=NOW)
    second = claim(db, task_id, now=NOW)

    runs.settle(db, second.run_id, Outcome.CRASHED, reason="exit 1", retry_at=NOW, now=NOW)

    task = tasks.get(db, task_id)
    assert (task.status, task.attempts) == ("failed", 2)
    assert "exit 1" in task.failure_reason


def test_an_unreported_failure_without_a_retry_fails_the_task(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)

    runs.settle(db, claimed.run_id, Outcome.SPAWN_FAILED, reason="hermes: not found")

    task = tasks.get(db, task_id)
    assert (task.status, task.failure_reason) == ("failed", "hermes: not found")
    assert task.ended_at is not None


def test_settle_completed_with_open_subtasks_makes_the_task_wait(
    db: sqlite_utils.Database,
) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)
    tasks.create(db, tasks.NewTask("child"), worker(claimed))

    runs.settle(db, claimed.run_id, Outcome.COMPLETED, summary="committed the work")

    task = tasks.get(db, task_id)
    assert (task.status, task.summary) == ("waiting", "committed the work")


def test_settling_twice_changes_nothing(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)
    runs.settle(db, claimed.run_id, Outcome.TIMED_OUT, reason="wall clock", retry_at=NOW)
    run_before, task_before, events_before = (
        runs.get(db, claimed.run_id),
        tasks.get(db, task_id),
        event_count(db),
    )

    assert runs.settle(db, claimed.run_id, Outcome.COMPLETED, summary="no") == Outcome.TIMED_OUT

    assert runs.get(db, claimed.run_id) == run_before
    assert tasks.get(db, task_id) == task_before
    assert event_count(db) == events_before


def test_settling_an_unknown_run_is_an_error(db: sqlite_utils.Database) -> None:
    with pytest.raises(errors.RunNotFound, match="run 5 does not exist"):
        runs.settle(db, 5, Outcome.LOST)


def test_a_run_cancelled_by_an_operator_settles_as_cancelled(db: sqlite_utils.Database) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)
    tasks.cancel(db, task_id)

    assert runs.settle(db, claimed.run_id, Outcome.CRASHED, retry_at=NOW) == Outcome.CANCELLED
    assert status(db, task_id) == "cancelled"
    assert runs.unended(db) == []
