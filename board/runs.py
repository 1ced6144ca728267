"""Runs: every dispatch attempt of a task, from claim to settlement.

A run's life, and who writes each step:

1. `claim` (dispatcher): the task goes `ready -> running` and a run is created with a random
   lease token, atomically, so exactly one claimer wins across processes.
2. `attach` (dispatcher) records the shim's pid; `started` (the shim) records the agent's pid
   and process start time (pid reuse must never fool a liveness check).
3. `heartbeat`, and the worker's reports (`tasks.complete` / `tasks.block`), are fenced by the
   token.
4. `exited` (the shim) records the exit code or signal the moment the agent ends, so the
   outcome survives a dispatcher restart.
5. `settle` (dispatcher), after it has committed the worktree: ends the run with its outcome
   and moves the task on (done, waiting, a retry, or failed). Until then the run is
   *un-ended*, and a unique index keeps any second run of the task from starting.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Sequence
from typing import Any

import sqlite_utils

from board import actors, errors, fencing, ids, records, spending, tasks, transitions
from board.connection import rows, transaction
from board.states import Outcome, Status

DEFAULT_LEASE = 900.0
# Attempts given back (lost to the orchestrator, rate limited) per task, before they count.
MAX_REFUNDS = 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claim:
    """A task a dispatcher has just claimed: the task as it now is, and the new run."""

    task: records.Task
    run_id: int
    token: str
    attempt: int
    kind: str  # first | retry | resume


def claim(
    db: sqlite_utils.Database,
    *,
    limit: int = 1,
    now: float | None = None,
    dispatcher_id: int | None = None,
    lease: float = DEFAULT_LEASE,
    task_id: int | None = None,
    batch_id: str | None = None,
    held: list[tuple[int, str]] | None = None,
    host: str | None = None,
) -> list[Claim]:
    """Claim up to `limit` ready tasks (highest priority, then oldest) in one transaction.

    `host` is recorded on each new run: where its processes will live (`dispatchers.host`).

    A candidate over its budget or started too often is blocked instead (`spending`), and
    added to `held` with the reason, when given.

    `task_id` claims that task only; `batch_id` only tasks of that batch (their subtasks
    inherit it), so a one-shot `kanban run` never starts work that is not its own.
    """
    if limit <= 0:
        return []
    claims: list[Claim] = []
    with transaction(db, now=now) as tx:
        limits = tasks.stored_limits(tx)
        if spending.daily(tx, limits.daily_tokens, limits.daily_usd, tx.now):
            return []  # the board's daily budget is spent: nothing new starts today
        only = ""
        params: list[Any] = [tx.now]
        if task_id is not None:
            only += " AND id = ?"
            params.append(task_id)
        if batch_id is not None:
            only += " AND batch_id = ?"
            params.append(batch_id)
        candidates = tx.all(
            "SELECT * FROM tasks INDEXED BY tasks_ready WHERE status = 'ready'"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            f"{only} AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.task_id = tasks.id"
            "  AND r.ended_at IS NULL)"
            # A child or blocker is done when its worker reports, but its work reaches its
            # branch only when its run ends (the dispatcher commits the worktree then): a
            # resumed parent merging that branch, or a dependent reading it, must wait.
            " AND NOT EXISTS (SELECT 1 FROM runs r JOIN tasks c ON c.id = r.task_id"
            "  WHERE r.ended_at IS NULL AND (c.parent_id = tasks.id OR c.id IN"
            "  (SELECT d.blocker_id FROM deps d WHERE d.blocked_id = tasks.id)))"
            f" ORDER BY priority DESC, id LIMIT {int(limit)}",
            params,
        )
        for task in candidates:
            reason = spending.over_budget(tx, task) or spending.respawns(
                tx, task["id"], limits.runs_per_hour, tx.now
            )
            if reason is not None:
                # Blocked, not claimed: a person decides whether it may use more.
                transitions.apply(
                    tx,
                    task["id"],
                    Status.BLOCKED,
                    actor=actors.Dispatcher(dispatcher_id),
                    expect=Status.READY,
                    block_reason=reason,
                    reason=reason,
                )
                tx.wake = True
                if held is not None:
                    held.append((task["id"], reason))
                continue
            attempt = task["attempts"] + 1
            kind = "resume" if task["resume"] else ("retry" if task["attempts"] else "first")
            token = secrets.token_urlsafe(24)
            run_id = tx.execute(
                "INSERT INTO runs (task_id, attempt, kind, token_hash, dispatcher_id, started_at,"
                " heartbeat_at, lease_expires_at, worktree, branch, host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task["id"],
                    attempt,
                    kind,
                    fencing.token_hash(token),
                    dispatcher_id,
                    tx.now,
                    tx.now,
                    tx.now + lease,
                    task["worktree"],
                    task["branch"],
                    host,
                ),
            ).lastrowid
            assert run_id is not None
            transitions.apply(
                tx,
                task["id"],
                Status.RUNNING,
                actor=actors.Dispatcher(dispatcher_id),
                run_id=run_id,
                expect=Status.READY,
                attempts=attempt,
                current_run_id=run_id,
                next_attempt_at=None,
                reason=f"attempt {attempt} ({kind})",
            )
            task.update(status=Status.RUNNING, attempts=attempt, current_run_id=run_id)
            claims.append(
                Claim(
                    task=records.Task.from_row(task),
                    run_id=run_id,
                    token=token,
                    attempt=attempt,
                    kind=kind,
                )
            )
    return claims


def get(db: sqlite_utils.Database, run_id: int) -> records.Run:
    found = rows(db.conn, "SELECT * FROM runs WHERE id = ?", (run_id,))
    if not found:
        raise errors.RunNotFound(run_id)
    return records.Run.from_row(found[0])


def for_task(db: sqlite_utils.Database, task_id: int) -> list[records.Run]:
    found = rows(db.conn, "SELECT * FROM runs WHERE task_id = ? ORDER BY id", (task_id,))
    return [records.Run.from_row(row) for row in found]


def unended(db: sqlite_utils.Database, *, batch_id: str | None = None) -> list[records.Run]:
    """Runs not yet settled: what a (re)starting dispatcher must supervise or settle.

    With `batch_id`, only the runs of that batch's tasks (a one-shot `kanban run`).
    """
    if batch_id is None:
        found = rows(db.conn, "SELECT * FROM runs WHERE ended_at IS NULL ORDER BY id")
    else:
        found = rows(
            db.conn,
            "SELECT r.* FROM runs r JOIN tasks t ON t.id = r.task_id"
            " WHERE r.ended_at IS NULL AND t.batch_id = ? ORDER BY r.id",
            (batch_id,),
        )
    return [records.Run.from_row(row) for row in found]


def by_token(db: sqlite_utils.Database, token: str) -> records.Run | None:
    """The run whose token this is, if any (the HTTP tool server's lookup of a bearer)."""
    found = rows(db.conn, "SELECT * FROM runs WHERE token_hash = ?", (fencing.token_hash(token),))
    return records.Run.from_row(found[0]) if found else None


def _token_matches(tx: Any, run_id: int, token: str) -> dict[str, Any]:
    run = tx.one("SELECT * FROM runs WHERE id = ?", (run_id,))
    if run is None:
        raise errors.RunNotFound(run_id)
    if not fencing.token_matches(run["token_hash"], token):
        raise errors.StaleRun(ids.format(run["task_id"]), run_id, "wrong token")
    return run


def prepare(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    log_path: str,
    worktree: str | None,
    branch: str | None,
    ports: Sequence[int] = (),
) -> None:
    """Record where a run's worker will live, before any process of it exists.

    Durable before the shim is started, so a dispatcher that dies between starting the shim
    and `attach` leaves its successor everything it needs: the worktree to commit, the log to
    read, and (beside the log) the run's lock that tells whether the shim still lives.
    `ports` are those it holds while it lives (shown to people; the hold itself is a lock).
    """
    with transaction(db) as tx:
        tx.execute(
            "UPDATE runs SET log_path = ?, worktree = ?, branch = ?, ports = ? WHERE id = ?",
            (log_path, worktree, branch, json.dumps(list(ports)), run_id),
        )


def attach(
    db: sqlite_utils.Database, run_id: int, *, shim_pid: int, shim_started_at: float
) -> None:
    """The dispatcher has started the run's shim."""
    with transaction(db) as tx:
        tx.execute(
            "UPDATE runs SET shim_pid = ?, shim_started_at = ? WHERE id = ?",
            (shim_pid, shim_started_at, run_id),
        )


def started(
    db: sqlite_utils.Database,
    run_id: int,
    token: str,
    *,
    pid: int,
    pid_started_at: float,
    shim_pid: int | None = None,
    shim_started_at: float | None = None,
) -> None:
    """The shim has started the agent process (and says who it is itself)."""
    with transaction(db) as tx:
        _token_matches(tx, run_id, token)
        tx.execute(
            "UPDATE runs SET pid = ?, pid_started_at = ?, shim_pid = coalesce(shim_pid, ?),"
            " shim_started_at = coalesce(shim_started_at, ?) WHERE id = ?",
            (pid, pid_started_at, shim_pid, shim_started_at, run_id),
        )


def exited(
    db: sqlite_utils.Database, run_id: int, token: str, *, exit_code: int | None, signal: int | None
) -> None:
    """The shim saw the agent process end (recorded once; later calls change nothing)."""
    with transaction(db) as tx:
        _token_matches(tx, run_id, token)
        tx.execute(
            "UPDATE runs SET exited_at = ?, exit_code = ?, signal = ?"
            " WHERE id = ? AND exited_at IS NULL",
            (tx.now, exit_code, signal, run_id),
        )
        tx.wake = True


def heartbeat(
    db: sqlite_utils.Database,
    worker: actors.Worker,
    note: str | None = None,
    *,
    lease: float = DEFAULT_LEASE,
    now: float | None = None,
) -> None:
    """The worker is alive (and optionally says what it is doing). Fenced by the token."""
    if note is not None:
        tasks.check_text(note, "a heartbeat note", 2000)
    with transaction(db, now=now) as tx:
        cursor = tx.execute(
            "UPDATE runs SET heartbeat_at = :now, lease_expires_at = :now + :lease,"
            " note = coalesce(:note, note)"
            " WHERE id = :run AND task_id = :task AND token_hash = :hash AND outcome IS NULL"
            " AND EXISTS (SELECT 1 FROM tasks WHERE id = :task AND current_run_id = :run"
            "             AND status = 'running')",
            {
                "now": tx.now,
                "lease": lease,
                "note": note,
                "run": worker.run_id,
                "task": worker.task_id,
                "hash": fencing.token_hash(worker.token),
            },
        )
        if cursor.rowcount != 1:
            fencing.check(tx, worker)  # raises with the precise reason
            raise errors.StaleRun(ids.format(worker.task_id), worker.run_id, "not the live run")
        if note:
            transitions.event(
                tx,
                worker.task_id,
                "heartbeat",
                actor=worker,
                run_id=worker.run_id,
                data={"note": note},
            )


def settle(
    db: sqlite_utils.Database,
    run_id: int,
    outcome: Outcome,
    *,
    reason: str | None = None,
    summary: str | None = None,
    commit_sha: str | None = None,
    commit_error: str | None = None,
    retry_at: float | None = None,
    refund: bool = False,
    check: records.CheckResult | None = None,
    drop_report: bool = False,
    actor: actors.Actor = actors.DISPATCHER,
    now: float | None = None,
) -> Outcome:
    """End a run after its processes are gone and its work is committed; move the task on.

    A run that already has an outcome (the worker reported, or an operator cancelled or
    blocked it) keeps it: `outcome` only fills in what nobody reported. A completed run makes
    its task `done` (or `waiting` for open subtasks) here, not at the report: only now is its
    work on its branch. If that commit failed (`commit_error`), the task is `blocked` with the
    reason instead, its work still in the worktree. For an unreported failure, `retry_at` makes
    the task `ready` again at that time, unless its attempts are exhausted; otherwise it is
    `failed`. With `refund` (the run was lost to the orchestrator's own failure, or rate
    limited) the attempt is not counted, at most `MAX_REFUNDS` times per task, so that nothing
    retries forever. `check` is the repository's gated check, run on a completed run's
    work: recorded on the run, and when it failed the run is `check_failed` (whatever the
    worker reported), retried at `retry_at` with the check's output in its next prompt while
    attempts remain, then `failed`. With `drop_report` (the run was lost with its host: its
    work never reached its branch), a completion its worker reported does not stand: the run
    ends with `outcome`. Settling twice changes nothing.
    """
    with transaction(db, now=now) as tx:
        run = tx.one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if run is None:
            raise errors.RunNotFound(run_id)
        if run["ended_at"] is not None:
            return Outcome(run["outcome"])
        final = Outcome(run["outcome"] or outcome)
        settled_by = run["settled_by"]
        dropped = drop_report and final is Outcome.COMPLETED and settled_by == "worker"
        if dropped:
            final, settled_by = outcome, actor.label
        if check is not None and not check.passed and final is Outcome.COMPLETED:
            final, settled_by = Outcome.CHECK_FAILED, actor.label
            reason = f"the check failed: {check.command} {check.detail}"
            if check.output:
                reason += f"; last lines: {_last_lines(check.output)}"
        if refund:
            refunded = tx.value(
                "SELECT count(*) FROM runs WHERE task_id = ? AND refunded = 1", (run["task_id"],)
            )
            if refunded >= MAX_REFUNDS:
                refund = False
                reason = f"{reason or final}; not refunded: {refunded} attempts already were"
        if final is Outcome.CHECK_FAILED or dropped:
            # The worker's own "completed" no longer describes how the run ended.
            tx.execute("UPDATE runs SET reason = NULL WHERE id = ?", (run_id,))
        tx.execute(
            "UPDATE runs SET ended_at = ?, outcome = ?, reason = coalesce(reason, ?),"
            " summary = coalesce(summary, ?), commit_sha = coalesce(?, commit_sha),"
            " settled_by = coalesce(?, ?), refunded = ?, check_result = ? WHERE id = ?",
            (
                tx.now,
                final,
                reason,
                summary,
                commit_sha,
                settled_by,
                actor.label,
                int(refund),
                None if check is None else check.to_json(),
                run_id,
            ),
        )
        transitions.event(
            tx,
            run["task_id"],
            "run_ended",
            actor=actor,
            run_id=run_id,
            data={
                "outcome": final,
                "reason": reason,
                "commit": commit_sha,
                "commit_error": commit_error,
                "exit_code": run["exit_code"],
                "signal": run["signal"],
                "refunded": refund,
                "check": None
                if check is None
                else {"passed": check.passed, "detail": check.detail},
            },
        )
        tx.wake = True
        task = tx.one("SELECT * FROM tasks WHERE id = ?", (run["task_id"],))
        assert task is not None
        if task["status"] != Status.RUNNING or task["current_run_id"] != run_id:
            return final  # an operator (or the worker's own block) already moved it on
        if final is Outcome.COMPLETED and commit_error is not None:
            why = (
                f"the run completed, but its work could not be committed to its branch "
                f"({commit_error}); it is still in {run['worktree']}: fix the cause, then "
                f"`kanban unblock {ids.format(task['id'])}`"
            )
            transitions.apply(
                tx,
                task["id"],
                Status.BLOCKED,
                actor=actor,
                run_id=run_id,
                block_reason=why,
                reason=why,
            )
        elif final is Outcome.COMPLETED:
            text = run["summary"] or summary or "completed"
            if not transitions.open_children(tx, task["id"]) and _unintegrated_children(tx, run):
                # Its subtasks all ended before this run did: their work is not in its branch
                # yet, so it runs once more to merge and integrate them.
                transitions.apply(
                    tx,
                    task["id"],
                    Status.TODO
                    if transitions.unfinished_blockers(tx, task["id"])
                    else Status.READY,
                    actor=actor,
                    run_id=run_id,
                    summary=text,
                    resume=1,
                    attempts=0,  # a resume gets a fresh set, as when a waiting parent wakes
                    next_attempt_at=None,
                    reason="completed; its subtasks have ended: resuming to integrate them",
                )
            else:
                tasks.finish_completed(tx, task["id"], text, actor=actor, run_id=run_id)
        elif final is Outcome.BLOCKED:
            transitions.apply(
                tx,
                task["id"],
                Status.BLOCKED,
                actor=actor,
                run_id=run_id,
                block_reason=reason or "blocked",
                reason=reason,
            )
        elif retry_at is not None and (refund or task["attempts"] < task["max_attempts"]):
            attempts = task["attempts"] - 1 if refund else task["attempts"]
            # A blocker linked while the task ran holds the retry back until it is done.
            target = (
                Status.TODO if transitions.unfinished_blockers(tx, task["id"]) else Status.READY
            )
            transitions.apply(
                tx,
                task["id"],
                target,
                actor=actor,
                run_id=run_id,
                next_attempt_at=retry_at,
                attempts=max(attempts, 0),
                reason=f"{final}: {reason}" if reason else str(final),
            )
        else:
            if final is Outcome.CHECK_FAILED:
                reason = f"{reason}; all {task['max_attempts']} attempts used"
            transitions.apply(
                tx,
                task["id"],
                Status.FAILED,
                actor=actor,
                run_id=run_id,
                failure_reason=reason or str(final),
                reason=f"{final}: {reason}" if reason else str(final),
            )
        return final


def would_be_done(db: sqlite_utils.Database, run_id: int) -> bool:
    """Would this run, settled as completed now, make its task `done`?

    Not while subtasks are open (the task waits for them), nor when subtasks ended that this
    run did not merge (it resumes to integrate them): a gated check is for the finished work.
    """
    with transaction(db) as tx:
        run = tx.one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if run is None:
            raise errors.RunNotFound(run_id)
        return not transitions.open_children(tx, run["task_id"]) and not _unintegrated_children(
            tx, run
        )


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-count:])[-500:]


