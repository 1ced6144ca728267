"""What runs use, and the budgets and governor that bound it.

A run's usage is recorded by its dispatcher as the agent reports it (`record`: totals, so a
restarted dispatcher that re-reads a log from its start records the same figures). Budgets
bound a task's runs (`records.Task.budget`), a batch's tasks (its ``budget``) and the board's
runs per day (`tasks.Limits`); the governor bounds how often one task starts and how many
tasks one worker creates. Every check returns the reason as a person reads it, or None.

Each limit is enforced where its decision is made, inside that transaction: a task over its
budget or started too often is blocked instead of claimed (`runs.claim`), a board over its
daily budget claims nothing, a worker over its creation bound is refused (`tasks.insert`),
and a running worker that crosses its budget is stopped by its dispatcher.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import Any

import sqlite_utils

from board import connection, errors, ids
from board.connection import Tx, rows
from board.records import Budget, Usage

SUMS = (
    "coalesce(sum(input_tokens), 0) AS input_tokens,"
    " coalesce(sum(cached_input_tokens), 0) AS cached_input_tokens,"
    " coalesce(sum(output_tokens), 0) AS output_tokens,"
    " coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,"
    " sum(cost_usd) AS cost_usd, max(model) AS model"
)


class OverBudget(errors.LimitExceeded):
    """A budget or a governor's bound was reached; `reason` says which and by how much."""


def record(db: sqlite_utils.Database, run_id: int, used: Usage, *, cost_source: str | None) -> None:
    """Record a live run's usage so far (its totals). An ended run keeps what it has."""
    with connection.transaction(db) as tx:
        tx.execute(
            "UPDATE runs SET model = coalesce(?, model), input_tokens = ?,"
            " cached_input_tokens = ?, output_tokens = ?, reasoning_tokens = ?, cost_usd = ?,"
            " cost_source = ?, usage_at = ? WHERE id = ? AND ended_at IS NULL",
            (
                used.model,
                used.input_tokens,
                used.cached_input_tokens,
                used.output_tokens,
                used.reasoning_tokens,
                used.cost_usd,
                cost_source if used.cost_usd is not None else None,
                tx.now,
                run_id,
            ),
        )


def _usage(found: list[dict[str, Any]]) -> Usage:
    return Usage.from_row(found[0]) if found else Usage()


def of_task(tx: Tx | sqlite_utils.Database, task_id: int) -> Usage:
    """Everything the task's runs used."""
    return _usage(_all(tx, f"SELECT {SUMS} FROM runs WHERE task_id = ?", (task_id,)))


def of_batch(tx: Tx | sqlite_utils.Database, batch_id: str) -> Usage:
    return _usage(
        _all(
            tx,
            f"SELECT {SUMS} FROM runs WHERE task_id IN (SELECT id FROM tasks WHERE batch_id = ?)",
            (batch_id,),
        )
    )


def since(tx: Tx | sqlite_utils.Database, start: float) -> Usage:
    """Everything the runs started since `start` used."""
    return _usage(_all(tx, f"SELECT {SUMS} FROM runs WHERE started_at >= ?", (start,)))


