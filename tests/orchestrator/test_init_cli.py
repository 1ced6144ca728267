"""`kanban init`: a commented `.kanban.toml` guessed from the repository, which parses with
the model, and never written over an existing one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.cli import kanban
from support.gitrepo import git, make_repo

from orchestrator import workspace
from orchestrator.cli import init, main


def run_init(*args: str) -> Result:
    main.cli.add_command(init.init)
    return CliRunner().invoke(main.cli, ["init", *args], catch_exceptions=False)


def written(repo: Path) -> workspace.RepoConfig:
    return workspace.from_checkout(repo)


def test_init_on_a_node_project_guesses_npm_and_copies_the_ignored_env_file(
    tmp_path: Path,
) -> None:
    repo = make_repo(
        tmp_path / "web",
        {
            "package.json": json.dumps({"scripts": {"test": "vitest run"}}),
            "package-lock.json": "{}",
            ".gitignore": ".env\nnode_modules/\n",
            ".env.local": "tracked, so it is in every worktree already\n",
        },
    )
    (repo / ".env").write_text("API_KEY=x\n")
    result = run_init(str(repo))
    assert result.exit_code == 0, result.output
    assert f"Wrote {repo / '.kanban.toml'}, guessed from package.json (package-lock.json)" in (
        result.stdout
    )
    assert "`kanban doctor` checks it" in result.stdout
    config = written(repo)
    assert config.workspace.copy == (".env",)
    assert [str(command) for command in config.workspace.setup] == ["npm ci"]
    assert config.check is not None and str(config.check.command) == "npm test"
    assert config.check.gate is False
    assert config.workspace.ports == 0 and config.workspace.link == ()


def test_init_on_a_python_project_makes_a_venv_and_runs_pytest(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "lib",
        {
            "pyproject.toml": '[project]\nname = "lib"\n'
            '[project.optional-dependencies]\ntest = ["pytest"]\n',
            "tests/test_lib.py": "def test(): pass\n",
            ".gitignore": ".venv/\n",
        },
    )
    result = run_init(str(repo))
    assert result.exit_code == 0, result.output
    assert "Note:" not in result.stdout
    config = written(repo)
    assert [str(command) for command in config.workspace.setup] == [
        "python3 -m venv .venv",
        ".venv/bin/python -m pip install -e '.[test]'",
    ]
    assert config.check is not None
    assert config.check.command.argv == ("/bin/sh", "-c", ".venv/bin/python -m pytest")
    assert config.workspace.copy == ()


def test_init_warns_when_the_venv_that_setup_makes_would_be_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "lib", {"pyproject.toml": '[project]\nname = "lib"\n'})
    result = run_init(str(repo))
    assert "Note: setup makes a .venv in the worktree, which git does not ignore" in result.stdout
    assert "# Note: setup makes a .venv" in (repo / ".kanban.toml").read_text()
    assert written(repo).check is None  # no tests in sight: no check proposed


@pytest.mark.parametrize(
    ("files", "setup", "check", "others"),
    [
        ({"Cargo.toml": "[package]\n"}, ["cargo build"], "cargo test", ()),
        ({"go.mod": "module x\n"}, ["go mod download"], "go test ./...", ()),
        (
            {"go.mod": "module x\n", "Makefile": "test: build\n\tgo test ./...\n"},
            ["go mod download"],
            "make test",
            ("go test ./...",),
        ),
        (
            {"package.json": '{"scripts": {"test": "jest"}}', "pnpm-lock.yaml": ""},
            ["pnpm install --frozen-lockfile"],
            "pnpm test",
            (),
        ),
        (
            {"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\""}}'},
            ["npm install"],
            None,
            (),
        ),
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\n", "uv.lock": ""},
            ["uv sync"],
            "uv run pytest",
            (),
        ),
        ({"Makefile": "TEST := 1\ntest := x\n"}, [], None, ()),
        ({"README": "hi\n"}, [], None, ()),
    ],
)
def test_init_guesses_setup_and_check_from_the_files_it_finds(
    tmp_path: Path, files, setup, check, others
) -> None:
    repo = make_repo(tmp_path / "repo", files)
    result = run_init(str(repo))
    assert result.exit_code == 0, result.output
    config = written(repo)
    assert config.found
    assert [str(command) for command in config.workspace.setup] == setup
    assert (config.check and str(config.check.command)) == check
    text = (repo / ".kanban.toml").read_text()
    for other in others:
        assert f'# or: command = "{other}"' in text


def test_init_shows_instead_of_overwriting_an_existing_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"go.mod": "module x\n", ".kanban.toml": "# mine\n"})
    result = run_init(str(repo))
    assert result.exit_code == 0
    assert (repo / ".kanban.toml").read_text() == "# mine\n"
    assert "exists and was left as it is" in result.stderr
    assert workspace.parse(result.stdout, "shown").check is not None  # stdout is the proposal
    shown = json.loads(run_init(str(repo), "--json").stdout)
    assert shown["written"] is False and shown["path"] == str(repo / ".kanban.toml")
    assert shown["setup"] == ["go mod download"] and shown["check"] == "go test ./..."
    assert shown["text"] == result.stdout


def test_init_outside_a_repository_is_an_error(tmp_path: Path) -> None:
    result = run_init(str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path} is not in a git checkout")


def test_init_writes_at_the_root_of_the_repository_it_runs_in(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"src/main.go": "package main\n", "go.mod": "module x\n"})
    kanban("init", cwd=repo / "src")
    assert git(repo, "status", "--porcelain") == "?? .kanban.toml"
    assert str(written(repo).workspace.setup[0]) == "go mod download"
