"""The `hermes` runtime (the default): ``hermes chat -Q -q PROMPT`` on Codex's app-server.

Hermes runs with the dedicated home of ``kanban setup hermes`` (its ``config.yaml`` selects
the Codex app-server runtime), so a user's own Hermes settings, sessions and board are never
touched. Hermes forwards only the working directory and the prompt to ``codex app-server``:
the model, its provider and our MCP server all come from ``$CODEX_HOME/config.toml``, and
Hermes' own system prompt does not reach the model, which is why everything the worker must
know is in the prompt. Hermes exits 0 even after a failed turn: completion is judged by the
board.
"""

from __future__ import annotations

from worker.runtimes import base
from worker.runtimes import codex as codex_runtime
from worker.setup import hermes as hermes_setup

INSTALL_HINT = "install Hermes Agent (pip install hermes-agent), then run `kanban setup hermes`"


class HermesRuntime:
    name = "hermes"
    reports = True

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(
            ctx.settings.hermes_bin, "KANBAN_HERMES_BIN", "hermes", hint=INSTALL_HINT
        )
        codex_bin = base.find_binary(
            ctx.settings.codex_bin, "KANBAN_CODEX_BIN", "codex", hint=codex_runtime.INSTALL_HINT
        )
        codex_home = codex_runtime.codex_home_ready(ctx.settings.codex_home)
        if codex_runtime.in_temporary_dir(ctx.db_path) and not (
            codex_runtime.temporary_dirs_excluded(codex_home)
        ):
            # Hermes starts Codex itself, so the exclusions cannot be passed on its command line.
            raise base.RuntimeUnavailable(
                f"the board {ctx.db_path} is in a temporary directory, which Codex's sandbox lets "
                "the agent's shell write; move the board out of it (--db / KANBAN_DB), or set "
                "exclude_slash_tmp = true and exclude_tmpdir_env_var = true under "
                f"[sandbox_workspace_write] in {codex_home}/config.toml"
            )
        status = hermes_setup.status(ctx.settings.hermes_home)
        if not status.state == hermes_setup.codex.State.CURRENT:
            raise base.RuntimeUnavailable(
                f"the Hermes home for kanban workers is not ready ({status.detail}); "
                f"{status.fix or 'run `kanban setup hermes`'}"
            )
        environ = hermes_setup.runtime_env(status.home, codex_home=codex_home, codex_bin=codex_bin)
        # Hermes adds one writable root to Codex's sandbox (with HERMES_KANBAN_TASK set):
        # naming the worktree itself exposes nothing beyond what the sandbox already allows.
        environ["HERMES_KANBAN_ROOT"] = ctx.workspace
        argv = (binary, "chat", "-Q", *ctx.settings.extra_args.get(self.name, ()), "-q", ctx.prompt)
        return base.Launch(argv=argv, env=environ, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return base.looks_rate_limited(log_tail)