def _all(tx: Tx | sqlite_utils.Database, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    if isinstance(tx, Tx):
        return tx.all(sql, params)
    return rows(tx.conn, sql, params)  # a board, on either engine


def start_of_day(now: float) -> float:
    """Local midnight before `now`: the daily budget's day."""
    moment = datetime.datetime.fromtimestamp(now).astimezone()
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


# -- budgets as people write them -----------------------------------------------------------

_SCALE = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
BUDGET_HELP = 'tokens ("200k", "1.5M", "50000"), dollars ("$5", "5usd"), or both ("200k,$5")'


def parse_budget(text: str) -> Budget:
    """``200k`` tokens, ``$5`` (or ``5usd``) dollars, or both separated by a comma."""
    tokens: int | None = None
    usd: float | None = None
    parts = [part.strip().lower().replace("_", "") for part in str(text).split(",")]
    for part in parts:
        try:
            if part.startswith("$") or part.endswith("usd"):
                if usd is not None:
                    raise ValueError
                usd = float(part.removeprefix("$").removesuffix("usd").strip())
            else:
                if tokens is not None:
                    raise ValueError
                number = part.removesuffix("tokens").strip()
                unit = number[-1:] if number[-1:] in _SCALE else ""
                tokens = round(float(number.removesuffix(unit)) * _SCALE[unit])
        except (ValueError, IndexError, OverflowError):
            raise errors.InvalidInput(f"{text!r} is not a budget; write {BUDGET_HELP}") from None
    budget = Budget(tokens=tokens, usd=usd)
    if (tokens is not None and not 0 < tokens < 2**62) or (
        usd is not None and not 0 < usd < float("inf")
    ):
        raise errors.InvalidInput(f"{text!r}: a budget must be positive and finite")
    return budget


# -- the checks ----------------------------------------------------------------------------


def of_subtree(tx: Tx | sqlite_utils.Database, task_id: int) -> Usage:
    """Everything the runs of the task and of all its subtasks used."""
    return _usage(
        _all(
            tx,
            "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL"
            " SELECT t.id FROM tasks t JOIN sub ON t.parent_id = sub.id)"
            f" SELECT {SUMS} FROM runs WHERE task_id IN (SELECT id FROM sub)",
            (task_id,),
        )
    )


def over_budget(tx: Tx | sqlite_utils.Database, task: Mapping[str, Any]) -> str | None:
    """Why `task` (a row) may not run on: its own budget is spent, or an ancestor's (a task's
    budget covers its subtasks: an orchestrator's fan-out spends from it), or its batch's."""
    budget = Budget(tokens=task["budget_tokens"], usd=task["budget_usd"])
    if not budget.unbounded:
        spent = budget.exceeded(of_subtree(tx, task["id"]))
        if spent:
            return (
                f"budget exceeded: {spent}; raise it with `kanban retry "
                f"{ids.format(task['id'])} --budget ...` to let it go on (`none` removes it)"
            )
    parent_id = task["parent_id"]
    while parent_id is not None:
        found = _all(tx, "SELECT * FROM tasks WHERE id = ?", (parent_id,))
        if not found:
            break
        parent = found[0]
        budget = Budget(tokens=parent["budget_tokens"], usd=parent["budget_usd"])
        spent = None if budget.unbounded else budget.exceeded(of_subtree(tx, parent["id"]))
        if spent:
            return (
                f"the budget of {ids.format(parent['id'])} (its subtasks included) is "
                f"exceeded: {spent}; raise it with `kanban budget {ids.format(parent['id'])} "
                f"...`, then `kanban retry {ids.format(task['id'])}`"
            )
        parent_id = parent["parent_id"]
    if task["batch_id"] is not None:
        number = str(task["batch_id"]).removeprefix(batches_prefix())
        found = (
            _all(tx, "SELECT budget_tokens, budget_usd FROM batches WHERE id = ?", (int(number),))
            if number.isdigit()
            else []
        )
        if found:
            batch = Budget(tokens=found[0]["budget_tokens"], usd=found[0]["budget_usd"])
            spent = None if batch.unbounded else batch.exceeded(of_batch(tx, task["batch_id"]))
            if spent:
                return f"the budget of batch {task['batch_id']} is exceeded: {spent}"
    return None


def task_over_budget(db: sqlite_utils.Database, task_id: int) -> str | None:
    """`over_budget` for the task `task_id`."""
    found = rows(db.conn, "SELECT * FROM tasks WHERE id = ?", (task_id,))
    return over_budget(db, found[0]) if found else None


def batches_prefix() -> str:
    from board import batches  # batches imports tasks, which imports this module

    return batches.PREFIX


def daily(
    tx: Tx | sqlite_utils.Database, tokens: int | None, usd: float | None, now: float
) -> str | None:
    """Why the board starts nothing new today (its daily budget is spent), or None."""
    budget = Budget(tokens=tokens, usd=usd)
    if budget.unbounded:
        return None
    spent = budget.exceeded(since(tx, start_of_day(now)))
    if spent is None:
        return None
    return (
        f"the board's daily budget is spent ({spent} today): starting nothing new until "
        "midnight; raise daily_tokens / daily_usd under [limits] in the config to go on"
    )


def daily_notice(db: sqlite_utils.Database, now: float | None = None) -> str | None:
    """`daily` with the board's own limits (those its dispatchers enforce)."""
    from board import tasks  # tasks imports this module

    limits = tasks.read_limits(db)
    return daily(db, limits.daily_tokens, limits.daily_usd, time.time() if now is None else now)


def respawns(tx: Tx, task_id: int, per_hour: int, now: float) -> str | None:
    """Why a task that keeps being started is stopped (the respawn governor), or None."""
    started = tx.value(
        "SELECT count(*) FROM runs WHERE task_id = ? AND started_at > ?", (task_id, now - 3600)
    )
    if started < per_hour:
        return None
    return (
        f"respawn governor: {started} runs started in the last hour (the limit is "
        f"{per_hour}); find out why it keeps ending, then `kanban unblock "
        f"{ids.format(task_id)}`"
    )


def fan_out(tx: Tx, run_id: int, root_id: int, per_run: int, per_subtree: int) -> str | None:
    """Why the worker of `run_id` may create no more tasks (the fan-out governor), or None."""
    created = tx.value("SELECT count(*) FROM tasks WHERE created_by_run = ?", (run_id,))
    if created >= per_run:
        return (
            f"fan-out governor: run {run_id} already created {created} tasks (the limit is "
            f"{per_run}); do the remaining work in fewer, larger tasks"
        )
    subtree = tx.value(
        "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL"
        " SELECT t.id FROM tasks t JOIN sub ON t.parent_id = sub.id) SELECT count(*) FROM sub",
        (root_id,),
    )
    if subtree >= per_subtree:
        return (
            f"fan-out governor: {ids.format(root_id)} already has {subtree} tasks under it "
            f"(the limit is {per_subtree}); do the remaining work in fewer, larger tasks"
        )
    return None


# -- reports -------------------------------------------------------------------------------

GROUPINGS = {
    "task": "r.task_id",
    "batch": "t.batch_id",
    "runtime": "t.runtime",
    "model": "r.model",
    "day": "r.started_at",  # grouped by its local day (`connection.local_day`)
}


def report(
    db: sqlite_utils.Database, *, start: float | None = None, by: str = "task"
) -> list[dict[str, Any]]:
    """Usage grouped `by` one of `GROUPINGS`, of the runs started since `start`: rows with
    the group's key, runs, the token columns and cost (None when no run reported one)."""
    if by not in GROUPINGS:
        raise errors.InvalidInput(
            f"cannot group usage by {by!r}; use one of: {', '.join(GROUPINGS)}"
        )
    key = connection.local_day(db, GROUPINGS[by]) if by == "day" else GROUPINGS[by]
    sums = SUMS.replace("sum(", "sum(r.").replace("max(model)", "max(r.model)")
    found = rows(
        db.conn,
        f"SELECT {key} AS key, count(*) AS runs, {sums},"
        " sum(CASE WHEN r.cost_usd IS NULL AND r.input_tokens + r.output_tokens > 0"
        "  THEN 1 ELSE 0 END) AS unpriced"
        " FROM runs r JOIN tasks t ON t.id = r.task_id"
        f" WHERE r.started_at >= ? GROUP BY key ORDER BY ({key}) IS NULL, key",
        (start if start is not None else 0.0,),
    )
    for row in found:
        row.pop("model" if by != "model" else "_", None)
        if by == "task":
            row["key"] = ids.format(row["key"])
        row["tokens"] = row["input_tokens"] + row["output_tokens"]
    return found
