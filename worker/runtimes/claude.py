"""The `claude` runtime: Claude Code in print mode, with our MCP server as its MCP config.

The server's entry carries the worker's variables (Claude Code starts MCP servers with the
``env`` of their entry), so the config holds the run's token: it is written to a private
file (mode 0600) in the run's private directory beside its log, never passed on the command
line where any local user could read it in the process list.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from worker import env, usage
from worker.runtimes import base

INSTALL_HINT = "install Claude Code (npm install -g @anthropic-ai/claude-code)"
ALLOWED_TOOLS = ("mcp__kanban", "Bash", "Edit", "Write", "Read", "Glob", "Grep", "LS")


def mcp_config(ctx: base.Context) -> dict:
    variables = {
        env.TASK: ctx.task.label,
        env.RUN_ID: str(ctx.run_id),
        env.TOKEN: ctx.token,
        env.WORKSPACE: ctx.workspace,
        env.DB: ctx.db_path,
    }
    if ctx.branch:
        variables[env.BRANCH] = ctx.branch
    return {
        "mcpServers": {
            "kanban": {
                "command": os.path.abspath(sys.executable),
                "args": ["-P", "-m", "worker.mcp_server"],
                "env": variables,
            }
        }
    }


def write_private(data: dict, directory: str) -> str:
    handle, path = tempfile.mkstemp(prefix="claude-mcp-", suffix=".json", dir=directory)
    with os.fdopen(handle, "w") as out:  # mkstemp creates the file with mode 0600
        json.dump(data, out)
    return path


class ClaudeRuntime:
    name = "claude"
    reports = True
    uses_tool_server = False

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(
            ctx.settings.claude_bin, "KANBAN_CLAUDE_BIN", "claude", hint=INSTALL_HINT
        )
        config_file = write_private(mcp_config(ctx), ctx.private_dir)
        argv = (
            binary,
            "-p",
            ctx.prompt,
            "--mcp-config",
            config_file,
            "--strict-mcp-config",
            "--allowedTools",
            *ALLOWED_TOOLS,
            "--permission-mode",
            "acceptEdits",
            "--output-format",
            "text",
            *ctx.settings.extra_args.get(self.name, ()),
        )
        return base.Launch(argv=argv, env={}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return base.looks_rate_limited(log_tail)

    def meter(self, metered: base.Metered) -> usage.Meter:
        return usage.NoMeter()

    def render(self, line: str) -> str | None:
        return usage.plain(line)
