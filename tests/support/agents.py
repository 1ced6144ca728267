"""The world of an end-to-end test: real agents, the real `kanban` CLI, a scripted model.

Each test gets its own board, git repository, Codex home and Hermes home (all under the
isolated HOME of tests/conftest.py, or under a directory outside every temporary directory
for the layout of a real user's home), prepared by the real `kanban setup codex` and
`kanban setup hermes` commands against its own scripted model server. Tests drive the
`kanban` executable as a subprocess and poll for conditions with deadlines; nothing sleeps
to coordinate. The `world` and `user_home_world` fixtures (tests/e2e/conftest.py) make one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from support import REPO_ROOT, cli
from support.gitrepo import git, make_repo
from support.processes import kill_tree
from testing import scripted_model
from worker.runtimes import codex as codex_runtime
from worker.setup import codex as codex_setup

DEADLINE = 180.0  # seconds; generous, since Hermes alone takes 4-10 s per run on a busy machine

# Settings of the user's own, written outside kanban's block before `kanban setup codex`:
# Codex's start-up plugin sync reaches for the network, which these machines do not have.
USER_FEATURES = """\
# my own settings
[features]
plugins = false
apps = false
remote_plugin = false
"""
# What a user adds so that Codex's sandbox does not leave /tmp and $TMPDIR writable (the
# `hermes` runtime refuses a board in a temporary directory without it).
USER_TMP_EXCLUSIONS = """\
[sandbox_workspace_write]
exclude_slash_tmp = true
exclude_tmpdir_env_var = true
"""


def responses(server: scripted_model.ScriptedModel, scenario: str | None = None) -> list:
    """The model turns the agents asked for (Codex speaks the Responses API)."""
    return [
        r
        for r in server.requests
        if r.path == "/v1/responses" and (scenario is None or r.scenario == scenario)
    ]


def call_output(request: scripted_model.RecordedRequest, turn: int) -> str:
    """The output the agent sent back for the scripted call(s) of `turn`, as one text."""
    texts = []
    for item in request.body.get("input", []):
        call = re.fullmatch(r"ks-\d+-(\d+)-\d+", str(item.get("call_id")))
        if item.get("type") != "function_call_output" or not call or int(call[1]) != turn:
            continue
        output = item.get("output")
        if isinstance(output, list):
            output = "".join(part.get("text", "") for part in output if isinstance(part, dict))
        texts.append(str(output))
    assert texts, f"no output of turn {turn} in the request {request.body.get('input')}"
    return "\n".join(texts)


def board_integrity(db_path: Path) -> list[str]:
    """PRAGMA integrity_check through SQLite, read-only: never plain file I/O on a board."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def board_rows(db_path: Path, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