def _unintegrated_children(tx: Any, run: dict[str, Any]) -> bool:
    """Has the run's task subtasks whose branches this run did not merge?

    A resumed run merged every subtask that existed when it started; any other run merged none.
    """
    if run["kind"] != "resume":
        found = tx.value("SELECT 1 FROM tasks WHERE parent_id = ? LIMIT 1", (run["task_id"],))
    else:
        found = tx.value(
            "SELECT 1 FROM tasks WHERE parent_id = ? AND created_at >= ? LIMIT 1",
            (run["task_id"], run["started_at"]),
        )
    return bool(found)


def next_retry_at(db: sqlite_utils.Database) -> float | None:
    """When the earliest delayed retry becomes due (for the dispatcher's timer)."""
    row = db.conn.execute(
        "SELECT min(next_attempt_at) FROM tasks WHERE status = 'ready'"
        " AND next_attempt_at IS NOT NULL"
    ).fetchone()
    return row[0]


def last_ended(db: sqlite_utils.Database, task_id: int) -> records.Run | None:
    """The task's most recent settled run (why the previous attempt ended)."""
    found = rows(
        db.conn,
        "SELECT * FROM runs WHERE task_id = ? AND ended_at IS NOT NULL ORDER BY id DESC LIMIT 1",
        (task_id,),
    )
    return records.Run.from_row(found[0]) if found else None


def active_counts(db: sqlite_utils.Database) -> tuple[int, int]:
    """(tasks ready or running, runs not yet settled): both zero means nothing can move."""
    ready_or_running = db.conn.execute(
        "SELECT count(*) FROM tasks WHERE status IN ('ready', 'running')"
    ).fetchone()[0]
    unended = db.conn.execute("SELECT count(*) FROM runs WHERE ended_at IS NULL").fetchone()[0]
    return ready_or_running, unended
