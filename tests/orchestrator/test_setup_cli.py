"""`kanban setup codex|hermes` and `kanban doctor`: messages, exit codes, files left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import REPO_ROOT
from support.gitrepo import git, make_repo

from board import connection
from orchestrator.cli import main, setup
from testing import scripted_model
from worker.setup import codex

PYTHON = os.path.abspath(sys.executable)


@pytest.fixture
def kanban(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    main.cli.add_command(setup.setup)
    main.cli.add_command(setup.doctor)
    # The dispatcher's settings file, which names homes and binaries, is the test's own.
    monkeypatch.setenv("KANBAN_CONFIG", str(tmp_path / "kanban-config.toml"))
    # Outside any repository, so doctor checks no .kanban.toml unless a test makes one.
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main.cli, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def fake_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for hermes and codex that only know --version, and a codex that is not
    logged in (doctor's unit tests)."""
    for name in ("hermes", "codex"):
        program = tmp_path / "bin" / name
        program.parent.mkdir(exist_ok=True)
        program.write_text(
            "#!/bin/sh\n"
            # What codex 0.169 says without a login (on stderr, exit 1).
            'if [ "$1 $2" = "login status" ]; then echo "Not logged in" >&2; exit 1; fi\n'
            f"echo '{name} 9.9.9'\n"
        )
        program.chmod(0o755)
        monkeypatch.setenv(f"KANBAN_{name.upper()}_BIN", str(program))


PROVIDER = ("--model-provider-url", "http://127.0.0.1:9/v1", "--model", "scripted")


def _codex_config(home: Path) -> Path:
    return home / ".codex" / "config.toml"


def test_setup_codex_on_a_plain_machine_changes_nothing(kanban, isolated_home: Path) -> None:
    result = kanban("setup", "codex")
    assert result.exit_code == 0, result.output
    assert "left as it was" in result.output
    assert not (isolated_home / ".codex").exists()  # not even a directory
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    path.write_text("# mine\n[features]\nplugins = false\n")
    stamp = path.stat().st_mtime_ns
    assert kanban("setup", "codex").exit_code == 0
    assert path.read_text() == "# mine\n[features]\nplugins = false\n"
    assert path.stat().st_mtime_ns == stamp
    assert sorted(os.listdir(path.parent)) == ["config.toml"]


def test_setup_codex_migrates_the_block_of_an_older_kanban(kanban, isolated_home: Path) -> None:
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    mine = 'approval_policy = "on-request"\n[features]\nplugins = false\n'
    old_block = "\n".join(
        [
            codex.START,
            *codex.NOTE,
            "[mcp_servers.kanban]",
            'command = "/gone/.venv/bin/python"',
            'args = ["-P", "-m", "worker.mcp_server"]',
            "required = true",
            codex.END,
            "",
        ]
    )
    path.write_text(mine.replace("[features]", old_block + "[features]"))
    doctor = kanban("doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout) if c["name"] == "codex config")
    assert not check["ok"] and check["fix"] == "run `kanban setup codex`"
    result = kanban("setup", "codex")
    assert result.exit_code == 0, result.output
    assert f"Removed kanban's old block from {path}" in result.output
    assert "previous file is saved" in result.output
    assert path.read_text() == mine
    assert codex.conflict() is None


def test_setup_codex_refuses_a_users_own_kanban_server(kanban, isolated_home: Path) -> None:
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    path.write_text('[mcp_servers.kanban]\ncommand = "mine"\n')
    result = kanban("setup", "codex")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "rename your own" in result.stderr
    assert path.read_text() == '[mcp_servers.kanban]\ncommand = "mine"\n'


def test_setup_codex_refuses_invalid_toml_with_an_error_and_leaves_the_file(
    kanban, isolated_home: Path
) -> None:
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    path.write_text('model = "o3\n')
    stamp = path.stat().st_mtime_ns
    result = kanban("setup", "codex")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path} is not valid TOML")
    assert "Traceback" not in result.output
    assert path.read_text() == 'model = "o3\n' and path.stat().st_mtime_ns == stamp
    assert sorted(os.listdir(path.parent)) == ["config.toml"]


