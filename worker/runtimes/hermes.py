"""The `hermes` runtime (the default): ``hermes chat -Q -q PROMPT`` on Codex's app-server.

Hermes runs with the dedicated home of ``kanban setup hermes`` (its ``config.yaml`` selects
the Codex app-server runtime), so a user's own Hermes settings, sessions and board are never
touched. Hermes forwards only the working directory and the prompt to ``codex app-server``:
the model, its provider and our MCP server all come from ``$CODEX_HOME/config.toml``, and
Hermes' own system prompt does not reach the model, which is why everything the worker must
know is in the prompt. Hermes exits 0 even after a failed turn: completion is judged by the
board.

Hermes lets its caller add nothing to the ``codex app-server`` command line it builds, and
finds ``codex`` on PATH. So each run gets a ``codex`` of its own first on PATH (`wrapper`,
in the run's private directory): the real program, with the ``-c`` overrides that give it
the board's tool server (the run's token as the bearer) and keep the model's shell away from
the token and the board, as the `codex` runtime passes them itself.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from worker import usage
from worker.runtimes import base
from worker.runtimes import codex as codex_runtime
from worker.setup import hermes as hermes_setup

INSTALL_HINT = "install Hermes Agent (pip install hermes-agent), then run `kanban setup hermes`"


def wrapper(directory: str, codex_bin: str, overrides: tuple[str, ...]) -> str:
    """Write ``DIRECTORY/bin/codex``: the real Codex with `overrides` after Hermes' own
    arguments; returns the directory to put first on PATH."""
    bin_dir = Path(directory) / "bin"
    bin_dir.mkdir(mode=0o700, exist_ok=True)
    script = (
        "#!/bin/sh\n"
        "# kanban: the Codex that Hermes starts for this run, given the board's tool server.\n"
        f'exec {shlex.quote(codex_bin)} "$@" {shlex.join(overrides)}\n'
    )
    path = bin_dir / "codex"
    temporary = path.with_name(".codex.tmp")
    temporary.write_text(script)
    temporary.chmod(0o700)
    os.replace(temporary, path)
    return str(bin_dir)


class HermesRuntime:
    name = "hermes"
    reports = True
    uses_tool_server = True

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(
            ctx.settings.hermes_bin, "KANBAN_HERMES_BIN", "hermes", hint=INSTALL_HINT
        )
        codex_bin = base.find_binary(
            ctx.settings.codex_bin, "KANBAN_CODEX_BIN", "codex", hint=codex_runtime.INSTALL_HINT
        )
        codex_home = codex_runtime.codex_home_ready(ctx.settings.codex_home)
        overrides = (
            *codex_runtime.protect_board(ctx.db_path),
            *codex_runtime.tool_server_overrides(ctx.tool_url),
        )
        status = hermes_setup.status(ctx.settings.hermes_home)
        if not status.state == hermes_setup.codex.State.CURRENT:
            raise base.RuntimeUnavailable(
                f"the Hermes home for kanban workers is not ready ({status.detail}); "
                f"{status.fix or 'run `kanban setup hermes`'}"
            )
        environ = hermes_setup.runtime_env(status.home, codex_home=codex_home, codex_bin=codex_bin)
        program, program_env = codex_runtime.native(codex_bin)
        environ.update(program_env)
        own_bin = wrapper(ctx.private_dir, program, overrides)
        environ["PATH"] = os.pathsep.join(
            (own_bin, environ.get("PATH", os.environ.get("PATH", "")))
        )
        # Hermes adds one writable root to Codex's sandbox (with HERMES_KANBAN_TASK set):
        # naming the worktree itself exposes nothing beyond what the sandbox already allows.
        environ["HERMES_KANBAN_ROOT"] = ctx.workspace
        argv = (binary, "chat", "-Q", *ctx.settings.extra_args.get(self.name, ()), "-q", ctx.prompt)
        return base.Launch(argv=argv, env=environ, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return base.looks_rate_limited(log_tail)

    def meter(self, metered: base.Metered) -> usage.Meter:
        return usage.NoMeter()

    def render(self, line: str) -> str | None:
        return usage.plain(line)
