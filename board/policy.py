"""What a task may create: the one policy for every interface (CLI, MCP, batches).

Two rules, checked by `tasks.insert` inside the creating transaction, so the CLI inside a
worker, the MCP server and a batch all get the same answer:

- **No more privilege than the creator.** A worker never creates work that runs with more
  privilege than its own task: runtimes are ranked by what their process can reach (`LEVELS`),
  and a subtask's runtime may not rank above the worker's own. Runtime options choose what a
  task runs (a command's argv), so only a worker that already runs any program (`command`) may
  set them; the others' subtasks inherit their own task's options or have none.
- **Nothing the parent cannot integrate.** A subtask's branch is merged into its parent's when
  the parent resumes, so a subtask works in its parent's repository (for every actor: a branch
  of another repository cannot be merged), and a worker's subtask starts from its parent's
  branch (the dispatcher branches it from there), so a worker cannot choose another base.

Batches are for people, cron and schedules: a worker splits its task with subtasks instead.
Operators are otherwise trusted with the whole board.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from board import actors, errors, ids

if TYPE_CHECKING:
    from board.connection import Tx


class Privilege(enum.IntEnum):
    """What a runtime's process can reach, lowest first."""

    SANDBOXED = 1  # an agent whose shell runs in Codex's workspace-write sandbox
    AGENT = 2  # an agent whose shell is not sandboxed
    ANY_PROGRAM = 3  # any argv, outside any sandbox


# Every runtime in `worker.runtimes` has a level here (a test checks it); a name the board does
# not know is treated as the most privileged, so no worker but a `command` one can use it.
LEVELS: dict[str, Privilege] = {
    "hermes": Privilege.SANDBOXED,
    "codex": Privilege.SANDBOXED,
    "claude": Privilege.AGENT,
    "command": Privilege.ANY_PROGRAM,
}
_WHAT = {
    Privilege.SANDBOXED: "an agent whose shell is sandboxed",
    Privilege.AGENT: "an agent whose shell is not sandboxed",
    Privilege.ANY_PROGRAM: "any program, outside any sandbox",
}


def level(runtime: str) -> Privilege:
    return LEVELS.get(runtime, Privilege.ANY_PROGRAM)


def allowed_runtimes(runtime: str) -> list[str]:
    """The runtimes a worker of `runtime` may give its subtasks."""
    return [name for name, rank in LEVELS.items() if rank <= level(runtime)]


def check_new_task(
    tx: Tx,
    actor: actors.Actor,
    *,
    parent: Mapping[str, Any] | None,
    repo: str | None,
    base_ref: str | None,
    runtime: str,
    options: Mapping[str, Any],
    workspace: Mapping[str, Any] | None = None,
) -> None:
    """Raise a `errors.PolicyError` if `actor` may not create this task.

    `repo` and `base_ref` are what the creator asked for (None: not given); `runtime` and
    `options` what the task will run with, after inheriting from its parent; `workspace` its
    overrides of the repository's setup and check.
    """
    if parent is not None:
        _check_integrable(actor, parent, repo, base_ref=base_ref)
    if isinstance(actor, actors.Worker):
        _check_privilege(tx, actor, runtime, options=options)
        if workspace:
            # Setup and check commands run outside the agent's sandbox, as the operator.
            raise errors.NotForWorkers(
                "overriding a repository's setup or check",
                ids.format(actor.task_id),
                "subtasks get their repository's .kanban.toml; ask a person (kanban block) "
                "if it must change",
            )


def check_schedule(actor: actors.Actor) -> None:
    """Only operators add or remove schedules: a schedule submits batches, unattended."""
    if isinstance(actor, actors.Worker):
        raise errors.NotForWorkers(
            "adding or removing a schedule",
            ids.format(actor.task_id),
            "create subtasks of your task instead (kanban create, or the kanban_create tool); "
            "ask a person (kanban block) if recurring work is needed",
        )


def check_batch(actor: actors.Actor) -> None:
    """Only operators and schedules submit batches."""
    if isinstance(actor, actors.Worker):
        raise errors.NotForWorkers(
            "submitting a batch",
            ids.format(actor.task_id),
            "create subtasks of your task instead (kanban create, or the kanban_create tool), "
            "then complete it: it waits for them and resumes with their results",
        )


def _check_privilege(
    tx: Tx, worker: actors.Worker, runtime: str, *, options: Mapping[str, Any]
) -> None:
    own = tx.one("SELECT runtime, runtime_options FROM tasks WHERE id = ?", (worker.task_id,))
    if own is None:  # pragma: no cover - fencing already found the worker's task
        raise errors.TaskNotFound(ids.format(worker.task_id))
    mine = own["runtime"]
    if level(runtime) > level(mine):
        raise errors.MorePrivilege(
            ids.format(worker.task_id),
            own_runtime=mine,
            own_what=_WHAT[level(mine)],
            runtime=runtime,
            what=_WHAT[level(runtime)],
            allowed=allowed_runtimes(mine),
        )
    if level(mine) < Privilege.ANY_PROGRAM and dict(options):
        inherited = runtime == mine and dict(options) == json.loads(own["runtime_options"])
        if not inherited:
            raise errors.RuntimeOptionsRefused(ids.format(worker.task_id), mine)


def _check_integrable(
    actor: actors.Actor, parent: Mapping[str, Any], repo: str | None, *, base_ref: str | None
) -> None:
    label = ids.format(parent["id"])
    if repo is not None and repo != parent["repo"]:
        where = parent["repo"] or f"none: {label} runs in a scratch directory"
        raise errors.NotIntegrable(
            label,
            "repo",
            f"a subtask works in its parent's repository ({where}), because its branch is "
            f"merged into {label}'s when {label} resumes, and a branch of {repo} cannot be. "
            f"Leave the repository out; work in {repo} needs a separate task without a "
            "parent, which only an operator can create (a worker blocks its task and says "
            "what is needed)",
        )
    if base_ref is not None and isinstance(actor, actors.Worker):
        raise errors.NotIntegrable(
            label,
            "base",
            f"a worker's subtask starts from its parent's branch "
            f"({parent['branch'] or 'made when ' + label + ' starts'}), so that {label} can "
            f"merge it; it cannot start from {base_ref}. Leave the base out; if the subtask "
            f"needs other work, merge it into {label}'s branch first",
        )