def test_setup_codex_with_a_model_provider_and_remove(kanban, tmp_path: Path) -> None:
    home = tmp_path / "ch"
    result = kanban(
        "setup",
        "codex",
        "--codex-home",
        str(home),
        "--model-provider-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "scripted",
    )
    assert result.exit_code == 0, result.output
    assert "Wrote kanban's block (model provider http://127.0.0.1:9/v1)" in result.output
    data = tomllib.loads((home / "config.toml").read_text())
    assert data["model"] == "scripted"
    assert "mcp_servers" not in data
    assert data["model_providers"]["kanban"]["base_url"] == "http://127.0.0.1:9/v1"
    removed = kanban("setup", "codex", "--codex-home", str(home), "--remove")
    assert removed.exit_code == 0 and "Removed kanban's block" in removed.output
    assert "previous file is saved" in removed.output
    assert (home / "config.toml").read_text() == ""


def test_setup_codex_usage_errors_exit_2(kanban) -> None:
    assert kanban("setup", "codex", "--model", "m").exit_code == 2
    remove_with_provider = ("--remove", "--model-provider-url", "http://x/v1", "--model", "m")
    assert kanban("setup", "codex", *remove_with_provider).exit_code == 2


def test_setup_codex_accepts_the_options_of_the_old_server_and_says_they_are_ignored(
    kanban, isolated_home: Path
) -> None:
    old = ("--python", PYTHON, "--startup-timeout", "45", "--tool-timeout", "60")
    result = kanban("setup", "codex", *old)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "Note: --python, --startup-timeout, --tool-timeout ignored: kanban no longer registers "
        "an MCP server in Codex's config (workers get it per run; see docs/config.md).\n"
    )
    assert not (isolated_home / ".codex").exists()
    assert "--python" not in kanban("setup", "codex", "--help").output


