"""Tasks as people, scripts and models see them: JSON-ready dicts with ids like ``t_12``.

This is the one place that decides the shape of a task object (CLI ``--json``, MCP tools).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from board import ids, records, runs, spending, tasks
from board.connection import rows
from board.states import Status

# Everything a task object has, in this order.
TASK_FIELDS = (
    "id",
    "title",
    "status",
    "priority",
    "parent",
    "blockers",
    "dependents",
    "children",
    "repo",
    "base_ref",
    "base_branch",
    "branch",
    "worktree",
    "runtime",
    "runtime_options",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "timeout",
    "summary",
    "block_reason",
    "failure_reason",
    "batch_id",
    "created_at",
    "updated_at",
    "ended_at",
    "body",
    "why_not_runnable",
    "conflicts",
    "landed",
    "landed_at",
    "pr_url",
    "usage",
    "budget",
)


def when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _relations(db: sqlite_utils.Database, task_ids: list[int]) -> tuple[dict, dict, dict, dict]:
    blockers: dict[int, list[int]] = defaultdict(list)
    dependents: dict[int, list[int]] = defaultdict(list)
    children: dict[int, list[int]] = defaultdict(list)
    status: dict[int, str] = {}
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for edge in db.conn.execute(
            f"SELECT d.blocker_id, d.blocked_id, t.status FROM deps d"
            f" JOIN tasks t ON t.id = d.blocker_id WHERE d.blocked_id IN ({marks})",
            chunk,
        ):
            blockers[edge[1]].append(edge[0])
            status[edge[0]] = edge[2]
        for edge in db.conn.execute(
            f"SELECT blocker_id, blocked_id FROM deps WHERE blocker_id IN ({marks})", chunk
        ):
            dependents[edge[0]].append(edge[1])
        for child in db.conn.execute(
            f"SELECT parent_id, id FROM tasks WHERE parent_id IN ({marks})", chunk
        ):
            children[child[0]].append(child[1])
    return blockers, dependents, children, status


def why_not_runnable(
    db: sqlite_utils.Database,
    task: records.Task,
    *,
    blockers: list[int] | None = None,
    blocker_status: dict[int, str] | None = None,
) -> str | None:
    """One sentence on why a task will not start now, or None if it can (or did)."""
    status = task.status
    if status == Status.TODO:
        if blockers is None or blocker_status is None:
            found = rows(
                db.conn,
                "SELECT t.id, t.status FROM deps d JOIN tasks t"
                " ON t.id = d.blocker_id WHERE d.blocked_id = ?",
                (task.id,),
            )
            blockers = [r["id"] for r in found]
            blocker_status = {r["id"]: r["status"] for r in found}
        parts = []
        for blocker in sorted(blockers):
            state = blocker_status[blocker]
            if state == Status.DONE:
                continue
            if state in (Status.FAILED, Status.CANCELLED):
                parts.append(
                    f"{ids.format(blocker)} is {state} and will not finish unless it is"
                    f" retried (`kanban retry {ids.format(blocker)}`) or unlinked"
                )
            else:
                parts.append(f"{ids.format(blocker)} is {state}")
        return "waiting for its blockers: " + "; ".join(parts) if parts else None
    if status == Status.READY and task.next_attempt_at:
        return f"its next attempt is scheduled for {when(task.next_attempt_at)}"
    if status == Status.WAITING:
        open_children = rows(
            db.conn,
            "SELECT id, status FROM tasks WHERE parent_id = ? AND"
            " status NOT IN ('done', 'failed', 'cancelled') ORDER BY id",
            (task.id,),
        )
        names = ", ".join(f"{ids.format(c['id'])} ({c['status']})" for c in open_children)
        return f"waiting for its subtasks to end: {names}"
    if status == Status.BLOCKED:
        return f"blocked: {task.block_reason}; `kanban unblock {task.label}`"
    if status == Status.FAILED:
        return f"failed: {task.failure_reason}; `kanban retry {task.label}`"
    if status == Status.CANCELLED:
        return "cancelled"
    return None


def _usage(db: sqlite_utils.Database, task_ids: list[int]) -> dict[int, records.Usage]:
    used: dict[int, records.Usage] = {}
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in rows(
            db.conn,
            f"SELECT task_id, {spending.SUMS} FROM runs WHERE task_id IN ({marks})"
            " AND (input_tokens > 0 OR output_tokens > 0 OR cost_usd IS NOT NULL)"
            " GROUP BY task_id",
            chunk,
        ):
            used[row["task_id"]] = records.Usage.from_row(row)
    return used


def usage_object(used: records.Usage | None) -> dict[str, Any] | None:
    """A usage as data (None when nothing was recorded)."""
    if used is None or used.empty:
        return None
    return {"tokens": used.tokens, **dataclasses.asdict(used)}


def budget_object(budget: records.Budget) -> dict[str, Any] | None:
    return None if budget.unbounded else {"tokens": budget.tokens, "usd": budget.usd}


def task_objects(db: sqlite_utils.Database, found: Iterable[records.Task]) -> list[dict[str, Any]]:
    """The JSON view of tasks (`kanban list --json`, `kanban_list`): data for people and models."""
    found = list(found)
    blockers, dependents, children, status = _relations(db, [t.id for t in found])
    used = _usage(db, [t.id for t in found])
    out = []
    for task in found:
        tid = task.id
        obj = {
            "id": task.label,
            "title": task.title,
            "status": task.status,
            "priority": task.priority,
            "parent": ids.format(task.parent_id) if task.parent_id else None,
            "blockers": [ids.format(b) for b in sorted(blockers[tid])],
            "dependents": [ids.format(d) for d in sorted(dependents[tid])],
            "children": [ids.format(c) for c in sorted(children[tid])],
            "repo": task.repo,
            "base_ref": task.base_ref,
            "base_branch": task.base_branch,
            "branch": task.branch,
            "worktree": task.worktree,
            "runtime": task.runtime,
            "runtime_options": dict(task.runtime_options),
            "attempts": task.attempts,
            "max_attempts": task.max_attempts,
            "next_attempt_at": when(task.next_attempt_at),
            "timeout": task.timeout,
            "summary": task.summary,
            "block_reason": task.block_reason,
            "failure_reason": task.failure_reason,
            "batch_id": task.batch_id,
            "created_at": when(task.created_at),
            "updated_at": when(task.updated_at),
            "ended_at": when(task.ended_at),
            "body": task.body,
            "why_not_runnable": why_not_runnable(
                db, task, blockers=blockers[tid], blocker_status=status
            ),
            "conflicts": list(task.conflicts),
            "landed": task.landed_sha,
            "landed_at": when(task.landed_at),
            "pr_url": task.pr_url,
            "usage": usage_object(used.get(tid)),
            "budget": budget_object(task.budget),
        }
        out.append(obj)
    return out


def task_object(db: sqlite_utils.Database, task_id: int) -> dict[str, Any]:
    return task_objects(db, [tasks.get(db, task_id)])[0]


def run_object(run: records.Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "attempt": run.attempt,
        "kind": run.kind,
        "outcome": run.outcome,
        "reason": run.reason,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "pid": run.pid,
        "started_at": when(run.started_at),
        "heartbeat_at": when(run.heartbeat_at),
        "ended_at": when(run.ended_at),
        "note": run.note,
        "summary": run.summary,
        "log_path": run.log_path,
        "worktree": run.worktree,
        "branch": run.branch,
        "commit": run.commit_sha,
        "ports": list(run.ports),
        "check": None if run.check_result is None else dataclasses.asdict(run.check_result),
        "usage": usage_object(run.usage),
        "cost_source": run.cost_source,
    }


def show(db: sqlite_utils.Database, task_id: int) -> dict[str, Any]:
    """The task with its runs, events, comments and subtree (what `kanban show` prints)."""
    obj = task_object(db, task_id)
    obj["runs"] = [run_object(r) for r in runs.for_task(db, task_id)]
    obj["events"] = [
        {
            "at": when(e["at"]),
            "kind": e["kind"],
            "from": e["from_status"],
            "to": e["to_status"],
            "actor": e["actor"],
            "run": e["run_id"],
            "data": json.loads(e["data"]) if e["data"] else None,
        }
        for e in rows(db.conn, "SELECT * FROM events WHERE task_id = ? ORDER BY id", (task_id,))
    ]
    obj["comments"] = [
        {"id": c["id"], "at": when(c["at"]), "author": c["author"], "body": c["body"]}
        for c in rows(db.conn, "SELECT * FROM comments WHERE task_id = ? ORDER BY id", (task_id,))
    ]
    obj["subtasks"] = subtree(db, task_id)
    return obj


def subtree(db: sqlite_utils.Database, task_id: int) -> list[dict[str, Any]]:
    """Descendants with their depth below `task_id`, in tree order."""
    found = rows(
        db.conn,
        "WITH RECURSIVE sub(id, level, path) AS ("
        "  SELECT id, 1, printf('%010d', id) FROM tasks WHERE parent_id = ?"
        "  UNION ALL SELECT t.id, sub.level + 1, sub.path || '/' || printf('%010d', t.id)"
        "  FROM tasks t JOIN sub ON t.parent_id = sub.id"
        ") SELECT t.id, t.title, t.status, t.summary, sub.level FROM sub"
        " JOIN tasks t ON t.id = sub.id ORDER BY sub.path",
        (task_id,),
    )
    return [
        {
            "id": ids.format(r["id"]),
            "title": r["title"],
            "status": r["status"],
            "summary": r["summary"],
            "level": r["level"],
        }
        for r in found
    ]


def children(db: sqlite_utils.Database, task_id: int) -> list[records.Task]:
    """The task's subtasks, oldest first (a resumed parent's prompt lists their outcomes)."""
    found = rows(db.conn, "SELECT * FROM tasks WHERE parent_id = ? ORDER BY id", (task_id,))
    return [records.Task.from_row(row) for row in found]


def children_in_dependency_order(db: sqlite_utils.Database, task_id: int) -> list[records.Task]:
    """Subtasks ordered so that each comes after the subtasks it depends on (then by id)."""
    edges = rows(
        db.conn,
        "SELECT d.blocker_id, d.blocked_id FROM deps d JOIN tasks t"
        " ON t.id = d.blocked_id WHERE t.parent_id = ?",
        (task_id,),
    )
    return in_dependency_order(children(db, task_id), edges)


def blockers_in_dependency_order(db: sqlite_utils.Database, task_id: int) -> list[records.Task]:
    """The tasks `task_id` waits for, each after those of them it depends on (then by id)."""
    blockers = blockers_of(db, task_id)
    edges = rows(
        db.conn,
        "SELECT d.blocker_id, d.blocked_id FROM deps d"
        " JOIN deps mine ON mine.blocker_id = d.blocked_id WHERE mine.blocked_id = ?",
        (task_id,),
    )
    return in_dependency_order(blockers, edges)


def in_dependency_order(
    found: list[records.Task], edges: list[dict[str, Any]]
) -> list[records.Task]:
    """`found`, each after those of them it depends on by `edges` (then by id)."""
    by_id = {task.id: task for task in found}
    waiting_on: dict[int, set[int]] = {task_id: set() for task_id in by_id}
    for edge in edges:
        if edge["blocker_id"] in by_id and edge["blocked_id"] in by_id:
            waiting_on[edge["blocked_id"]].add(edge["blocker_id"])
    ordered: list[records.Task] = []
    while waiting_on:
        free = sorted(t for t, before in waiting_on.items() if not before) or sorted(waiting_on)
        chosen = free[0]
        ordered.append(by_id[chosen])
        del waiting_on[chosen]
        for before in waiting_on.values():
            before.discard(chosen)
    return ordered


def recent_comments(
    db: sqlite_utils.Database, task_id: int, limit: int = 30
) -> list[records.Comment]:
    """The task's last `limit` comments, oldest first."""
    newest = rows(
        db.conn,
        "SELECT author, body, at FROM comments WHERE task_id = ? ORDER BY id DESC LIMIT ?",
        (task_id, limit),
    )
    return [records.Comment.from_row(row) for row in newest[::-1]]


def blockers_of(db: sqlite_utils.Database, task_id: int) -> list[records.Task]:
    """The tasks `task_id` waited for, with their outcome, summary and branch."""
    found = rows(
        db.conn,
        "SELECT t.* FROM deps d JOIN tasks t ON t.id = d.blocker_id"
        " WHERE d.blocked_id = ? ORDER BY t.id",
        (task_id,),
    )
    return [records.Task.from_row(row) for row in found]
