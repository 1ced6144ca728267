"""The `command` runtime: any argv, no agent. For batch jobs, scripts and tests.

The argv comes from the task (``kanban create --command "make check"``), split like a shell
would split it but never run through one. Exit 0 without a report means done (the tail of
the output becomes the summary); a non-zero exit is a failed attempt.
"""

from __future__ import annotations

from worker.runtimes import base


class CommandRuntime:
    name = "command"
    reports = False

    def launch(self, ctx: base.Context) -> base.Launch:
        import json

        options = ctx.task["runtime_options"]
        if isinstance(options, str):
            options = json.loads(options)
        argv = options.get("argv")
        if not argv or not all(isinstance(a, str) for a in argv):
            raise base.RuntimeUnavailable(
                "a `command` task needs a command: create it with --command \"PROGRAM ARGS\""
            )
        return base.Launch(argv=tuple(argv), env={}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return False
