"""Each runtime's command line and environment, as the program it starts receives them.

The dispatcher (`kanban dispatch`, as a subprocess) starts a stand-in for the agent: a small
Python program that records its argv, working directory and environment (and, for Claude
Code, the MCP config file it is pointed at) to a JSON file and exits 0. What it recorded is
exactly what the real agent would have been given.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import cli
from support.agents import outside_temporary_dirs
from support.gitrepo import make_repo

from board import connection, policy, services
from worker import runtimes
from worker.runtimes import base

TMP_EXCLUSIONS = (
    "sandbox_workspace_write.exclude_slash_tmp=true",
    "sandbox_workspace_write.exclude_tmpdir_env_var=true",
)
TOKEN_HIDDEN = 'shell_environment_policy.exclude=["HERMES_KANBAN_TOKEN"]'

STAND_IN = """#!{python}
import json, os, stat, sys
record = {{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}}
if "--mcp-config" in sys.argv:
    path = sys.argv[sys.argv.index("--mcp-config") + 1]
    with open(path) as handle:
        record["mcp_config"] = json.load(handle)
    record["mcp_config_mode"] = stat.S_IMODE(os.stat(path).st_mode)
with open(os.path.join({out!r}, os.path.basename(sys.argv[0]) + ".json"), "w") as out:
    json.dump(record, out)
