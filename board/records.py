"""The board's records: frozen, typed values built in one place from a row.

Consumers read ``task.repo`` and ``run.exit_code``, and mypy checks every field; only
`from_row` knows how a column is stored (JSON text, 0/1 for booleans). The JSON views for the
CLI and MCP (`views`) stay dicts: they are data for people and models, not for code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from board import ids
from board.states import Outcome, Status


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Task:
    id: int
    title: str
    body: str
    status: Status
    priority: int
    parent_id: int | None
    depth: int
    repo: str | None
    base_ref: str | None
    branch: str | None
    worktree: str | None
    runtime: str
    runtime_options: Mapping[str, Any]
    max_attempts: int
    attempts: int
    next_attempt_at: float | None
    timeout: float | None
    summary: str | None
    block_reason: str | None
    failure_reason: str | None
    resume: bool  # its next run integrates its subtasks (a resume)
    current_run_id: int | None
    batch_id: str | None
    batch_key: str | None
    created_at: float
    updated_at: float
    ended_at: float | None

    @property
    def label(self) -> str:
        """``t_12``: how people, logs and branch names call it."""
        return ids.format(self.id)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        return cls(
            id=row["id"],
            title=row["title"],
            body=row["body"],
            status=Status(row["status"]),
            priority=row["priority"],
            parent_id=row["parent_id"],
            depth=row["depth"],
            repo=row["repo"],
            base_ref=row["base_ref"],
            branch=row["branch"],
            worktree=row["worktree"],
            runtime=row["runtime"],
            runtime_options=json.loads(row["runtime_options"]),
            max_attempts=row["max_attempts"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            timeout=row["timeout"],
            summary=row["summary"],
            block_reason=row["block_reason"],
            failure_reason=row["failure_reason"],
            resume=bool(row["resume"]),
            current_run_id=row["current_run_id"],
            batch_id=row["batch_id"],
            batch_key=row["batch_key"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            ended_at=row["ended_at"],
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    id: int
    task_id: int
    attempt: int
    kind: str  # first | retry | resume
    token: str
    dispatcher_id: int | None
    shim_pid: int | None
    shim_started_at: float | None
    pid: int | None  # the agent's
    pid_started_at: float | None
    started_at: float
    heartbeat_at: float | None
    lease_expires_at: float | None
    note: str | None
    reported_at: float | None
    exited_at: float | None
    exit_code: int | None
    signal: int | None
    ended_at: float | None
    outcome: Outcome | None
    settled_by: str | None
    reason: str | None
    summary: str | None
    log_path: str | None
    worktree: str | None
    branch: str | None
    commit_sha: str | None
    refunded: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Run:
        return cls(
            id=row["id"],
            task_id=row["task_id"],
            attempt=row["attempt"],
            kind=row["kind"],
            token=row["token"],
            dispatcher_id=row["dispatcher_id"],
            shim_pid=row["shim_pid"],
            shim_started_at=row["shim_started_at"],
            pid=row["pid"],
            pid_started_at=row["pid_started_at"],
            started_at=row["started_at"],
            heartbeat_at=row["heartbeat_at"],
            lease_expires_at=row["lease_expires_at"],
            note=row["note"],
            reported_at=row["reported_at"],
            exited_at=row["exited_at"],
            exit_code=row["exit_code"],
            signal=row["signal"],
            ended_at=row["ended_at"],
            outcome=None if row["outcome"] is None else Outcome(row["outcome"]),
            settled_by=row["settled_by"],
            reason=row["reason"],
            summary=row["summary"],
            log_path=row["log_path"],
            worktree=row["worktree"],
            branch=row["branch"],
            commit_sha=row["commit_sha"],
            refunded=bool(row["refunded"]),
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Dispatcher:
    """A registered dispatcher (see `board.dispatchers`)."""

    id: int
    pid: int
    pid_started_at: float | None
    host: str
    wake_address: str | None
    started_at: float
    heartbeat_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Dispatcher:
        return cls(
            id=row["id"],
            pid=row["pid"],
            pid_started_at=row["pid_started_at"],
            host=row["host"],
            wake_address=row["wake_address"],
            started_at=row["started_at"],
            heartbeat_at=row["heartbeat_at"],
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Comment:
    author: str
    body: str
    at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Comment:
        return cls(author=row["author"], body=row["body"], at=row["at"])
