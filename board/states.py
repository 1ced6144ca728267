"""Task statuses, run outcomes, and the one table of allowed transitions.

The statuses are mirrored by a CHECK constraint in the schema (see `migrations`); the only
code that changes a task's status is `transitions.apply`, which consults `ALLOWED` and writes
the event in the same transaction. docs/lifecycle.md draws this table.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    TODO = "todo"  # waiting for a blocker to be done
    READY = "ready"  # may be dispatched (not before next_attempt_at)
    RUNNING = "running"  # a live run holds the lease
    WAITING = "waiting"  # its run completed with subtasks still open
    BLOCKED = "blocked"  # needs a human or another task; block_reason says why
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    BLOCKED = "blocked"
    CRASHED = "crashed"  # non-zero exit or killed by a signal we did not send
    EXITED_WITHOUT_REPORT = "exited_without_report"
    STALLED = "stalled"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"  # its process vanished without a trace (e.g. the machine rebooted)
    SPAWN_FAILED = "spawn_failed"
    RATE_LIMITED = "rate_limited"
    CHECK_FAILED = "check_failed"  # it completed, but the repository's gated check failed


S = Status
ALLOWED: dict[Status, frozenset[Status]] = {
    S.TODO: frozenset({S.READY, S.BLOCKED, S.DONE, S.CANCELLED}),
    S.READY: frozenset({S.RUNNING, S.TODO, S.BLOCKED, S.DONE, S.CANCELLED}),
    S.RUNNING: frozenset({S.DONE, S.WAITING, S.BLOCKED, S.READY, S.TODO, S.FAILED, S.CANCELLED}),
    S.WAITING: frozenset({S.READY, S.TODO, S.CANCELLED}),
    S.BLOCKED: frozenset({S.READY, S.TODO, S.DONE, S.CANCELLED}),
    S.DONE: frozenset({S.READY, S.TODO}),  # reopened: review comments, a failed landing
    S.FAILED: frozenset({S.READY, S.TODO}),
    S.CANCELLED: frozenset({S.READY, S.TODO}),
}

# A task in one of these has ended: its dependents and its parent may react.
ENDED: frozenset[Status] = frozenset({S.DONE, S.FAILED, S.CANCELLED})
OPEN: frozenset[Status] = frozenset(Status) - ENDED


def sql_list(values: frozenset[str] | type[enum.StrEnum]) -> str:
    """`('a', 'b')` for a CHECK constraint or an IN clause; values are our own constants."""
    return "(" + ", ".join(f"'{v}'" for v in sorted(str(v) for v in values)) + ")"