"""


class Board:
    """A board, a repository and the environment of `kanban` commands, all in tmp_path."""

    def __init__(self, tmp_path: Path, db_path: Path) -> None:
        self.tmp = tmp_path
        self.db_path = db_path
        self.records = tmp_path / "records"
        self.records.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.codex_home = Path(os.environ["CODEX_HOME"])
        self.hermes_home = tmp_path / "kanban-hermes"
        self.env = dict(os.environ)
        self.env.update(
            KANBAN_DB=str(db_path),
            KANBAN_HERMES_HOME=str(self.hermes_home),
            KANBAN_HERMES_BIN=str(self.stand_in("hermes")),
            KANBAN_CODEX_BIN=str(self.stand_in("codex")),
            KANBAN_CLAUDE_BIN=str(self.stand_in("claude")),
            KANBAN_RETRY_DELAY="0.2",
        )
        self.repo = make_repo(tmp_path / "repo", {})

    def stand_in(self, name: str) -> Path:
        path = self.bin / name
        path.write_text(STAND_IN.format(python=sys.executable, out=str(self.records)))
        path.chmod(0o755)
        return path

    def kanban(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return cli.kanban(*args, env={**self.env, **env})

    def set_up_codex(self, user_config: str = "") -> None:
        self.codex_home.mkdir(parents=True, exist_ok=True)
        (self.codex_home / "config.toml").write_text(user_config)
        self.kanban("setup", "codex")

    def run_task(self, runtime: str, *options: str, **env: str) -> dict[str, Any]:
        """Create one task, dispatch until idle; the task as `kanban show --json` has it."""
        self.kanban(
            "create",
            f"Task for {runtime}",
            "--body",
            "Do the thing.",
            "--runtime",
            runtime,
            "--repo",
            str(self.repo),
            *options,
            **env,
        )
        self.kanban("dispatch", "--until-idle", **env)
        return json.loads(self.kanban("show", "t_1", "--json", **env).stdout)

    def record(self, name: str) -> dict[str, Any]:
        return json.loads((self.records / f"{name}.json").read_text())

    def token(self, seen: dict[str, Any], db_path: str | None = None) -> str:
        """The first run's lease token as `seen` by a worker, checked against the board,
        which keeps only its hash."""
        conn = sqlite3.connect(f"file:{db_path or self.env['KANBAN_DB']}?mode=ro", uri=True)
        try:
            stored = conn.execute("SELECT token_hash FROM runs WHERE id = 1").fetchone()[0]
        finally:
            conn.close()
        token = seen["HERMES_KANBAN_TOKEN"]
        assert hashlib.sha256(token.encode()).hexdigest() == stored
        assert token not in stored
        return token


@pytest.fixture
def board(tmp_path: Path, db_path: Path) -> Board:
    return Board(tmp_path, db_path)


@pytest.fixture
def board_outside_temporary_dirs() -> Iterator[Path]:
    root = outside_temporary_dirs()
    try:
        yield root / "board.db"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def worker_variables(task: dict[str, Any], token: str, db_path: str) -> dict[str, str]:
    return {
        "HERMES_KANBAN_TASK": "t_1",
        "HERMES_KANBAN_RUN_ID": "1",
        "HERMES_KANBAN_TOKEN": token,
        "HERMES_KANBAN_WORKSPACE": task["worktree"],
        "HERMES_KANBAN_BRANCH": task["branch"],
        "KANBAN_DB": db_path,
    }


def overrides(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]


def wrapped_codex(env: dict[str, Any]) -> list[str]:
    """What the `codex` first on a Hermes worker's PATH runs (kanban's per-run wrapper)."""
    script = Path(env["PATH"].split(os.pathsep)[0], "codex").read_text()
    return shlex.split(script.strip().splitlines()[-1])


def test_hermes_runs_chat_on_kanbans_hermes_home_with_codex_first_on_path(
    board: Board,
) -> None:
    board.set_up_codex()
    board.kanban("setup", "hermes")

    task = board.run_task("hermes", "--max-attempts", "1")

    got = board.record("hermes")
    prompt = got["argv"][-1]
    assert got["argv"] == [board.env["KANBAN_HERMES_BIN"], "chat", "-Q", "-q", prompt]
    assert "task t_1" in prompt and "Do the thing." in prompt
    assert got["cwd"] == task["worktree"]
    env = got["env"]
    assert env["HERMES_HOME"] == str(board.hermes_home)  # not the user's own $HERMES_HOME
    assert env["CODEX_HOME"] == str(board.codex_home)
    # Hermes starts `codex` from PATH: first the run's wrapper, which runs the real one (next
    # on PATH) with the board's tool server, the token hidden from the shell, /tmp excluded.
    assert env["PATH"].split(os.pathsep)[1] == str(board.bin)
    wrapped = wrapped_codex(env)
    assert wrapped[:3] == ["exec", str(board.bin / "codex"), "$@"]
    given = overrides(wrapped)
    assert TOKEN_HIDDEN in given and all(o in given for o in TMP_EXCLUSIONS)
    server = services.tool_server(connection.connect(board.db_path, create=False))
    assert f'mcp_servers.kanban.url="{server.url}"' in given
    assert 'mcp_servers.kanban.bearer_token_env_var="HERMES_KANBAN_TOKEN"' in given
    assert env["HERMES_KANBAN_ROOT"] == task["worktree"]  # Hermes' one extra writable root
    assert env["HERMES_KANBAN_DB"] == ""  # never an inherited board's directory
    expected = worker_variables(task, board.token(env), board.env["KANBAN_DB"])
    assert {name: env.get(name) for name in expected} == expected
    # Hermes exits 0 whatever happened: without a report, the attempt counts as failed.
    assert [r["outcome"] for r in task["runs"]] == ["exited_without_report"]


@pytest.mark.parametrize("location", ["temporary", "outside_temporary_dirs"])
def test_codex_runs_exec_sandboxed_to_the_worktree_with_the_token_hidden_from_its_shell(
    board: Board, request: pytest.FixtureRequest, location: str
) -> None:
    board.set_up_codex()
    db_path = (
        str(board.db_path)
        if location == "temporary"
        else str(request.getfixturevalue("board_outside_temporary_dirs"))
    )

    task = board.run_task("codex", "--max-attempts", "1", KANBAN_DB=db_path)

    got = board.record("codex")
    argv = got["argv"]
    assert argv[:4] == [board.env["KANBAN_CODEX_BIN"], "exec", "--sandbox", "workspace-write"]
    assert argv[argv.index("--cd") + 1] == task["worktree"] == got["cwd"]
    assert "task t_1" in argv[-1] and "Do the thing." in argv[-1]
    # The board's tool server, the token as its bearer; the model's shell never sees it.
    assert TOKEN_HIDDEN in overrides(argv)
    server = services.tool_server(connection.connect(db_path, create=False))
    assert f'mcp_servers.kanban.url="{server.url}"' in overrides(argv)
    assert 'mcp_servers.kanban.bearer_token_env_var="HERMES_KANBAN_TOKEN"' in overrides(argv)
    assert "mcp_servers.kanban.required=true" in overrides(argv)
    # /tmp and $TMPDIR come out of the sandbox exactly when the board is in one of them.
    excluded = [o for o in overrides(argv) if o in TMP_EXCLUSIONS]
    assert excluded == (list(TMP_EXCLUSIONS) if location == "temporary" else [])
    assert got["env"]["CODEX_HOME"] == str(board.codex_home)
    expected = worker_variables(task, board.token(got["env"], db_path), db_path)
    assert {name: got["env"].get(name) for name in expected} == expected


def test_claude_gets_the_prompt_and_a_private_mcp_config_naming_the_board_tool_server(
    board: Board,
) -> None:
    task = board.run_task("claude", "--max-attempts", "1")

    got = board.record("claude")
    argv = got["argv"]
    assert argv[1] == "-p" and "task t_1" in argv[2]
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert "--strict-mcp-config" in argv
    assert got["mcp_config_mode"] == 0o600
    server = got["mcp_config"]["mcpServers"]["kanban"]
    bearer = server["headers"]["Authorization"].removeprefix("Bearer ")
    token = board.token({"HERMES_KANBAN_TOKEN": bearer})
    tool_server = services.tool_server(connection.connect(board.db_path, create=False))
    assert server == {
        "type": "http",
        "url": tool_server.url,
        "headers": {"Authorization": f"Bearer {token}"},
    }
    assert not [arg for arg in argv if token in arg]  # never in the process list
    # Claude Code, and so the model's shell, has the rest of the run's identity but no token.
    expected = worker_variables(task, token, board.env["KANBAN_DB"])
    del expected["HERMES_KANBAN_TOKEN"]
    assert {name: got["env"].get(name) for name in expected} == expected
    assert "HERMES_KANBAN_TOKEN" not in got["env"]
    assert got["cwd"] == task["worktree"]


def test_command_runs_its_argv_in_the_worktree_and_exit_zero_means_done(board: Board) -> None:
    command = shlex.join([board.env["KANBAN_CODEX_BIN"], "plain", "two words"])

    task = board.run_task("command", "--command", command)

    got = board.record("codex")
    assert got["argv"] == [board.env["KANBAN_CODEX_BIN"], "plain", "two words"]
    assert got["cwd"] == task["worktree"]
    expected = worker_variables(task, board.token(got["env"]), board.env["KANBAN_DB"])
    assert {name: got["env"].get(name) for name in expected} == expected
    assert task["status"] == "done"


@pytest.mark.parametrize(
    ("runtime", "variable", "hint"),
    [
        ("hermes", "KANBAN_HERMES_BIN", "pip install hermes-agent"),
        ("codex", "KANBAN_CODEX_BIN", "npm install -g @openai/codex"),
        ("claude", "KANBAN_CLAUDE_BIN", "npm install -g @anthropic-ai/claude-code"),
    ],
)
def test_missing_agent_fails_the_task_at_once_naming_the_program_and_its_install(
    board: Board, tmp_path: Path, runtime: str, variable: str, hint: str
) -> None:
    board.set_up_codex()
    board.kanban("setup", "hermes")
    missing = str(tmp_path / "nowhere" / runtime)

    task = board.run_task(runtime, **{variable: missing})

    assert task["status"] == "failed"
    assert [r["outcome"] for r in task["runs"]] == ["spawn_failed"]  # no retries
    assert f"{runtime} was not found (looked for {missing!r})" in task["failure_reason"]
    assert hint in task["failure_reason"]
    assert variable in task["failure_reason"]
    assert not list(board.records.iterdir())


@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_an_old_kanban_server_in_codexs_config_fails_at_once_saying_to_run_setup(
    board: Board, runtime: str
) -> None:
    # What an earlier kanban registered (a stdio server) is in the way of the per-run one.
    board.codex_home.mkdir(parents=True, exist_ok=True)
    (board.codex_home / "config.toml").write_text(
        '[mcp_servers.kanban]\ncommand = "/gone/python"\nargs = ["-P", "-m", "worker.mcp_server"]\n'
    )
    fix = "kanban setup codex"
    if runtime == "hermes":
        board.kanban("setup", "hermes")
    task = board.run_task(runtime)

    assert task["status"] == "failed"
    assert [r["outcome"] for r in task["runs"]] == ["spawn_failed"]
    assert fix in task["failure_reason"]
    assert not list(board.records.iterdir())


def test_hermes_without_its_own_home_fails_at_once_saying_to_run_setup(board: Board) -> None:
    board.set_up_codex(
        "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n"
    )

    task = board.run_task("hermes")

    assert [r["outcome"] for r in task["runs"]] == ["spawn_failed"]
    assert "kanban setup hermes" in task["failure_reason"]
    assert not list(board.records.iterdir())


def test_a_codex_config_with_a_kanban_server_of_its_own_is_refused_with_what_to_do(
    board: Board,
) -> None:
    # Codex cannot turn a stdio [mcp_servers.kanban] into the per-run HTTP one.
    board.codex_home.mkdir(parents=True, exist_ok=True)
    (board.codex_home / "config.toml").write_text('[mcp_servers.kanban]\ncommand = "my-own"\n')

    task = board.run_task("codex")

    assert [r["outcome"] for r in task["runs"]] == ["spawn_failed"]
    assert "[mcp_servers.kanban]" in task["failure_reason"]
    assert not list(board.records.iterdir())


def test_every_runtime_has_a_privilege_level_in_the_boards_policy() -> None:
    # A runtime missing there would count as the most privileged: workers could not use it.
    assert set(policy.LEVELS) == set(runtimes.NAMES)
    assert policy.level("command") is max(policy.LEVELS.values())


@pytest.mark.parametrize("name", runtimes.NAMES)
def test_every_runtime_meters_and_renders_its_own_log(name: str) -> None:
    runtime = runtimes.get(name)
    meter = runtime.meter(base.Metered(workspace=None, started_at=0.0, settings=base.Settings()))
    for line in ("plain text from the program", "", '{"type": "unknown"}'):
        meter.feed(line)
        rendered = runtime.render(line)
        assert rendered is None or isinstance(rendered, str)
    assert meter.usage().tokens == 0
    assert meter.usage() == meter.usage()  # reading the totals changes nothing
