"""What a runtime is: how a claimed task becomes one command line, and what its exit means.

A runtime only *describes* the process (argv, environment, working directory); the dispatcher
starts and supervises it under the shim. Completion is judged by the board, not by the exit
status, for every runtime whose `reports` is True (agents: Hermes exits 0 after a failed turn).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from typing import Protocol

from board import errors, records
from worker import usage


class RuntimeUnavailable(errors.KanbanError):
    """The runtime cannot start at all (missing binary, bad options): fail fast, no retry."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where a runtime finds its programs and homes; from the dispatcher's configuration."""

    hermes_bin: str | None = None
    codex_bin: str | None = None
    claude_bin: str | None = None
    hermes_home: str | None = None  # the dedicated Hermes home of `kanban setup hermes`
    codex_home: str | None = None
    extra_args: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Context:
    task: records.Task
    run_id: int
    token: str
    attempt: int
    kind: str  # first | retry | resume
    workspace: str
    branch: str | None
    db_path: str
    prompt: str
    settings: Settings
    private_dir: str  # for the run's private files (mode 0700; not in the worktree)
    tool_url: str | None = None  # the board's MCP tool server (runtimes that use it)


@dataclasses.dataclass(frozen=True)
class Metered:
    """What a meter needs to find a run's usage: where it ran, since when, with what homes."""

    workspace: str | None
    started_at: float
    settings: Settings


@dataclasses.dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    env: Mapping[str, str]  # added to the worker's base environment
    cwd: str


class Runtime(Protocol):
    name: str
    reports: bool  # True: a run that ends without kanban_complete/kanban_block is unreported
    uses_tool_server: bool  # True: its agent reaches the kanban tools by the board's URL

    def launch(self, ctx: Context) -> Launch: ...

    def rate_limited(self, log_tail: str) -> bool: ...

    def meter(self, metered: Metered) -> usage.Meter:
        """Reads this run's usage and activity from its log (`worker.usage`)."""
        ...

    def render(self, line: str) -> str | None:
        """One raw line of a run's log as a person reads it (None: nothing worth showing)."""
        ...


def find_binary(explicit: str | None, env_var: str, name: str, *, hint: str) -> str:
    """An executable's absolute path: explicit setting, then `$env_var`, then PATH."""
    candidate = explicit or os.environ.get(env_var) or name
    found = shutil.which(candidate)
    if found is None:
        raise RuntimeUnavailable(
            f"{name} was not found (looked for {candidate!r}); {hint}, or set {env_var} to its path"
        )
    return os.path.abspath(found)


RATE_LIMIT_MARKERS = (
    "rate limit",
    "rate_limit",
    "429 too many requests",
    "status 429",
    "too many requests",
)


def looks_rate_limited(log_tail: str) -> bool:
    tail = log_tail.lower()
    return any(marker in tail for marker in RATE_LIMIT_MARKERS)
