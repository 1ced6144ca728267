"""Small helpers the board tests share: make a task, read its status, claim it, act as it."""

from __future__ import annotations

import sqlite_utils

from board import actors, runs, tasks
from board.states import Outcome, Status


def new(db: sqlite_utils.Database, title: str = "a task", **fields: object) -> int:
    return tasks.create(db, tasks.NewTask(title, **fields))  # type: ignore[arg-type]


def status(db: sqlite_utils.Database, task_id: int) -> str:
    return tasks.get(db, task_id).status


def claim(db: sqlite_utils.Database, task_id: int, **kwargs: object) -> runs.Claim:
    (claimed,) = runs.claim(db, task_id=task_id, **kwargs)  # type: ignore[arg-type]
    return claimed


def worker(claimed: runs.Claim) -> actors.Worker:
    return actors.Worker(claimed.task.id, claimed.run_id, claimed.token)


def finish(db: sqlite_utils.Database, claimed: runs.Claim, summary: str = "done") -> Status:
    """The worker reports completion and its run ends (what its dispatcher does on exit)."""
    tasks.complete(db, claimed.task.id, summary, actor=worker(claimed))
    runs.settle(db, claimed.run_id, Outcome.COMPLETED)
    return Status(tasks.get(db, claimed.task.id).status)
