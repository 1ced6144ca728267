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
        binary = base.find_binary(ctx.settings.hermes_bin, "KANBAN_HERMES_BIN", "hermes",
                                  INSTALL_HINT)
        codex_bin = base.find_binary(ctx.settings.codex_bin, "KANBAN_CODEX_BIN", "codex",
                                     codex_runtime.INSTALL_HINT)
        codex_home = codex_runtime.codex_home_ready(ctx.settings.codex_home)
        status = hermes_setup.status(ctx.settings.hermes_home)
        if not status.state == hermes_setup.codex.State.CURRENT:
            raise base.RuntimeUnavailable(
                f"the Hermes home for kanban workers is not ready ({status.detail}); "
                f"{status.fix or 'run `kanban setup hermes`'}"
            )
        # Hermes makes this directory a writable root of Codex's sandbox; bwrap fails every
        # sandboxed command if it is missing.
        (status.home / "kanban").mkdir(parents=True, exist_ok=True)
        environ = hermes_setup.runtime_env(status.home, codex_home=codex_home,
                                           codex_bin=codex_bin)
        argv = (binary, "chat", "-Q", *ctx.settings.extra_args.get(self.name, ()),
                "-q", ctx.prompt)
        return base.Launch(argv=argv, env=environ, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return base.looks_rate_limited(log_tail)
