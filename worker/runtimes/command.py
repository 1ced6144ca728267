"""The `command` runtime: any argv, no agent. For batch jobs, scripts and tests.

The argv comes from the task (``kanban create --command "make check"``), split like a shell
would split it but never run through one. Exit 0 without a report means done (the tail of
the output becomes the summary); a non-zero exit is a failed attempt. The rendered prompt is
in the file named by ``$KANBAN_PROMPT_FILE``, so a script can wrap an agent of its own.
"""

from __future__ import annotations

from worker.runtimes import base

PROMPT_FILE = "KANBAN_PROMPT_FILE"


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
