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
    budget: Budget  # what its runs may use in all
    created_by_run: int | None  # the run whose worker created it

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
            budget=Budget(tokens=row["budget_tokens"], usd=row["budget_usd"]),
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
    usage: Usage  # what its agent reported using (tokens, cost, model)
    cost_source: str | None  # "agent" (reported), "prices" (the price table), None: unknown
    host: str | None  # where it ran (`dispatchers.host`); None: before hosts were recorded

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Run:
        check = row["check_result"]
        return _build(
            cls,
            row,
            usage=Usage.from_row(row),
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


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """Tokens as the agent reported them; `cost_usd` only when the agent reported a cost.

    ``input_tokens`` includes ``cached_input_tokens`` (OpenAI's convention; Anthropic's
    cache reads and writes are added to its input to match).
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0  # included in output_tokens where the agent reports both
    cost_usd: float | None = None
    model: str | None = None

    @property
    def tokens(self) -> int:
        """What budgets in tokens count: every input token and every output token."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None and other.cost_usd is None
            else (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        )
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=cost,
            model=other.model or self.model,
        )

    @property
    def empty(self) -> bool:
        return self.tokens == 0 and self.cost_usd is None

    def brief(self) -> str:
        """``12.3k tokens, $0.04``: for one line of output."""
        text = f"{_compact(self.tokens)} tokens"
        return text if self.cost_usd is None else f"{text}, ${self.cost_usd:,.2f}"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Usage:
        return _build(cls, row, reasoning_tokens=row["reasoning_tokens"])


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """At most this many tokens and/or dollars (None: no bound on that one)."""

    tokens: int | None = None
    usd: float | None = None

    @property
    def unbounded(self) -> bool:
        return self.tokens is None and self.usd is None

    def exceeded(self, used: Usage) -> str | None:
        """``used X of Y`` when `used` reached this budget; None while within it."""
        if self.tokens is not None and used.tokens >= self.tokens:
            return f"used {used.tokens:,} of {self.tokens:,} tokens"
        if self.usd is not None and used.cost_usd is not None and used.cost_usd >= self.usd:
            return f"used ${used.cost_usd:,.2f} of ${self.usd:,.2f}"
        return None

    def describe(self) -> str:
        parts = [f"{self.tokens:,} tokens" if self.tokens is not None else None]
        parts.append(f"${self.usd:,.2f}" if self.usd is not None else None)
        return " and ".join(p for p in parts if p) or "none"


def _compact(number: int) -> str:
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if number >= size:
            return f"{number / size:.1f}{unit}"
    return str(number)
