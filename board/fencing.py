"""Fencing: a worker may change the board only while its run is its task's live run.

Every write that comes from a worker names its run and presents the run's random token. The
check runs inside the write's own transaction, so a run that is declared dead (settled,
superseded by a new attempt, its task cancelled) can change nothing afterwards, however late
its process wakes up. Workers may also touch only their own task and its subtasks.
"""

from __future__ import annotations

import hashlib
import hmac

from board import actors, errors, ids
from board.connection import Tx


def token_hash(token: str) -> str:
    """How a run's token is stored: its SHA-256, so reading the board gives no usable token.

    The token is 24 random bytes (`secrets.token_urlsafe`): no salt or slow hash is needed
    against guessing, only against reading.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(stored_hash: str | None, token: str) -> bool:
    return stored_hash is not None and hmac.compare_digest(stored_hash, token_hash(token))


def check(
    tx: Tx, worker: actors.Worker, target: int | None = None, *, own_only: bool = False
) -> None:
    """Raise `StaleRun` unless `worker` holds its task; `NotYourTask` for a foreign target."""
    task_label = ids.format(worker.task_id)
    row = tx.one(
        "SELECT r.task_id, r.token_hash, r.outcome, t.current_run_id, t.status"
        " FROM runs r JOIN tasks t ON t.id = r.task_id WHERE r.id = ?",
        (worker.run_id,),
    )
    if (
        row is None
        or row["task_id"] != worker.task_id
        or not token_matches(row["token_hash"], worker.token)
    ):
        raise errors.StaleRun(task_label, worker.run_id, "unknown run, or a wrong token")
    if row["outcome"] is not None:
        raise errors.StaleRun(task_label, worker.run_id, f"the run already ended: {row['outcome']}")
    if row["current_run_id"] != worker.run_id or row["status"] != "running":
        raise errors.StaleRun(
            task_label, worker.run_id, f"the task is {row['status']} and has moved on"
        )
    if target is None or target == worker.task_id:
        return
    if tx.value("SELECT 1 FROM tasks WHERE id = ?", (target,)) is None:
        raise errors.TaskNotFound(ids.format(target))
    if own_only or not is_descendant(tx, target, worker.task_id):
        raise errors.NotYourTask(ids.format(target), task_label)


def is_descendant(tx: Tx, task_id: int, ancestor_id: int) -> bool:
    return bool(
        tx.value(
            "WITH RECURSIVE up(id) AS ("
            "  SELECT parent_id FROM tasks WHERE id = ?"
            "  UNION ALL SELECT t.parent_id FROM tasks t JOIN up ON t.id = up.id"
            "  WHERE t.parent_id IS NOT NULL"
            ") SELECT 1 FROM up WHERE id = ?",
            (task_id, ancestor_id),
        )
    )
