"""Dependency edges (`A blocks B`): B stays `todo` until every blocker is done.

Adding an edge refuses a cycle, found by walking from the blocked task with a recursive query
(only the tasks reachable from it are visited). The walk follows the edges and also each
subtask to its parent, since a parent waits for its subtasks: a dependency that would make a
parent and one of its subtasks wait for each other, directly or through other tasks, is a
deadlock and is refused like any cycle.
"""

from __future__ import annotations

import sqlite_utils

from board import actors, connection, errors, fencing, ids, transitions
from board.connection import Tx, transaction


def _reaches(tx: Tx, start: int, goal: int) -> bool:
    """Must `start` end before `goal` can? Following `blocks` edges, and child -> parent
    (a parent finishes only after its subtasks have ended). Visits each task at most once."""
    # PostgreSQL allows one recursive term: the two kinds of step go into one lateral join.
    steps = (
        "  UNION SELECT step.id FROM reach, LATERAL ("
        "    SELECT d.blocked_id AS id FROM deps d WHERE d.blocker_id = reach.id"
        "    UNION ALL SELECT t.parent_id FROM tasks t"
        "    WHERE t.id = reach.id AND t.parent_id IS NOT NULL) step"
        if connection.is_postgres(tx)
        else "  UNION SELECT d.blocked_id FROM deps d JOIN reach ON d.blocker_id = reach.id"
        "  UNION SELECT t.parent_id FROM tasks t JOIN reach ON t.id = reach.id"
        "        WHERE t.parent_id IS NOT NULL"
    )
    found = tx.value(
        f"WITH RECURSIVE reach(id) AS (SELECT ?{steps}) SELECT 1 FROM reach WHERE id = ? LIMIT 1",
        (start, goal),
    )
    return found is not None


def path_between(tx: Tx, start: int, goal: int) -> list[int] | None:
    """A chain from `start` to `goal` of the orderings `_reaches` follows, if there is one."""
    if not _reaches(tx, start, goal):
        return None
    came_from: dict[int, int | None] = {start: None}
    frontier = [start]
    while frontier and goal not in came_from:  # only on the (rare) refusal path
        following = []
        for node in frontier:
            parent = tx.value("SELECT parent_id FROM tasks WHERE id = ?", (node,))
            nexts = [
                r["blocked_id"]
                for r in tx.all("SELECT blocked_id FROM deps WHERE blocker_id = ?", (node,))
            ]
            for step in [*nexts, *([parent] if parent is not None else [])]:
                if step not in came_from:
                    came_from[step] = node
                    following.append(step)
        frontier = following
    path = [goal]
    while came_from[path[-1]] is not None:
        path.append(came_from[path[-1]])  # type: ignore[arg-type]
    return path[::-1]


def insert_edge(tx: Tx, blocker: int, blocked: int, *, actor: actors.Actor) -> bool:
    if blocker == blocked:
        raise errors.InvalidInput(f"{ids.format(blocker)} cannot block itself")
    if fencing.is_descendant(tx, blocked, blocker):
        raise errors.InvalidInput(
            f"{ids.format(blocked)} is a subtask of {ids.format(blocker)} and cannot wait for it:"
            " a parent finishes only after its subtasks have ended"
        )
    cycle = path_between(tx, blocked, blocker)
    if cycle is not None:
        raise errors.DependencyCycle(
            ids.format(blocker), ids.format(blocked), [ids.format(t) for t in cycle]
        )
    cursor = tx.execute(
        "INSERT OR IGNORE INTO deps (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)",
        (blocker, blocked, tx.now),
    )
    if cursor.rowcount:
        transitions.event(tx, blocked, "linked", actor=actor, data={"blocker": ids.format(blocker)})
    return bool(cursor.rowcount)


def _check(tx: Tx, blocker: int, blocked: int, *, actor: actors.Actor) -> None:
    for task_id in (blocker, blocked):
        if tx.value("SELECT 1 FROM tasks WHERE id = ?", (task_id,)) is None:
            raise errors.TaskNotFound(ids.format(task_id))
    if isinstance(actor, actors.Worker):
        fencing.check(tx, actor)
        for task_id in (blocker, blocked):
            if task_id == actor.task_id or not fencing.is_descendant(tx, task_id, actor.task_id):
                raise errors.NotYourTask(ids.format(task_id), ids.format(actor.task_id))


def link(
    db: sqlite_utils.Database, blocker: int, blocked: int, *, actor: actors.Actor = actors.OPERATOR
) -> bool:
    """`blocker` must be done before `blocked` runs. Returns False if the edge existed."""
    with transaction(db) as tx:
        _check(tx, blocker, blocked, actor=actor)
        added = insert_edge(tx, blocker, blocked, actor=actor)
        transitions.settle_readiness(tx, blocked, actor)
        return added


def unlink(
    db: sqlite_utils.Database, blocker: int, blocked: int, *, actor: actors.Actor = actors.OPERATOR
) -> bool:
    with transaction(db) as tx:
        _check(tx, blocker, blocked, actor=actor)
        cursor = tx.execute(
            "DELETE FROM deps WHERE blocker_id = ? AND blocked_id = ?", (blocker, blocked)
        )
        if not cursor.rowcount:
            raise errors.InvalidInput(
                f"{ids.format(blocker)} does not block {ids.format(blocked)}; nothing to unlink"
            )
        transitions.event(
            tx, blocked, "unlinked", actor=actor, data={"blocker": ids.format(blocker)}
        )
        transitions.settle_readiness(tx, blocked, actor)
        return True