class World:
    """One test's homes, board, repository and scripted model, and the `kanban` CLI on them."""

    def __init__(self, root: Path, home: Path, codex_bin: Path, hermes_bin: Path) -> None:
        self.root = root
        self.home = home
        self.db_path = home / ".kanban" / "board.db"
        self.codex_home = home / ".codex"
        self.hermes_home = home / ".kanban" / "hermes"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GIT_", "HERMES_KANBAN_", "KANBAN_"))
        }
        self.env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            HERMES_HOME=str(home / ".hermes"),  # the user's own Hermes: never used by workers
            CODEX_HOME=str(self.codex_home),
            KANBAN_DB=str(self.db_path),
            KANBAN_CODEX_BIN=str(codex_bin),
            KANBAN_HERMES_BIN=str(hermes_bin),
            KANBAN_HERMES_HOME=str(self.hermes_home),
            KANBAN_KILL_GRACE="1",
            KANBAN_RETRY_DELAY="0.2",
            KANBAN_STALL_TIMEOUT="120",  # a safety net; the hang test sets its own
            KANBAN_TOOL_SERVER_IDLE_EXIT="8",  # the board's tool server goes soon after
        )
        self.repo = root / "repo"
        self.dispatchers: list[subprocess.Popen] = []
        self._stack = contextlib.ExitStack()
        self.server: scripted_model.ScriptedModel | None = None
        self.dispatcher_log = root / "dispatcher.log"
        self.user_config = ""

    # -- set-up ---------------------------------------------------------------------------

    def make_repo(self) -> Path:
        return make_repo(self.repo, {"README": "the project\n"})

    def start(
        self, script: dict[str, Any], *, user_config: str = USER_FEATURES
    ) -> scripted_model.ScriptedModel:
        """Serve `script`, and point Codex and kanban's Hermes home at it with `kanban setup`."""
        server = self._stack.enter_context(scripted_model.serve(script))
        self.server = server
        self.codex_home.mkdir(parents=True, exist_ok=True)
        self.user_config = user_config
        (self.codex_home / "config.toml").write_text(user_config)
        provider = ("--model-provider-url", server.base_url, "--model", scripted_model.MODEL_NAME)
        self.kanban("setup", "codex", "--codex-home", str(self.codex_home), *provider)
        self.kanban("setup", "hermes", "--hermes-home", str(self.hermes_home), *provider)
        return server

    # -- the CLI --------------------------------------------------------------------------

    def kanban(
        self, *args: str, check: bool = True, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess:
        return cli.kanban(*args, env={**self.env, **env}, check=check, timeout=timeout)

    def create(self, title: str, *options: str, runtime: str = "codex") -> str:
        result = self.kanban(
            "create", title, "--runtime", runtime, "--repo", str(self.repo), *options, "--json"
        )
        return json.loads(result.stdout)["id"]

    def dispatch(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`kanban dispatch --until-idle`, to the end."""
        result = self.kanban(
            "dispatch", "--until-idle", *args, check=False, timeout=DEADLINE, **env
        )
        assert result.returncode == 0, f"the dispatcher failed:\n{result.stderr}\n{self.logs()}"
        return result

    def dispatch_in_background(self, *args: str, **env: str) -> subprocess.Popen:
        self.dispatcher_log = self.root / f"dispatcher-{len(self.dispatchers) + 1}.log"
        with open(self.dispatcher_log, "wb") as log:
            proc = subprocess.Popen(
                [cli.KANBAN, "dispatch", "--until-idle", *args],
                env={**self.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.dispatchers.append(proc)
        return proc

    def show(self, task: str) -> dict[str, Any]:
        return json.loads(self.kanban("show", task, "--json").stdout)

    def logs(self) -> str:
        """Every run's log, for failure messages."""
        found = sorted((self.db_path.parent / "logs").glob("*/*/run-*.log"))
        return "\n".join(
            f"--- {path}\n{path.read_text(errors='replace')[-4000:]}" for path in found
        )

    def branch(self, task: str) -> str:
        """The task's branch, as the board records it (``kanban/<board id>/t_N``)."""
        return self.show(task)["branch"]

    def branch_files(self, task: str) -> set[str]:
        return set(git(self.repo, "ls-tree", "-r", "--name-only", self.branch(task)).split())

    # -- tear-down ------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self.dispatchers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # Workers live in sessions of their own: a failed test must not leave agents behind.
        if self.db_path.exists():
            for run in board_rows(self.db_path, "SELECT * FROM runs WHERE ended_at IS NULL"):
                kill_tree(run["shim_pid"], run["shim_started_at"])
                kill_tree(run["pid"], run["pid_started_at"])
            for row in board_rows(
                self.db_path, "SELECT value FROM settings WHERE key = ?", ("tool_server",)
            ):
                server = json.loads(row["value"])
                kill_tree(server["pid"], server["pid_started_at"])
        self._stack.close()


def outside_temporary_dirs() -> Path:
    """A fresh directory outside every directory Codex's sandbox leaves writable (/tmp,
    $TMPDIR), where a real user's home would be; the caller removes it."""
    temporary = codex_runtime.temporary_dirs()
    for parent in (Path("/var/tmp"), REPO_ROOT / ".pytest_cache"):
        real = Path(os.path.realpath(parent))
        if any(real == t or t in real.parents for t in temporary):
            continue
        with contextlib.suppress(OSError):
            parent.mkdir(exist_ok=True)
            return Path(tempfile.mkdtemp(prefix="kanban-e2e-", dir=parent))
    pytest.fail("no writable directory outside /tmp and $TMPDIR for a user-like home")


def block_removed(text: str) -> str:
    """`text` without kanban's managed block (its marker lines and what is between them)."""
    start = text.index(codex_setup.START)
    end = text.index(codex_setup.END) + len(codex_setup.END) + 1
    return text[:start] + text[end:]