def test_setup_codex_follows_the_dispatchers_codex_home(kanban, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KANBAN_CODEX_HOME", str(tmp_path / "workers-codex"))
    provider = ("--model-provider-url", "http://127.0.0.1:9/v1", "--model", "scripted")
    assert kanban("setup", "codex", *provider).exit_code == 0
    assert (tmp_path / "workers-codex" / "config.toml").exists()


def test_setup_codex_repair_after_the_markers_are_lost(kanban, isolated_home: Path) -> None:
    provider = ("--model-provider-url", "http://127.0.0.1:9/v1", "--model", "scripted")
    kanban("setup", "codex", *provider)
    path = _codex_config(isolated_home)
    path.write_text(path.read_text().replace(codex.START + "\n", ""))
    refused = kanban("setup", "codex", *provider)
    assert refused.exit_code == 1 and "--repair" in refused.stderr
    repaired = kanban("setup", "codex", "--repair", *provider)
    assert repaired.exit_code == 0, repaired.output
    assert codex.status().ok


def test_setup_hermes_creates_the_workers_home(kanban, isolated_home: Path) -> None:
    result = kanban("setup", "hermes")
    assert result.exit_code == 0, result.output
    config = isolated_home / ".kanban" / "hermes" / "config.yaml"
    assert f"Wrote {config}" in result.output
    assert json.loads(config.read_text())["model"]["api_mode"] == "codex_app_server"
    assert not (isolated_home / ".hermes").exists()
    assert "nothing to do" in kanban("setup", "hermes").output


def test_setup_hermes_refuses_the_users_own_hermes_home(kanban, isolated_home: Path) -> None:
    result = kanban("setup", "hermes", "--hermes-home", str(isolated_home / ".hermes"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "own Hermes home" in result.stderr


def test_doctor_exits_0_when_everything_is_ready(kanban, fake_agents, isolated_home) -> None:
    assert kanban("setup", "codex", *PROVIDER).exit_code == 0
    assert kanban("setup", "hermes").exit_code == 0
    db = connection.connect(isolated_home / ".kanban" / "board.db")
    db.conn.close()
    result = kanban("doctor")
    assert result.exit_code == 0, result.output
    for name in ("git", "hermes", "codex", "codex config", "codex login", "hermes home", "board"):
        assert any(
            line.startswith("ok ") and f" {name} " in line + " "
            for line in result.output.splitlines()
        ), (name, result.output)
    assert "hermes 9.9.9" in result.output and "integrity ok" in result.output
    assert not (isolated_home / ".hermes").exists()  # checking never creates the user's Hermes


def test_doctor_exits_1_and_says_what_to_run(kanban, fake_agents, monkeypatch) -> None:
    monkeypatch.setenv("KANBAN_CODEX_BIN", "/nonexistent/codex")
    result = kanban("doctor", "--json")
    assert result.exit_code == 1
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    assert checks["codex"]["ok"] is False and "KANBAN_CODEX_BIN" in checks["codex"]["fix"]
    assert checks["codex config"]["ok"] is True  # no config file: kanban needs none
    assert checks["hermes home"]["fix"] == "run `kanban setup hermes`"
    assert checks["hermes"]["ok"] is True
    assert checks["board"]["ok"] is True  # not created yet is fine
    assert "problem(s) found" in result.stderr


def test_doctor_reports_a_damaged_board_without_writing_it(
    kanban, fake_agents, tmp_path: Path
) -> None:
    board = tmp_path / "broken.db"
    board.write_bytes(b"this is not a database" * 100)
    before = board.read_bytes()
    result = kanban("--db", str(board), "doctor", "--json")
    assert result.exit_code == 1
    check = next(c for c in json.loads(result.stdout) if c["name"] == "board")
    assert check["ok"] is False and str(board) in check["detail"]
    assert board.read_bytes() == before
    assert not (tmp_path / "broken.db-wal").exists()


def test_doctor_reports_an_invalid_codex_config(kanban, fake_agents, isolated_home) -> None:
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    path.write_text("[oops\n")
    result = kanban("doctor", "--json")
    assert result.exit_code == 1
    check = next(c for c in json.loads(result.stdout) if c["name"] == "codex config")
    assert "not valid TOML" in check["detail"]


def _doctor_checks(kanban, *args: str) -> tuple[int, dict[str, dict]]:
    result = kanban(*args, "doctor", "--json")
    return result.exit_code, {check["name"]: check for check in json.loads(result.stdout)}


def test_doctor_catches_a_codex_without_a_login_or_a_model_provider(
    kanban, fake_agents, isolated_home: Path
) -> None:
    # A new user: `kanban setup codex && kanban setup hermes && kanban doctor`.
    assert kanban("setup", "codex").exit_code == 0
    assert kanban("setup", "hermes").exit_code == 0
    home = isolated_home / ".codex"
    code, checks = _doctor_checks(kanban)
    assert code == 1
    login = checks["codex login"]
    assert not login["ok"] and f"{home} does not exist" in login["detail"]
    assert f"`mkdir -p {home}`" in login["fix"] and f"CODEX_HOME={home} codex login" in login["fix"]
    assert "kanban setup codex --model-provider-url URL --model NAME" in login["fix"]
    home.mkdir()
    code, checks = _doctor_checks(kanban)
    assert code == 1
    login = checks["codex login"]
    assert not login["ok"] and "Codex is not logged in ('Not logged in'" in login["detail"]
    assert "retry OpenAI's API until its timeout" in login["detail"]
    assert login["fix"].startswith(f"log in (`CODEX_HOME={home} codex login`")
    assert set(login) == {"name", "ok", "detail", "fix"}  # the shape of every check


def test_doctor_passes_a_codex_given_a_model_provider_or_a_login(
    kanban, fake_agents, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kanban("setup", "codex", *PROVIDER).exit_code == 0
    login = _doctor_checks(kanban)[1]["codex login"]
    assert login["ok"] and login["fix"] == ""
    assert login["detail"] == "no login needed: model provider kanban at http://127.0.0.1:9/v1"
    # Without a codex to ask, the file `codex login` writes is what counts.
    assert kanban("setup", "codex", "--remove").exit_code == 0
    monkeypatch.setenv("KANBAN_CODEX_BIN", str(isolated_home / "no-codex"))
    assert not _doctor_checks(kanban)[1]["codex login"]["ok"]
    (isolated_home / ".codex" / "auth.json").write_text('{"OPENAI_API_KEY": "sk-x"}')
    login = _doctor_checks(kanban)[1]["codex login"]
    assert login["ok"] and "auth.json found" in login["detail"]


@pytest.mark.parametrize(
    ("config", "said", "fix"),
    [
        (
            'model_provider = "mine"\n',
            "has no [model_providers.mine] table: Codex stops at once",
            "add [model_providers.mine] with a base_url",
        ),
        (
            'model_provider = "mine"\n[model_providers.mine]\nname = "m"\n',
            "[model_providers.mine] in",
            "give [model_providers.mine] a base_url",
        ),
        (
            'model_provider = "mine"\n[model_providers.mine]\nbase_url = "http://h/v1"\n'
            'env_key = "KANBAN_TEST_UNSET_KEY"\n',
            "takes its key from $KANBAN_TEST_UNSET_KEY, which is not set",
            "set KANBAN_TEST_UNSET_KEY where the dispatcher runs",
        ),
    ],
)
def test_doctor_says_why_a_model_provider_cannot_work(
    kanban, fake_agents, isolated_home: Path, config: str, said: str, fix: str
) -> None:
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    path.write_text(config)
    code, checks = _doctor_checks(kanban)
    assert code == 1
    login = checks["codex login"]
    assert not login["ok"] and said in login["detail"] and fix in login["fix"]


def test_doctor_follows_the_profile_codex_would_use(kanban, fake_agents, isolated_home) -> None:
    path = _codex_config(isolated_home)
    path.parent.mkdir()
    path.write_text(
        'profile = "local"\n[profiles.local]\nmodel_provider = "ollama"\n'
        '[model_providers.broken]\nname = "b"\n'
    )
    login = _doctor_checks(kanban)[1]["codex login"]
    assert login["ok"] and login["detail"] == "no login needed: Codex's local ollama"


def test_doctor_catches_a_hermes_home_whose_model_settings_cannot_work(
    kanban, fake_agents, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kanban("setup", "codex", *PROVIDER).exit_code == 0
    assert kanban("setup", "hermes").exit_code == 0
    config = isolated_home / ".kanban" / "hermes" / "config.yaml"
    settings = json.loads(config.read_text())
    # No base_url: Hermes 0.19 looks for an OpenRouter key and exits at once.
    del settings["model"]["base_url"]
    config.write_text(json.dumps(settings))
    code, checks = _doctor_checks(kanban)
    assert code == 1
    home = checks["hermes home"]
    assert not home["ok"] and "model.base_url is missing" in home["detail"]
    assert home["fix"] == "run `kanban setup hermes`"
    assert kanban("setup", "hermes").exit_code == 0
    assert _doctor_checks(kanban)[1]["hermes home"]["ok"]
    # A session cap below the dispatcher's workers: Hermes refuses the workers past it.
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "max_concurrent_sessions": 2}))
    monkeypatch.setenv("KANBAN_MAX_WORKERS", "3")
    home = _doctor_checks(kanban)[1]["hermes home"]
    assert not home["ok"] and "max_concurrent_sessions to 2" in home["detail"]
    assert "up to 3 workers" in home["detail"] and "max_workers" in home["fix"]
    monkeypatch.setenv("KANBAN_MAX_WORKERS", "2")
    assert _doctor_checks(kanban)[1]["hermes home"]["ok"]
    # Its runtime starts `codex`: no codex, no Hermes worker.
    monkeypatch.setenv("KANBAN_CODEX_BIN", str(isolated_home / "no-codex"))
    home = _doctor_checks(kanban)[1]["hermes home"]
    assert not home["ok"] and "needs the codex program" in home["detail"]
    assert "KANBAN_CODEX_BIN" in home["fix"]


def _workspace_check(result: Result) -> dict | None:
    checks = [c for c in json.loads(result.stdout) if c["name"] == ".kanban.toml"]
    return checks[0] if checks else None


def test_doctor_checks_no_kanban_toml_outside_a_repository(kanban, fake_agents, tmp_path) -> None:
    assert _workspace_check(kanban("doctor", "--json")) is None
    named = kanban("doctor", "--repo", str(tmp_path), "--json")
    assert named.exit_code == 1
    check = _workspace_check(named)
    assert check is not None and not check["ok"] and "is not a git repository" in check["detail"]


def test_doctor_refuses_a_malformed_kanban_toml_with_its_line(
    kanban, fake_agents, tmp_path, monkeypatch
) -> None:
    repo = make_repo(tmp_path / "repo", {".kanban.toml": "[workspace]\nports = 'three'\n"})
    monkeypatch.chdir(repo)
    result = kanban("doctor")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if ".kanban.toml  " in line)
    assert line.startswith("BAD") and f"{repo}/.kanban.toml:2: ports must be a whole" in line
    assert "docs/workspace.md" in result.output
    assert any(line.startswith("ok ") and " git " in line for line in result.output.splitlines())


def test_doctor_says_when_the_kanban_toml_is_not_what_tasks_read(
    kanban, fake_agents, tmp_path
) -> None:
    repo = make_repo(tmp_path / "repo")
    check = _workspace_check(kanban("doctor", "--repo", str(repo), "--json"))
    assert check is not None and check["ok"] and "has none: the defaults" in check["detail"]
    (repo / ".kanban.toml").write_text('[workspace]\nports = 2\n[check]\ncommand = "make test"\n')
    check = _workspace_check(kanban("doctor", "--repo", str(repo / "."), "--json"))
    assert check is not None and check["ok"]
    assert "ports 2, check `make test`" in check["detail"]
    assert "not as committed at HEAD" in check["detail"]
    git(repo, "add", ".kanban.toml")
    git(repo, "commit", "-qm", "workspace")
    check = _workspace_check(kanban("doctor", "--repo", str(repo), "--json"))
    assert check is not None and check["ok"] and "not as committed" not in check["detail"]


@pytest.mark.e2e
def test_the_installed_kanban_command_sets_up_and_checks_with_the_real_agents(
    isolated_home: Path,
) -> None:
    kanban_bin = Path(sys.executable).parent / "kanban"
    environ = {
        **os.environ,
        "KANBAN_CONFIG": str(isolated_home / "none.toml"),
        "KANBAN_HERMES_BIN": os.environ.get(
            "KANBAN_HERMES_BIN", str(REPO_ROOT / ".tools" / "hermes" / "bin" / "hermes")
        ),
        "KANBAN_CODEX_BIN": os.environ.get(
            "KANBAN_CODEX_BIN", str(REPO_ROOT / ".tools" / "node_modules" / ".bin" / "codex")
        ),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kanban_bin), *args],
            env=environ,
            cwd=isolated_home,  # no repository, so no .kanban.toml to check
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    assert run("setup", "codex").returncode == 0
    assert run("setup", "hermes").returncode == 0
    # Without a Codex login or a model provider, a worker would wait for its timeout.
    doctor = run("doctor", "--json")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    checks = {check["name"]: check for check in json.loads(doctor.stdout)}
    assert not checks["codex login"]["ok"], checks["codex login"]
    assert "codex login" in checks["codex login"]["fix"]
    assert [name for name, check in checks.items() if not check["ok"]] == ["codex login"]
    (isolated_home / ".codex").mkdir()
    login = json.loads(run("doctor", "--json").stdout)
    # The real `codex login status` decides.
    assert "'Not logged in'" in next(c for c in login if c["name"] == "codex login")["detail"]
    with scripted_model.serve({"scenarios": []}) as server:
        provider = ("--model-provider-url", server.base_url, "--model", scripted_model.MODEL_NAME)
        assert run("setup", "codex", *provider).returncode == 0
        assert run("setup", "hermes", *provider).returncode == 0
        doctor = run("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "Hermes Agent v" in doctor.stdout and "codex-cli" in doctor.stdout
    assert f"no login needed: model provider kanban at {server.base_url}" in doctor.stdout
