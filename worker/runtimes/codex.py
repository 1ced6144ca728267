"""The `codex` runtime: ``codex exec`` directly, sandboxed to the worktree.

The shell commands the model runs are confined by Codex's ``workspace-write`` sandbox to the
worktree; the kanban tools come from our MCP server, registered in ``$CODEX_HOME/config.toml``
by ``kanban setup codex`` (with the worker variables whitelisted: Codex gives MCP servers a
scrubbed environment). stdin is /dev/null (``codex exec`` would wait for it to close).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from worker import env
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


def temporary_dirs_excluded(codex_home: str) -> bool:
    """Does the user's Codex config take /tmp and $TMPDIR out of the sandbox?"""
    import tomllib

    try:
        data = tomllib.loads((Path(codex_home) / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    table = data.get("sandbox_workspace_write", {})
    return table.get("exclude_slash_tmp") is True and table.get("exclude_tmpdir_env_var") is True


def protect_board(db_path: str) -> tuple[str, ...]:
    """``-c`` overrides that keep the sandboxed shell away from the board and the token.

    The sandbox makes /tmp and $TMPDIR writable; a board there would be writable by the
    model's shell, so for such a board those two roots are taken out of the sandbox. The lease
    token is hidden from the shell (the MCP server still receives it through ``env_vars``).
    """
    overrides = ["-c", f'shell_environment_policy.exclude=["{env.TOKEN}"]']
    if in_temporary_dir(db_path):
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

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(
            ctx.settings.codex_bin, "KANBAN_CODEX_BIN", "codex", hint=INSTALL_HINT
        )
        home = codex_home_ready(ctx.settings.codex_home)
        argv = (
            binary,
            "exec",
            "--sandbox",
            "workspace-write",
            "--skip-git-repo-check",  # scratch directories are not repositories
            "--cd",
            ctx.workspace,
            *protect_board(ctx.db_path),
            *ctx.settings.extra_args.get(self.name, ()),
            ctx.prompt,
        )
        return base.Launch(argv=argv, env={"CODEX_HOME": home}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return base.looks_rate_limited(log_tail)
