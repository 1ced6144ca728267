"""The one function that changes a task's status, and what a change sets off.

`apply` checks the transition against `states.ALLOWED`, updates the row, writes the event in
the same transaction and reacts: a task that is done may make its dependents ready; a task
that ended may wake its waiting parent. Both look only at the tasks directly concerned (through
indexes), so the cost of a change does not grow with the board.
"""

from __future__ import annotations

import json
from typing import Any

from board import actors, errors, ids, states
from board.connection import Tx
from board.states import Status

# Columns `apply` may set together with the status.
_FIELDS = frozenset(
    {
        "summary",
        "block_reason",
        "failure_reason",
        "next_attempt_at",
        "attempts",
        "resume",
        "current_run_id",
        "conflicts",
    }
)


def event(
    tx: Tx,
    task_id: int,
    kind: str,
    *,
    actor: actors.Actor,
    run_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    tx.execute(
        "INSERT INTO events (task_id, run_id, at, kind, from_status, to_status, actor, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task_id,
            run_id,
            tx.now,
            kind,
            from_status,
            to_status,
            actor.label,
            None if data is None else json.dumps(data),
        ),
    )


def apply(
    tx: Tx,
    task_id: int,
    to: Status,
    *,
    actor: actors.Actor,
    expect: Status | frozenset[Status] | None = None,
    run_id: int | None = None,
    reason: str | None = None,
    hint: str = "",
    **fields: Any,
) -> Status:
    """Move `task_id` to `to`; returns the status it had. Raises `InvalidTransition`."""
    unknown = set(fields) - _FIELDS
    if unknown:
        raise TypeError(f"apply() cannot set {sorted(unknown)}")
    current = tx.value("SELECT status FROM tasks WHERE id = ?", (task_id,))
    if current is None:
        raise errors.TaskNotFound(ids.format(task_id))
    current = Status(current)
    expected = {expect} if isinstance(expect, Status) else expect
    if to not in states.ALLOWED[current] or (expected is not None and current not in expected):
        raise errors.InvalidTransition(ids.format(task_id), current, to, hint=hint)
    assignments = ["status = ?", "updated_at = ?", "ended_at = ?"]
    values: list[Any] = [to, tx.now, tx.now if to in states.ENDED else None]
    if current is Status.RUNNING and "current_run_id" not in fields:
        fields["current_run_id"] = None
    for name, value in fields.items():
        assignments.append(f"{name} = ?")
        values.append(value)
    tx.execute(f"UPDATE tasks SET {', '.join(assignments)} WHERE id = ?", (*values, task_id))
    data = {"reason": reason} if reason else None
    event(
        tx,
        task_id,
        "status",
        actor=actor,
        run_id=run_id,
        from_status=current,
        to_status=to,
        data=data,
    )
    tx.wake = True
    if to is Status.DONE:
        _release_dependents(tx, task_id)
    if to in states.ENDED:
        _wake_parent(tx, task_id)
    return current


def unfinished_blockers(tx: Tx, task_id: int) -> list[dict[str, Any]]:
    return tx.all(
        "SELECT t.id, t.status FROM deps d JOIN tasks t ON t.id = d.blocker_id"
        " WHERE d.blocked_id = ? AND t.status <> 'done' ORDER BY t.id",
        (task_id,),
    )


def open_children(tx: Tx, task_id: int) -> list[dict[str, Any]]:
    return tx.all(
        f"SELECT id, status FROM tasks WHERE parent_id = ?"
        f" AND status IN {states.sql_list(states.OPEN)} ORDER BY id",
        (task_id,),
    )


def settle_readiness(tx: Tx, task_id: int, actor: actors.Actor) -> None:
    """`todo` <-> `ready` according to the task's blockers (after a link or unlink)."""
    status = Status(tx.value("SELECT status FROM tasks WHERE id = ?", (task_id,)))
    blocked = bool(unfinished_blockers(tx, task_id))
    if status is Status.TODO and not blocked:
        apply(tx, task_id, Status.READY, actor=actor, reason="all blockers are done")
    elif status is Status.READY and blocked:
        apply(tx, task_id, Status.TODO, actor=actor, reason="a new blocker is not done yet")


def _release_dependents(tx: Tx, task_id: int) -> None:
    for row in tx.all(
        "SELECT t.id FROM deps d JOIN tasks t ON t.id = d.blocked_id"
        " WHERE d.blocker_id = ? AND t.status = 'todo'",
        (task_id,),
    ):
        if not unfinished_blockers(tx, row["id"]):
            apply(
                tx,
                row["id"],
                Status.READY,
                actor=actors.DISPATCHER,
                reason=f"blocker {ids.format(task_id)} is done",
            )


def _wake_parent(tx: Tx, task_id: int) -> None:
    parent = tx.one(
        "SELECT p.id, p.status FROM tasks c JOIN tasks p ON p.id = c.parent_id WHERE c.id = ?",
        (task_id,),
    )
    if parent is None or parent["status"] != Status.WAITING:
        return
    if not open_children(tx, parent["id"]):
        # A blocker linked while the parent ran or waited still holds it back.
        target = Status.TODO if unfinished_blockers(tx, parent["id"]) else Status.READY
        apply(
            tx,
            parent["id"],
            target,
            actor=actors.DISPATCHER,
            reason="all subtasks have ended",
            resume=1,
            attempts=0,
            next_attempt_at=None,
        )
