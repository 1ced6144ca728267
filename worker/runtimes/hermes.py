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

**Usage and activity come from Codex's rollout, not from Hermes.** The meter (`HermesMeter`)
finds the rollout files of the threads Codex's app-server started in the run's worktree since
the run began (``session_meta.cwd`` and ``timestamp``; Hermes names no thread) and reads their
``token_count`` totals and actions as they are appended (`codex_rollout`): exact, and live
after every model response. Hermes' own records are neither: for this runtime it stores, once
a turn has ended, only the usage of the turn's *last* model request (``token_usage_last`` in
agent/codex_runtime.py ``_record_codex_app_server_usage``; a turn of three responses,
2,750 in / 59 out, is kept in its state.db as 300 / 7).

**The log stays ``-Q``'s** (the final message, then ``session_id: ...``; errors such as
``Error: turn ended status=failed: ... 429 Too Many Requests`` with Codex's stderr): ``hermes
chat`` has no event output. Without ``-Q`` it prints a decorated transcript for a terminal
(box drawing, the whole prompt echoed as ``Query:``, tool previews that missed a failed
command when measured), and ``-v`` adds Hermes' debug logging; neither is a log to read. So
the activity shown for a Hermes run is the rollout's last action, and `render` shows the
log's lines as they are, without terminal escapes.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from worker import usage
from worker.runtimes import base, codex_events, codex_rollout
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
        return HermesMeter(metered)

    def render(self, line: str) -> str | None:
        text = codex_events.plain_text(line)
        return text if text.strip() else None


class HermesMeter:
    """A Hermes run's usage and activity, from the rollouts of the Codex threads it started.

    Summed over threads: Hermes starts a new one (``thread/start``) whenever it replaces a
    Codex app-server that failed. The activity is the rollout's last action; Hermes' report
    of a failed turn (``Error: ...``, printed as the run ends) overrides it, and the log's
    last line stands in until a rollout appears.
    """

    def __init__(self, metered: base.Metered) -> None:
        sessions = codex_rollout.sessions_dir(metered.settings.codex_home)
        self._threads = (
            None
            if metered.workspace is None
            else codex_rollout.WorkspaceThreads(sessions, metered.workspace, metered.started_at)
        )
        self._rollouts: list[codex_rollout.Rollout] = []
        self._last_line: str | None = None
        self._error: str | None = None

    def feed(self, line: str) -> None:
        text = codex_events.plain_text(line).strip()[: codex_events.LIMIT]
        if text:
            self._last_line = text
        if text.startswith("Error:"):
            self._error = text

    def usage(self) -> usage.Usage:
        self._refresh()
        total = usage.Usage()
        for rollout in self._rollouts:
            total += rollout.usage()
        return total

    def activity(self) -> str | None:
        self._refresh()
        latest = max(self._rollouts, key=lambda r: r.activity_at, default=None)
        if self._error is not None:
            return self._error
        if latest is not None and latest.activity is not None:
            return latest.activity
        return self._last_line

    def _refresh(self) -> None:
        """Take in new threads of the run and what their rollouts gained."""
        if self._threads is not None:
            self._rollouts += [codex_rollout.Rollout(p) for p in self._threads.new(time.time())]
        for rollout in self._rollouts:
            rollout.read()
