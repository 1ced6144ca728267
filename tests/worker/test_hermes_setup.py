"""The workers' own Hermes home: created apart from the user's Hermes, read by the real Hermes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import REPO_ROOT

from worker.setup import codex, hermes

PROVIDER = codex.ModelProvider("http://127.0.0.1:8123/v1", "scripted")


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for directories)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def test_setup_creates_the_home_its_kanban_directory_and_a_parsable_config(
    isolated_home: Path,
) -> None:
    change = hermes.install()
    home = isolated_home / ".kanban" / "hermes"
    assert change.changed and change.path == home / "config.yaml" and change.backup is None
    assert (home / "kanban").is_dir()  # bwrap bind-mounts it into Codex's sandbox
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "config.yaml").stat().st_mode) == 0o600
    config = json.loads((home / "config.yaml").read_text())
    assert config["model"]["provider"] == "custom"
    assert config["model"]["api_mode"] == "codex_app_server"
    assert config["model"]["base_url"] == hermes.PLACEHOLDER_BASE_URL
    assert "default" not in config["model"]  # the model is Codex's to choose
    assert hermes.status().state is codex.State.CURRENT


def test_setup_never_touches_the_users_own_hermes(isolated_home: Path) -> None:
    users = Path(os.environ["HERMES_HOME"])  # conftest: the user's Hermes home
    users.mkdir(parents=True)
    (users / "config.yaml").write_text("model:\n  provider: openrouter\n")
    (users / ".env").write_text("OPENROUTER_API_KEY=secret\n")
    before = _tree(users)
    hermes.install(model_provider=PROVIDER)
    hermes.status()
    assert _tree(users) == before
    assert not (isolated_home / ".hermes" / "profiles").exists()


def test_setup_is_idempotent_and_keeps_what_a_user_added(tmp_path: Path) -> None:
    home = tmp_path / "h"
    hermes.install(home)
    path = home / "config.yaml"
    config = json.loads(path.read_text())
    config["model"]["max_tokens"] = 1000
    config["display"] = {"bell": False}
    path.write_text(json.dumps(config))
    change = hermes.install(home, model_provider=PROVIDER)
    assert change.changed and change.backup == home / "config.yaml.kanban-backup"
    config = json.loads(path.read_text())
    assert config["display"] == {"bell": False}
    assert config["model"]["max_tokens"] == 1000
    assert config["model"]["base_url"] == PROVIDER.base_url
    assert config["model"]["default"] == "scripted"
    written = path.read_bytes()
    assert hermes.install(home, model_provider=PROVIDER).changed is False
    assert path.read_bytes() == written
    hermes.install(home)  # back to Codex's own model: our offline keys go, the user's stay
    config = json.loads(path.read_text())
    assert "default" not in config["model"] and config["model"]["max_tokens"] == 1000


def test_a_config_kanban_cannot_read_is_refused_untouched(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    path = home / "config.yaml"
    path.write_text("model:\n  provider: custom\n")  # YAML, not the JSON kanban writes
    with pytest.raises(codex.SetupError, match="not in the JSON form") as raised:
        hermes.install(home)
    assert str(path) in str(raised.value)
    assert path.read_text() == "model:\n  provider: custom\n"
    assert os.listdir(home) == ["config.yaml"]
    assert hermes.status(home).state is codex.State.BROKEN


@pytest.mark.parametrize(
    "where", ["~/.hermes", "~/.hermes/profiles/kanban", "$HERMES_HOME/sub", "~/x/profiles/k"]
)
def test_a_home_inside_the_users_hermes_or_shaped_like_a_profile_is_refused(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setenv("HERMES_HOME", str(isolated_home / "custom-hermes"))
    home = os.path.expandvars(os.path.expanduser(where))
    with pytest.raises(codex.SetupError, match=r"own Hermes home|profile"):
        hermes.install(home)
    assert not Path(home).exists()


def test_status_reports_a_missing_home_and_a_missing_kanban_directory(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert hermes.status(home).state is codex.State.MISSING
    hermes.install(home)
    (home / "kanban").rmdir()
    stale = hermes.status(home)
    assert stale.state is codex.State.STALE and "sandbox" in stale.detail
    hermes.install(home)
    assert hermes.status(home).ok


def test_the_home_defaults_to_kanban_hermes_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANBAN_HERMES_HOME", str(tmp_path / "from-env"))
    assert hermes.install().path == tmp_path / "from-env" / "config.yaml"


def test_runtime_env_points_hermes_and_codex_at_our_homes_and_blanks_other_boards(
    tmp_path: Path,
) -> None:
    variables = hermes.runtime_env(
        tmp_path / "h", codex_home=tmp_path / "c", codex_bin="/opt/codex/bin/codex", path="/usr/bin"
    )
    assert variables["HERMES_HOME"] == str(tmp_path / "h")
    assert variables["HERMES_KANBAN_HOME"] == str(tmp_path / "h")
    assert variables["HERMES_KANBAN_ROOT"] == str(tmp_path / "h" / "kanban")
    assert variables["CODEX_HOME"] == str(tmp_path / "c")
    assert variables["PATH"] == "/opt/codex/bin:/usr/bin"
    assert variables["HERMES_KANBAN_STOP_NUDGE"] == "0"
    for name in hermes.BLANKED_VARIABLES:
        assert variables[name] == ""
    assert "PATH" not in hermes.runtime_env(tmp_path / "h")


def test_runtime_env_follows_codex_home_from_the_environment(isolated_home: Path) -> None:
    assert hermes.runtime_env()["CODEX_HOME"] == str(isolated_home / ".codex")


# --- the real Hermes --------------------------------------------------------------------


def _tool(env_var: str, relative: str) -> str:
    explicit = os.environ.get(env_var)
    path = Path(explicit) if explicit else REPO_ROOT / ".tools" / relative
    assert path.exists(), f"{path} is missing: run `make tools`"
    return str(path)


@pytest.mark.e2e
def test_real_hermes_reads_the_config_as_the_codex_runtime(tmp_path: Path) -> None:
    home = tmp_path / "h"
    hermes.install(home, model_provider=PROVIDER)
    shown = subprocess.run(
        [_tool("KANBAN_HERMES_BIN", "hermes/bin/hermes"), "config", "show"],
        env={**os.environ, **hermes.runtime_env(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "'api_mode': 'codex_app_server'" in shown.stdout
    assert f"'base_url': '{PROVIDER.base_url}'" in shown.stdout


class _ScriptedModel(BaseHTTPRequestHandler):
    """Answers Codex's Responses API: one shell command, then a final message."""

    def do_GET(self) -> None:  # model lists, from Codex and from Hermes' side calls
        self._send("application/json", json.dumps({"object": "list", "data": []}))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        if "function_call_output" in body:
            item = {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "FINISHED"}],
            }
        elif "touch the file" in body:
            arguments = json.dumps({"cmd": "touch made-in-sandbox.txt"})
            item = {
                "type": "function_call",
                "name": "exec_command",
                "arguments": arguments,
                "call_id": "c1",
            }
        else:  # Codex's warm-up request
            item = {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ready"}],
            }
        events = [
            {"type": "response.output_item.done", "item": item},
            {"type": "response.completed", "response": {"id": "r"}},
        ]
        self._send("text/event-stream", "".join(f"data: {json.dumps(e)}\n\n" for e in events))

    def _send(self, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted_model() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
def test_a_hermes_worker_set_up_this_way_runs_sandboxed_commands_in_its_workspace(
    tmp_path: Path, scripted_model: str
) -> None:
    provider = codex.ModelProvider(scripted_model, "scripted")
    codex_home, hermes_home = tmp_path / "codex", tmp_path / "hermes"
    codex.install(codex_home, python=os.path.abspath(sys.executable), model_provider=provider)
    hermes.install(hermes_home)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    users_hermes = Path(os.environ["HERMES_HOME"])
    environ = {
        **os.environ,
        "HERMES_KANBAN_TASK": "t_1",  # a worker's identity switches Hermes' kanban paths on
        "HERMES_KANBAN_DB": str(tmp_path / "someone-elses" / "kanban.db"),  # must not leak
        **hermes.runtime_env(
            hermes_home,
            codex_home=codex_home,
            codex_bin=_tool("KANBAN_CODEX_BIN", "node_modules/.bin/codex"),
        ),
    }
    done = subprocess.run(
        [_tool("KANBAN_HERMES_BIN", "hermes/bin/hermes"), "chat", "-Q", "-q", "touch the file"],
        cwd=workspace,
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert "FINISHED" in done.stdout, done.stdout + done.stderr
    assert (workspace / "made-in-sandbox.txt").exists(), done.stdout + done.stderr
    assert not users_hermes.exists()
    assert not (tmp_path / "someone-elses").exists()
