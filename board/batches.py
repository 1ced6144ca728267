"""Batches: a set of tasks submitted together, atomically (all or none), at most once per key.

A batch entry names its task by a local key and its dependencies by keys of the same batch.
Scheduled batches claim their fire time in the same transaction that creates the tasks, so a
schedule fires exactly once per fire time however many dispatchers race for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlite_utils

from board import actors, errors, policy, records, tasks
from board.connection import Tx, rows, transaction

PREFIX = "b_"


@dataclasses.dataclass(frozen=True)
class Entry:
    key: str
    task: tasks.NewTask  # its `after` holds ids of existing tasks, if any
    after: tuple[str, ...] = ()  # keys of entries of the same batch


@dataclasses.dataclass(frozen=True)
class Submitted:
    batch_id: str | None  # None: a scheduled fire that another dispatcher already made
    created: bool
    task_ids: dict[str, int]


def format_id(number: int) -> str:
    return f"{PREFIX}{number}"


def order(entries: Sequence[Entry]) -> list[Entry]:
    """The entries with every one after those it depends on; refuses cycles and unknown keys."""
    by_key = {}
    for entry in entries:
        if entry.key in by_key:
            raise errors.InvalidInput(f"task key {entry.key!r} appears twice in the batch")
        by_key[entry.key] = entry
    for entry in entries:
        for key in entry.after:
            if key not in by_key:
                raise errors.InvalidInput(
                    f"task {entry.key!r} comes after {key!r}, which is not in the batch"
                )
    ordered: list[Entry] = []
    placed: set[str] = set()
    visiting: list[str] = []

    def visit(entry: Entry) -> None:
        if entry.key in placed:
            return
        if entry.key in visiting:
            cycle = " -> ".join([*visiting[visiting.index(entry.key) :], entry.key])
            raise errors.InvalidInput(f"the batch's dependencies form a cycle: {cycle}")
        visiting.append(entry.key)
        for key in entry.after:
            visit(by_key[key])
        visiting.pop()
        placed.add(entry.key)
        ordered.append(entry)

    for entry in entries:
        visit(entry)
    return ordered


def _existing(tx: Tx, key: str) -> Submitted | None:
    row = tx.one("SELECT id FROM batches WHERE idempotency_key = ?", (key,))
    if row is None:
        return None
    batch_id = format_id(row["id"])
    made = tx.all(
        "SELECT id, batch_key FROM tasks WHERE batch_id = ? AND batch_key IS NOT NULL ORDER BY id",
        (batch_id,),
    )
    return Submitted(batch_id, False, {r["batch_key"]: r["id"] for r in made})


def insert(
    tx: Tx,
    entries: Sequence[Entry],
    *,
    name: str,
    idempotency_key: str | None = None,
    source: str | None = None,
    schedule: str | None = None,
    fire_at: float | None = None,
    actor: actors.Actor = actors.OPERATOR,
    budget: records.Budget = tasks.NO_BUDGET,
) -> Submitted:
    policy.check_batch(actor)
    tasks.check_budget(budget)
    if not entries:
        raise errors.InvalidInput("the batch has no tasks")
    ordered = order(entries)
    if idempotency_key is not None:
        found = _existing(tx, idempotency_key)
        if found is not None:
            return found
    cursor = tx.execute(
        "INSERT INTO batches (name, idempotency_key, source, schedule, fire_at, created_at,"
        " budget_tokens, budget_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (name, idempotency_key, source, schedule, fire_at, tx.now, budget.tokens, budget.usd),
    )
    batch_id = format_id(cursor.lastrowid or 0)
    made: dict[str, int] = {}
    for entry in ordered:
        spec = dataclasses.replace(
            entry.task,
            batch_id=batch_id,
            after=(*entry.task.after, *(made[key] for key in entry.after)),
        )
        made[entry.key] = tasks.insert(tx, spec, actor)
        tx.execute("UPDATE tasks SET batch_key = ? WHERE id = ?", (entry.key, made[entry.key]))
    return Submitted(batch_id, True, made)


def submit(
    db: sqlite_utils.Database,
    entries: Sequence[Entry],
    *,
    name: str,
    idempotency_key: str | None = None,
    source: str | None = None,
    actor: actors.Actor = actors.OPERATOR,
    budget: records.Budget = tasks.NO_BUDGET,
) -> Submitted:
    """Create every task of the batch, or none; with a key already used, create nothing.

    Only operators submit batches (`policy.check_batch`): a worker creates subtasks instead.
    """
    with transaction(db) as tx:
        return insert(
            tx,
            entries,
            name=name,
            idempotency_key=idempotency_key,
            source=source,
            actor=actor,
            budget=budget,
        )


def find(db: sqlite_utils.Database, name: str) -> str:
    """The id of the batch named `name` (its latest, if it ran several times), or of the batch
    whose id it is (``b_3``)."""
    row = rows(
        db.conn,
        "SELECT id FROM batches WHERE name = ? OR ? = ? || id ORDER BY id DESC LIMIT 1",
        (name, name, PREFIX),
    )
    if not row:
        raise errors.InvalidInput(
            f"no batch is named {name!r}: give the name its batch file has (or its id, b_N)"
        )
    return format_id(row[0]["id"])


def tasks_of(db: sqlite_utils.Database, batch_id: str) -> list[records.Task]:
    """Every task of the batch, subtasks its workers created included."""
    found = rows(db.conn, "SELECT * FROM tasks WHERE batch_id = ? ORDER BY id", (batch_id,))
    return [records.Task.from_row(row) for row in found]


def active_counts(db: sqlite_utils.Database, batch_id: str) -> tuple[int, int]:
    """The batch's tasks ready or running, and their runs not yet settled.

    (0, 0): nothing of the batch can move any more, whatever the rest of the board does.
    """
    ready_or_running = db.conn.execute(
        "SELECT count(*) FROM tasks WHERE batch_id = ? AND status IN ('ready', 'running')",
        (batch_id,),
    ).fetchone()[0]
    unended = db.conn.execute(
        "SELECT count(*) FROM runs r JOIN tasks t ON t.id = r.task_id"
        " WHERE t.batch_id = ? AND r.ended_at IS NULL",
        (batch_id,),
    ).fetchone()[0]
    return ready_or_running, unended


def counts(db: sqlite_utils.Database, batch_id: str) -> dict[str, int]:
    """How many of the batch's tasks are in each status."""
    return {
        row["status"]: row["n"]
        for row in rows(
            db.conn,
            "SELECT status, count(*) AS n FROM tasks WHERE batch_id = ? GROUP BY status",
            (batch_id,),
        )
    }
