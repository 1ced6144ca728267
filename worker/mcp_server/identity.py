"""Who is asking: the server's mode and, in worker mode, the run it speaks for.

Read once, from the environment the client started the server with (Codex passes only the
variables its config whitelists, so a missing one is reported, not guessed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from board import actors, errors, ids
from worker import env


class WorkerEnvironmentError(errors.KanbanError):
    """Worker mode without the run's identity: writes cannot be fenced, so none are made."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """The mode and, in worker mode, the run the server speaks for."""

    worker_mode: bool
    task_id: int | None = None  # the worker's own task
    worker: actors.Worker | None = None  # None in orchestrator mode or when misconfigured
    problem: str | None = None  # why a worker-mode server refuses every write

    @property
    def task_label(self) -> str | None:
        return None if self.task_id is None else ids.format(self.task_id)

    def actor(self) -> actors.Actor:
        if not self.worker_mode:
            return actors.OPERATOR
        if self.worker is None:
            raise WorkerEnvironmentError(self.problem or "this worker's identity is unknown")
        return self.worker


def from_env(environ: Mapping[str, str], *, db_given: bool = False) -> Identity:
    raw_task = environ.get(env.TASK, "").strip()
    if not raw_task:
        return Identity(worker_mode=False)
    missing = [name for name in (env.RUN_ID, env.TOKEN) if not environ.get(name, "").strip()]
    if not db_given and not environ.get(env.DB, "").strip():
        missing.append(env.DB)
    try:
        task_id: int | None = ids.parse(raw_task)
    except errors.InvalidInput:
        task_id = None
    problems = []
    if task_id is None:
        problems.append(f"{env.TASK}={raw_task!r} is not a task id (task ids look like t_12)")
    if missing:
        problems.append(f"{', '.join(missing)} did not reach this MCP server")
    run_raw = environ.get(env.RUN_ID, "").strip()
    if run_raw and not run_raw.isdigit():
        problems.append(f"{env.RUN_ID}={run_raw!r} is not a run number")
    if problems:
        label = ids.format(task_id) if task_id is not None else raw_task
        problem = (
            f"this kanban MCP server runs for task {label} but {'; '.join(problems)}. "
            "An MCP client must pass this stdio server the run's variables "
            f"({', '.join(env.ALL)}); Codex passes only those its config whitelists "
            "(`env_vars`). kanban's own workers reach the board's HTTP tool server instead. "
            "Until then no kanban tool can record anything for this task; reading the board "
            "still works. Tell the user the kanban MCP configuration is incomplete."
        )
        return Identity(worker_mode=True, task_id=task_id, problem=problem)
    worker = actors.Worker(task_id, int(run_raw), environ[env.TOKEN].strip())  # type: ignore[arg-type]
    return Identity(worker_mode=True, task_id=task_id, worker=worker)
