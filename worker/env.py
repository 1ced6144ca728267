"""Names of the environment variables that identify a worker's run.

The board path is deliberately *not* ``HERMES_KANBAN_DB``: Hermes makes that file's directory
writable inside the Codex sandbox, and the sandboxed shell must never be able to write the
board. Only our MCP server, which runs outside the sandbox, writes it.
"""

from __future__ import annotations

TASK = "HERMES_KANBAN_TASK"
RUN_ID = "HERMES_KANBAN_RUN_ID"
TOKEN = "HERMES_KANBAN_TOKEN"
WORKSPACE = "HERMES_KANBAN_WORKSPACE"
BRANCH = "HERMES_KANBAN_BRANCH"
DB = "KANBAN_DB"
# Why the previous attempt ended (empty on a first attempt), for scripts that want it.
LAST_OUTCOME = "KANBAN_LAST_OUTCOME"

# A run's block of ports (a repository's `ports`): the first, and all of them.
PORT = "KANBAN_PORT"
PORTS = "KANBAN_PORTS"


def on_postgres(db_path: str) -> bool:
    """Is the board a PostgreSQL URL (which may hold a password: keep it from the model)?"""
    return db_path.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in db_path


# Every variable a worker's MCP server needs; Codex must whitelist exactly these.
ALL = (TASK, RUN_ID, TOKEN, WORKSPACE, BRANCH, DB)


def build(
    inherited: dict[str, str],
    *,
    task: str,
    run_id: int,
    token: str,
    workspace: str,
    branch: str | None,
    db_path: str,
    last_outcome: str | None = None,
) -> dict[str, str]:
    """The environment of a worker: the dispatcher's own, cleaned, plus the run's identity.

    Inherited ``GIT_*`` variables are dropped (a dispatcher started from a git hook must not
    send its workers' git commands to another repository), and so is any kanban identity the
    dispatcher itself happened to inherit.
    """
    environ = clean(inherited)
    environ.update(
        {
            TASK: task,
            RUN_ID: str(run_id),
            TOKEN: token,
            WORKSPACE: workspace,
            DB: db_path,
        }
    )
    if branch:
        environ[BRANCH] = branch
    if last_outcome:
        environ[LAST_OUTCOME] = last_outcome
    return environ


def clean(inherited: dict[str, str]) -> dict[str, str]:
    """`inherited` without git's variables and without any run's identity, board or ports.

    What a process kanban starts for a task (an agent, a setup, a check) begins from: a
    dispatcher started from a git hook, or inside another task's run, passes none of it on.
    """
    return {
        name: value
        for name, value in inherited.items()
        if not name.startswith(("GIT_", "HERMES_KANBAN_"))
        and name not in (DB, LAST_OUTCOME, PORT, PORTS)
    }


def for_check(
    inherited: dict[str, str], *, task: str, workspace: str, branch: str | None
) -> dict[str, str]:
    """The environment of a task's check: which task and where, but no run's identity.

    The check runs after the run ended (or by hand), so it carries no token: it cannot act on
    the board as the task's worker.
    """
    environ = clean(inherited)
    environ.update({TASK: task, WORKSPACE: workspace})
    if branch:
        environ[BRANCH] = branch
    return environ
