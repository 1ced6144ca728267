"""Dependency edges (`A blocks B`): B stays `todo` until every blocker is done.

Adding an edge refuses a cycle, found by walking the existing edges from the blocked task with
a recursive query (only the tasks reachable from it are visited).
"""

from __future__ import annotations

import sqlite_utils

from board import actors, errors, fencing, ids, transitions
from board.connection import Tx, transaction


def path_between(tx: Tx, start: int, goal: int) -> list[int] | None:
    """A chain of `blocks` edges from `start` to `goal`, if any."""
    row = tx.one(
        "WITH RECURSIVE reach(id, path) AS ("
        "  SELECT ?, CAST(? AS TEXT)"
        "  UNION SELECT d.blocked_id, reach.path || ',' || d.blocked_id"
        "  FROM deps d JOIN reach ON d.blocker_id = reach.id"
        ") SELECT path FROM reach WHERE id = ? LIMIT 1",
        (start, start, goal),
    )
    return None if row is None else [int(part) for part in row["path"].split(",")]


def insert_edge(tx: Tx, blocker: int, blocked: int, actor: actors.Actor) -> bool:
    if blocker == blocked:
        raise errors.InvalidInput(f"{ids.format(blocker)} cannot block itself")
    if fencing.is_descendant(tx, blocked, blocker):
        raise errors.InvalidInput(
            f"{ids.format(blocked)} is a subtask of {ids.format(blocker)} and cannot wait for it:"
            " a parent finishes only after its subtasks have ended"
        )
    cycle = path_between(tx, blocked, blocker)
    if cycle is not None:
        raise errors.DependencyCycle(ids.format(blocker), ids.format(blocked),
                                     [ids.format(t) for t in cycle])
    cursor = tx.execute(
        "INSERT OR IGNORE INTO deps (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)",
        (blocker, blocked, tx.now),
    )
    if cursor.rowcount:
        transitions.event(tx, blocked, "linked", actor, data={"blocker": ids.format(blocker)})
    return bool(cursor.rowcount)


def _check(tx: Tx, blocker: int, blocked: int, actor: actors.Actor) -> None:
    for task_id in (blocker, blocked):
        if tx.value("SELECT 1 FROM tasks WHERE id = ?", (task_id,)) is None:
            raise errors.TaskNotFound(ids.format(task_id))
    if isinstance(actor, actors.Worker):
        fencing.check(tx, actor)
        for task_id in (blocker, blocked):
            if task_id == actor.task_id or not fencing.is_descendant(tx, task_id, actor.task_id):
                raise errors.NotYourTask(ids.format(task_id), ids.format(actor.task_id))


def link(db: sqlite_utils.Database, blocker: int, blocked: int,
         actor: actors.Actor = actors.OPERATOR) -> bool:
    """`blocker` must be done before `blocked` runs. Returns False if the edge existed."""
    with transaction(db) as tx:
        _check(tx, blocker, blocked, actor)
        added = insert_edge(tx, blocker, blocked, actor)
        transitions.settle_readiness(tx, blocked, actor)
        return added


def unlink(db: sqlite_utils.Database, blocker: int, blocked: int,
           actor: actors.Actor = actors.OPERATOR) -> bool:
    with transaction(db) as tx:
        _check(tx, blocker, blocked, actor)
        cursor = tx.execute(
            "DELETE FROM deps WHERE blocker_id = ? AND blocked_id = ?", (blocker, blocked)
        )
        if not cursor.rowcount:
            raise errors.InvalidInput(
                f"{ids.format(blocker)} does not block {ids.format(blocked)}; nothing to unlink"
            )
        transitions.event(tx, blocked, "unlinked", actor, data={"blocker": ids.format(blocker)})
        transitions.settle_readiness(tx, blocked, actor)
        return True
