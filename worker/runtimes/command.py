"""The `command` runtime: any argv, no agent. For batch jobs, scripts and tests.

The argv comes from the task (``kanban create --command "make check"``), split like a shell
would split it but never run through one. Exit 0 without a report means done (the tail of
the output becomes the summary); a non-zero exit is a failed attempt. The rendered prompt is
in the file named by ``$KANBAN_PROMPT_FILE``, so a script can wrap an agent of its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from board import errors
from worker import usage
from worker.runtimes import base

PROMPT_FILE = "KANBAN_PROMPT_FILE"


class CommandRuntime:
    name = "command"
    reports = False
    uses_tool_server = False

    def launch(self, ctx: base.Context) -> base.Launch:
        argv = ctx.task.runtime_options.get("argv")
        if not argv or not all(isinstance(a, str) for a in argv):
            raise base.RuntimeUnavailable(
                'a `command` task needs a command: create it with --command "PROGRAM ARGS"'
            )
        # The prompt an agent would get (task, comments, previous attempt, subtasks' results),
        # for wrapper scripts that drive an agent of their own.
        prompt_file = f"{ctx.private_dir}/prompt-run-{ctx.run_id}.md"
        with open(prompt_file, "w", encoding="utf-8") as out:
            out.write(ctx.prompt)
        return base.Launch(argv=tuple(argv), env={PROMPT_FILE: prompt_file}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return False

    def meter(self, metered: base.Metered) -> usage.Meter:
        return usage.NoMeter()

    def render(self, line: str) -> str | None:
        return usage.plain(line)


class CommandError(errors.InvalidInput):
    """A `command` task described wrongly; `field` is what to fix: "command" or "runtime"."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def task_runtime(
    runtime: str | None, command: str | Sequence[str] | None, *, option: str
) -> tuple[str | None, dict[str, list[str]] | None]:
    """The runtime and runtime options of a new task, from the runtime and command it was given.

    The one reading of a `command` task for every interface (``kanban create``, the MCP tool
    ``kanban_create``, batch files). A command, a string split like a shell would split it
    (never run through one) or a list of arguments, makes it a `command` task, and the
    `command` runtime needs one. `option` is how the interface spells the command
    (``--command``, ```command```), for the messages. Options are None unless a command was
    given: the board then applies its defaults (a subtask inherits its parent's).
    """
    if command is None:
        if runtime == CommandRuntime.name:
            raise CommandError(
                "runtime", f"the `command` runtime needs {option}: the program and its arguments"
            )
        return runtime, None
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise CommandError("command", f"cannot split {option}: {exc}") from exc
    elif isinstance(command, list | tuple) and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        raise CommandError("command", f"{option} must be a string or a list of strings")
    if not argv:
        raise CommandError("command", f"{option} is empty: give the program and its arguments")
    if runtime not in (None, CommandRuntime.name):
        raise CommandError("runtime", f"{option} goes with the `command` runtime only")
    return CommandRuntime.name, {"argv": argv}
