"""A repository's check: what "the work is right" means there, run in a task's worktree.

The check is ``[check] command`` of the repository's ``.kanban.toml`` (or a batch task's own
``check``). With ``gate = true`` the dispatcher runs it after a run completes, before the task
may be ``done`` (`Supervisor._finish`); ``kanban check TASK`` runs it by hand. It runs like a
setup command (`preparing.run_command`): in a session of its own, in the run's scope where
there is one, with a timeout, its output appended to a log, and whatever it leaves running
killed when it ends.

Blocking: call it from a thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from board import records
from orchestrator import git, preparing, workspace

OUTPUT_BYTES = 4000  # of the check's output, kept on the run and quoted in the next prompt


class CheckFailed(preparing.CommandFailed):
    what = "check"
    label = "check failed"
    timeout_key = "timeout"


def run(
    check: workspace.Check,
    *,
    worktree: Path | str,
    environ: Mapping[str, str],
    log_path: Path | str,
    scope_path: str | None = None,
) -> records.CheckResult:
    """Run `check` in `worktree`; its output goes to the end of `log_path`. Never raises for
    the check's own failure: that is the result."""
    log_path = str(log_path)
    start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    began = time.monotonic()
    code: int | None = 0
    passed, detail = True, "passed"
    try:
        preparing.run_command(
            check.command,
            cwd=str(worktree),
            environ=environ,
            log_path=log_path,
            timeout=check.timeout,
            scope_path=scope_path,
            failure=CheckFailed,
        )
    except CheckFailed as exc:
        passed, code, detail = False, exc.code, exc.detail
    return records.CheckResult(
        command=preparing.shown(check.command),
        passed=passed,
        exit_code=code,
        seconds=round(time.monotonic() - began, 3),
        output=output_since(log_path, start),
        detail=detail,
    )


def output_since(log_path: str, start: int, limit: int = OUTPUT_BYTES) -> str:
    """The last `limit` bytes written to the log after `start`, minus kanban's header line."""
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            end = log.tell()
            log.seek(max(start, end - limit))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    if text.startswith("kanban: check: "):
        text = text.partition("\n")[2]
    return text.strip("\n")


def gated(config: workspace.RepoConfig) -> workspace.Check | None:
    """The check that decides whether a task is done, if the repository gates on one."""
    return config.check if config.check is not None and config.check.gate else None


def config_for(
    repo: str, base_ref: str | None, stored: Mapping[str, object]
) -> workspace.RepoConfig:
    """What a task's workspace is: its base's ``.kanban.toml`` with the task's own overrides."""
    ref = base_ref or git.resolve_base(repo, None)
    return workspace.with_overrides(workspace.from_ref(repo, ref), stored)
