"""The board's records: frozen, typed values built in one place from a row.

Consumers read ``task.repo`` and ``run.exit_code``, and mypy checks every field; only
`from_row` knows how a column is stored (JSON text, 0/1 for booleans). The JSON views for the
CLI and MCP (`views`) stay dicts: they are data for people and models, not for code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from board import ids
from board.states import Outcome, Status

T = TypeVar("T")


def _build(cls: type[T], row: Mapping[str, Any], **converted: Any) -> T:
    """`cls` from a row: each field from its column, except those `converted` by the caller.

    A record names only the columns stored differently from its fields (JSON text, 0/1 for
    booleans, enums); a field without its column fails here, loudly.
    """
    fields = (f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return cls(**{name: row[name] for name in fields if name not in converted}, **converted)


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
    # A batch file's overrides of its repository's workspace: {"setup": [...], "check": ...}.
    workspace: Mapping[str, Any]
    base_branch: str | None  # the branch it lands into (`kanban land`)
    conflicts: tuple[str, ...]  # files left with conflict markers by a merge kanban made
    landed_sha: str | None
    landed_at: float | None
    landed_from: str | None  # its branch's tip when it landed
    pr_url: str | None
    catch_up: str | None  # a commit of its base branch to merge at its next start

    @property
    def label(self) -> str:
        """``t_12``: how people, logs and branch names call it."""
        return ids.format(self.id)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        return _build(
            cls,
            row,
            status=Status(row["status"]),
            runtime_options=json.loads(row["runtime_options"]),
            resume=bool(row["resume"]),
            workspace=json.loads(row["workspace"]),
            conflicts=tuple(json.loads(row["conflicts"])),
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    id: int
    task_id: int
    attempt: int
    kind: str  # first | retry | resume
    token_hash: str  # the token's SHA-256: the token itself is never stored
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
    ports: tuple[int, ...]  # the block of ports it held (its repository's ``ports``)
    check_result: CheckResult | None  # the repository's check, run after it completed

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Run:
        check = row["check_result"]
        return _build(
            cls,
            row,
            outcome=None if row["outcome"] is None else Outcome(row["outcome"]),
            refunded=bool(row["refunded"]),
            ports=tuple(json.loads(row["ports"])),
            check_result=None if check is None else CheckResult(**json.loads(check)),
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    """What a repository's check said about a run's work (stored on the run as JSON)."""

    command: str
    passed: bool
    exit_code: int | None  # None: it outlived its timeout, or could not start
    seconds: float
    output: str  # its output's last lines
    detail: str  # "passed", "exited 1", "ran longer than its timeout of 600 s", ...

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


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
        return _build(cls, row)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Comment:
    author: str
    body: str
    at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Comment:
        return cls(author=row["author"], body=row["body"], at=row["at"])
