"""The `codex` runtime: ``codex exec`` directly, sandboxed to the worktree.

The shell commands the model runs are confined by Codex's ``workspace-write`` sandbox to the
worktree; the kanban tools come from our MCP server, registered in ``$CODEX_HOME/config.toml``
by ``kanban setup codex`` (with the worker variables whitelisted: Codex gives MCP servers a
scrubbed environment). stdin is /dev/null (``codex exec`` would wait for it to close).
"""

from __future__ import annotations

from worker.runtimes import base
from worker.setup import codex as codex_setup

INSTALL_HINT = "install the Codex CLI (npm install -g @openai/codex)"


def codex_home_ready(codex_home: str | None) -> str:
    """CODEX_HOME, after checking that our MCP server is registered there."""
    status = codex_setup.status(codex_home)
    if status.state in (codex_setup.State.MISSING, codex_setup.State.BROKEN):
        raise base.RuntimeUnavailable(
            f"the kanban MCP server is not registered for Codex ({status.path}: {status.detail});"
            f" {status.fix}"
        )
    return str(codex_setup.codex_home(codex_home))


class CodexRuntime:
    name = "codex"
    reports = True

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(ctx.settings.codex_bin, "KANBAN_CODEX_BIN", "codex",
                                  INSTALL_HINT)
        home = codex_home_ready(ctx.settings.codex_home)
        argv = (
            binary, "exec",
            "--sandbox", "workspace-write",
            "--skip-git-repo-check",  # scratch directories are not repositories
            "--cd", ctx.workspace,
            *ctx.settings.extra_args.get(self.name, ()),
            ctx.prompt,
        )
        return base.Launch(argv=argv, env={"CODEX_HOME": home}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return base.looks_rate_limited(log_tail)
