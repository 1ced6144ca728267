"""The `codex` runtime: ``codex exec`` directly, sandboxed to the worktree.

The shell commands the model runs are confined by Codex's ``workspace-write`` sandbox to the
worktree. The kanban tools come from the board's long-lived MCP server over HTTP, given to
this one run by ``-c`` overrides (`tool_server_overrides`): its URL, and the run's token as
the bearer, read by Codex from ``$HERMES_KANBAN_TOKEN``, which the model's shell never sees.
Nothing of kanban's is needed in the user's ``config.toml`` (so removing kanban cannot break
their Codex); only a ``[mcp_servers.kanban]`` table there would be in the way. stdin is
/dev/null (``codex exec`` would wait for it to close).

``--json`` makes the log Codex's JSONL events (`codex_events`): `render` shows them as
readable lines, and the meter (`CodexMeter`) keeps the run's usage from the events and from
the rollout Codex writes for the thread (`codex_rollout`), the only source of figures before
the turn ends.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from worker import env, usage
from worker.runtimes import base, codex_events, codex_rollout
from worker.setup import codex as codex_setup

INSTALL_HINT = "install the Codex CLI (npm install -g @openai/codex)"


def codex_home_ready(codex_home: str | None) -> str:
    """CODEX_HOME, after checking that nothing in its config is in the way of our server."""
    problem = codex_setup.conflict(codex_home)
    if problem is not None:
        raise base.RuntimeUnavailable(f"Codex cannot be given the kanban tools: {problem}")
    return str(codex_setup.codex_home(codex_home))


_TRIPLES = {
    ("linux", "x86_64"): ("x86_64-unknown-linux-musl", "linux-x64"),
    ("linux", "aarch64"): ("aarch64-unknown-linux-musl", "linux-arm64"),
    ("darwin", "x86_64"): ("x86_64-apple-darwin", "darwin-x64"),
    ("darwin", "arm64"): ("aarch64-apple-darwin", "darwin-arm64"),
}


def native(binary: str) -> tuple[str, dict[str, str]]:
    """The program to start for `binary`, and what its environment needs.

    npm's ``codex`` is a Node script that finds the native program in a platform package and
    replaces itself with it; starting Node costs about 50 ms a run. When `binary` is that
    script, the native program is started directly, with the two variables the script would
    have set. Anything else (a native ``codex``, a stand-in) is started as it is.
    """
    script = os.path.realpath(binary)
    if not script.endswith(os.path.join("@openai", "codex", "bin", "codex.js")):
        return binary, {}
    package = os.path.dirname(os.path.dirname(script))
    found = _TRIPLES.get((sys.platform, platform.machine()))
    if found is None:
        return binary, {}
    triple, suffix = found
    for vendor in (
        os.path.join(os.path.dirname(package), f"codex-{suffix}", "vendor"),
        os.path.join(package, "vendor"),
    ):
        program = os.path.join(vendor, triple, "bin", "codex")
        if os.access(program, os.X_OK):
            return program, {"CODEX_MANAGED_PACKAGE_ROOT": package, "CODEX_MANAGED_BY_NPM": "1"}
    return binary, {}


# Codex waits this long for the tool server at start; a server being restarted is up in ~1 s.
STARTUP_TIMEOUT_SEC = 30
TOOL_TIMEOUT_SEC = 120


def tool_server_overrides(url: str | None) -> tuple[str, ...]:
    """``-c`` overrides that give one Codex the board's tool server, the run's token its bearer.

    `required`: without it Codex does not wait for the server, and a worker's first turns
    could go out without the kanban tools. Tools are pre-approved: ``codex exec`` refuses
    unapproved MCP calls, and Hermes rejects approval requests for servers not its own.
    """
    if url is None:
        raise base.RuntimeUnavailable("the board's kanban tool server is not running")
    table = f"mcp_servers.{codex_setup.SERVER}"
    pairs = (
        ("url", _toml_string(url)),
        ("bearer_token_env_var", _toml_string(env.TOKEN)),
        ("default_tools_approval_mode", '"approve"'),
        ("required", "true"),
        ("startup_timeout_sec", str(STARTUP_TIMEOUT_SEC)),
        ("tool_timeout_sec", str(TOOL_TIMEOUT_SEC)),
    )
    overrides: list[str] = []
    for key, value in pairs:
        overrides += ["-c", f"{table}.{key}={value}"]
    return tuple(overrides)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def temporary_dirs() -> list[Path]:
    """Directories Codex's workspace-write sandbox leaves writable besides the workspace."""
    found = [Path("/tmp")]
    if os.environ.get("TMPDIR"):
        found.append(Path(os.environ["TMPDIR"]))
    found.append(Path(tempfile.gettempdir()))
    return [Path(os.path.realpath(p)) for p in found]


def in_temporary_dir(path: str) -> bool:
    directory = Path(os.path.realpath(path)).parent
    return any(directory == t or t in directory.parents for t in temporary_dirs())


def protect_board(db_path: str) -> tuple[str, ...]:
    """``-c`` overrides that keep the sandboxed shell away from the board and the token.

    The sandbox makes /tmp and $TMPDIR writable; a board there would be writable by the
    model's shell, so for such a board those two roots are taken out of the sandbox. The lease
    token is hidden from the shell (Codex still sends it to the tool server as the bearer), and
    so is a PostgreSQL board's URL (it may hold a password).
    """
    hidden = [env.TOKEN, *([env.DB] if env.on_postgres(db_path) else [])]
    listed = ", ".join(f'"{name}"' for name in hidden)
    overrides = ["-c", f"shell_environment_policy.exclude=[{listed}]"]
    if not env.on_postgres(db_path) and in_temporary_dir(db_path):
        overrides += [
            "-c",
            "sandbox_workspace_write.exclude_slash_tmp=true",
            "-c",
            "sandbox_workspace_write.exclude_tmpdir_env_var=true",
        ]
    return tuple(overrides)


class CodexRuntime:
    name = "codex"
    reports = True
    uses_tool_server = True

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(
            ctx.settings.codex_bin, "KANBAN_CODEX_BIN", "codex", hint=INSTALL_HINT
        )
        home = codex_home_ready(ctx.settings.codex_home)
        program, program_env = native(binary)
        argv = (
            program,
            "exec",
            "--sandbox",
            "workspace-write",
            "--skip-git-repo-check",  # scratch directories are not repositories
            "--json",  # events, one a line: the log is what the meter and `render` read
            "--cd",
            ctx.workspace,
            *protect_board(ctx.db_path),
            *tool_server_overrides(ctx.tool_url),
            *ctx.settings.extra_args.get(self.name, ()),
            ctx.prompt,
        )
        return base.Launch(argv=argv, env={"CODEX_HOME": home, **program_env}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return codex_events.rate_limited(log_tail)

    def meter(self, metered: base.Metered) -> usage.Meter:
        return CodexMeter(metered)

    def render(self, line: str) -> str | None:
        return codex_events.render(line)


class CodexMeter:
    """A ``codex exec --json`` run's usage and activity, from its log and its thread's rollout.

    The log names the thread (``thread.started``) and ends its turn with the thread's running
    total (``turn.completed``); the rollout has the same total after every model response, and
    the model's name. Per thread, whichever of the two has counted more tokens is the latest
    (both only grow); the run's usage is the sum over its threads.
    """

    def __init__(self, metered: base.Metered) -> None:
        self._metered = metered
        self._sessions = codex_rollout.sessions_dir(metered.settings.codex_home)
        self._events = codex_events.Events(metered.workspace)
        self._rollouts: dict[str, codex_rollout.Rollout] = {}

    def feed(self, line: str) -> None:
        self._events.feed(line)

    def usage(self) -> usage.Usage:
        total = usage.Usage()
        for thread in self._events.threads:
            reported = self._events.reported.get(thread, usage.Usage())
            rollout = self._rollout(thread)
            if rollout is not None:
                rollout.read()
                recorded = rollout.usage()
                if recorded.tokens >= reported.tokens:
                    reported = recorded
                else:
                    reported = dataclasses.replace(reported, model=recorded.model)
            total += reported
        return total

    def activity(self) -> str | None:
        return self._events.activity

    def _rollout(self, thread: str) -> codex_rollout.Rollout | None:
        if thread not in self._rollouts:
            path = codex_rollout.thread_file(
                self._sessions, thread, self._metered.started_at, time.time()
            )
            if path is None:
                return None
            self._rollouts[thread] = codex_rollout.Rollout(path)
        return self._rollouts[thread]
