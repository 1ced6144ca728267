"""orchestrator.workspace: a repository's `.kanban.toml`, read from a commit or a checkout and
checked as strictly as a batch file; which ignored files a `copy` / `link` glob selects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.gitrepo import git, make_repo

from orchestrator import workspace

EXAMPLE = """\
[workspace]
copy = [".env", "config/*.local.toml"]   # ignored files copied from the main checkout
link = ["node_modules/.cache"]           # or symlinked (shared, read-mostly)
setup = ["npm ci"]                       # run once per new worktree, before the first agent
teardown = ["docker compose down"]       # run when the worktree is removed
ports = 3                                # a block of free ports per running task
env = { NODE_ENV = "development" }

[check]
command = "npm test"                     # what "the work is right" means here
timeout = 600
gate = true                              # a task is done only when the check passes
"""


def test_the_issues_example_becomes_the_model() -> None:
    config = workspace.parse(EXAMPLE, "x/.kanban.toml")
    space = config.workspace
    assert config.found
    assert space.copy == (".env", "config/*.local.toml")
    assert space.link == ("node_modules/.cache",)
    assert [str(command) for command in space.setup] == ["npm ci"]
    assert space.setup[0].argv == ("/bin/sh", "-c", "npm ci")
    assert space.teardown[0].line == "docker compose down"
    assert space.ports == 3
    assert dict(space.env) == {"NODE_ENV": "development"}
    assert config.check == workspace.Check(workspace.Command(line="npm test"), 600.0, True)
    assert config.to_json()["check"] == {"command": "npm test", "timeout": 600.0, "gate": True}


def test_an_argv_runs_without_a_shell_and_a_lone_string_is_one_command() -> None:
    config = workspace.parse(
        '[workspace]\nsetup = "make deps"\nteardown = [["docker", "compose", "down"], "rm -f x"]\n'
        '[check]\ncommand = ["pytest", "-q"]\n',
        "f",
    )
    assert [c.argv for c in config.workspace.setup] == [("/bin/sh", "-c", "make deps")]
    assert config.workspace.teardown[0].argv == ("docker", "compose", "down")
    assert config.workspace.teardown[1].line == "rm -f x"
    assert config.check is not None
    assert config.check.command.argv == ("pytest", "-q")
    assert str(config.check.command) == "pytest -q"
    assert config.check.timeout == workspace.DEFAULT_CHECK_TIMEOUT and not config.check.gate


def test_an_empty_file_declares_the_defaults() -> None:
    config = workspace.parse("# nothing yet\n", "f")
    assert config.found and config.workspace == workspace.Workspace() and config.check is None


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("[workspace]\nports = 3\n[checks]\ncommand = 'x'\n", 3, "unknown table 'checks'"),
        ("[workspace]\ncopy = []\nsetpu = ['x']\n", 3, "unknown key 'setpu' in [workspace]"),
        ("workspace = 3\n", 1, "workspace must be a table"),
        ("[workspace]\nports = '3'\n", 2, "ports must be a whole number from 0 to 16"),
        ("[workspace]\n\nports = 99\n", 3, "from 0 to 16"),
        ("[workspace]\nports = true\n", 2, "ports must be a whole number"),
        ("[workspace]\nports = -1\n", 2, "ports must be a whole number"),
        ("[workspace]\ncopy = '.env'\n", 2, "copy must be a list of globs"),
        ("[workspace]\ncopy = ['/etc/passwd']\n", 2, "must be relative to the repository"),
        ("[workspace]\nlink = ['~/.cache']\n", 2, "must be relative to the repository"),
        ("[workspace]\ncopy = ['a/../../x']\n", 2, "may not use '..'"),
        ("[workspace]\ncopy = ['.git/config']\n", 2, "reaches into .git"),
        ("[workspace]\nlink = ['./']\n", 2, "names the whole repository"),
        ("[workspace]\nsetup = 3\n", 2, "setup must be a list of commands"),
        ("[workspace]\nsetup = ['ok', 3]\n", 2, "setup[1] must be a string"),
        ("[workspace]\nsetup = ['  ']\n", 2, "setup[0] must be a non-empty line"),
        ("[workspace]\nteardown = [[]]\n", 2, "teardown[0] must be a string"),
        ("[workspace]\nenv = 'A=1'\n", 2, "env must be a table"),
        ("[workspace]\nenv = { A = 1 }\n", 2, "env A must be a string"),
        ("[workspace]\nenv = { KANBAN_DB = '/tmp/x' }\n", 2, "env may not set KANBAN_DB"),
        ("[workspace]\nenv = { GIT_DIR = '/tmp/x' }\n", 2, "env may not set GIT_DIR"),
        ("[workspace]\nenv = { 'A B' = 'x' }\n", 2, "env name 'A B'"),
        ("[workspace]\n\n[check]\ngate = true\n", 3, "[check] needs a command"),
        ("[check]\ncommand = 'x'\ntimeout = 0\n", 3, "timeout must be a positive, finite"),
        ("[check]\ncommand = 'x'\ntimeout = inf\n", 3, "timeout must be a positive, finite"),
        ("[check]\ncommand = 'x'\ntimeout = '10'\n", 3, "timeout must be a positive"),
        ("[check]\ncommand = 'x'\ngate = 'yes'\n", 3, "gate must be true or false"),
        ("[check]\ncommand = ['', 'x']\n", 2, "must name a program"),
        ('[check]\ncommand = "a\\u0000b"\n', 2, "without NUL bytes"),
        ("workspace.ports = 'x'\n", 1, "ports must be a whole number"),
        ("[check]\ncommand = 'x'\n[workspace.env]\nA = 1\n", 3, "env A must be a string"),
        ("[workspace]\nports = 1\nenv.A = 1\n", 3, "env A must be a string"),
        ("[workspace.env]\nA = 'x'\n[workspace.oops]\n", 3, "unknown key 'oops'"),
        ("[workspace]\nports = 3\nports = 4\n", 3, "not valid TOML"),
        ("[workspace\n", 1, "not valid TOML"),
    ],
)
def test_a_malformed_file_is_refused_with_its_line_and_reason(text, line, reason) -> None:
    with pytest.raises(workspace.WorkspaceError) as caught:
        workspace.parse(text, "/r/.kanban.toml")
    assert caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"/r/.kanban.toml:{line}: ")


def test_a_repository_without_the_file_has_the_defaults(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert workspace.from_ref(repo, "HEAD") == workspace.RepoConfig()
    assert workspace.from_checkout(repo) == workspace.RepoConfig()
    assert not workspace.from_ref(repo, "main").found


def test_the_file_is_read_from_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".kanban.toml": "[workspace]\nports = 2\n"})
    first = git(repo, "rev-parse", "HEAD")
    (repo / ".kanban.toml").write_text("[workspace]\nports = 5\n")
    git(repo, "commit", "-qam", "more ports")
    (repo / ".kanban.toml").write_text("[workspace]\nports = 'uncommitted'\n")
    assert workspace.from_ref(repo, first).workspace.ports == 2
    assert workspace.from_ref(repo, "main").workspace.ports == 5
    with pytest.raises(workspace.WorkspaceError) as caught:
        workspace.from_checkout(repo)
    assert str(caught.value).startswith(f"{repo / '.kanban.toml'}:2: ports must be")


def test_a_malformed_committed_file_names_the_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".kanban.toml": "[workspace]\ncopy = ['../up']\n"})
    with pytest.raises(workspace.WorkspaceError) as caught:
        workspace.from_ref(repo, "main")
    message = str(caught.value)
    assert message.startswith(f"{repo / '.kanban.toml'}:2: copy: '../up' may not use '..'")
    assert message.endswith("(as committed at main)")


def test_a_committed_link_or_directory_is_not_a_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"real.toml": "[workspace]\n"})
    os.symlink("real.toml", repo / ".kanban.toml")
    git(repo, "add", ".kanban.toml")
    git(repo, "commit", "-qm", "link")
    with pytest.raises(workspace.WorkspaceError, match="is a symbolic link, not a file"):
        workspace.from_ref(repo, "HEAD")
    other = make_repo(tmp_path / "other", {".kanban.toml/x": "y"})
    with pytest.raises(workspace.WorkspaceError, match="is a directory, not a file"):
        workspace.from_ref(other, "HEAD")
    with pytest.raises(workspace.WorkspaceError, match="is a directory, not a file"):
        workspace.from_checkout(other)


def test_an_unknown_ref_is_a_git_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(workspace.git.GitError):
        workspace.from_ref(repo, "no-such-branch")
    with pytest.raises(workspace.git.InvalidName):
        workspace.from_ref(repo, "--output=x")


# --- select ------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with ignored files, a tracked file that an ignore pattern also matches,
    an ignored directory, and one that holds a tracked file."""
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitignore": ".env\n*.local.toml\nnode_modules/\nbuild/\nlinks/\n",
            "config/base.toml": "tracked\n",
            "src/app.py": "print()\n",
        },
    )
    files = {
        ".env": "SECRET=1\n",
        "services/api/.env": "API=1\n",
        "config/dev.local.toml": "x\n",
        "node_modules/.cache/a/b": "cache\n",
        "node_modules/pkg/index.js": "js\n",
        "build/out.bin": "bin\n",
        "build/keep.txt": "tracked\n",
        "config/team.local.toml": "tracked too\n",
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-f", "build/keep.txt", "config/team.local.toml")
    git(repo, "commit", "-qm", "tracked despite the ignore patterns")
    return repo


def test_select_takes_ignored_files_and_never_tracked_ones(checkout: Path) -> None:
    assert workspace.select(checkout, [".env", "config/*.local.toml", "missing.env"]) == (
        ".env",
        "config/dev.local.toml",
    )
    assert workspace.select(checkout, ["src/app.py", "config/*", ".gitignore"]) == (
        "config/dev.local.toml",
    )


def test_select_takes_a_wholly_ignored_directory_but_not_one_holding_tracked_files(
    checkout: Path,
) -> None:
    assert workspace.select(checkout, ["node_modules/.cache", "build"]) == ("node_modules/.cache",)
    assert workspace.select(checkout, ["build/*"]) == ("build/out.bin",)
    # What a selected directory holds is not listed again.
    assert workspace.select(checkout, ["node_modules", "node_modules/*/index.js"]) == (
        "node_modules",
    )


def test_double_star_matches_any_depth_and_nothing_is_fine(checkout: Path) -> None:
    assert workspace.select(checkout, ["**/.env"]) == (".env", "services/api/.env")
    assert workspace.select(checkout, ["*.nothing", "no/such/dir/*"]) == ()
    assert workspace.select(checkout, []) == ()


def test_select_never_leads_outside_the_repository(checkout: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.env").write_text("x\n")
    (outside / "deep" / ".env").write_text("x\n")
    (checkout / "links").mkdir()
    os.symlink(outside / "secret.env", checkout / "links" / "secret.env")
    os.symlink(outside / "deep", checkout / "links" / "deep")
    os.symlink(checkout / ".env", checkout / "links" / "inside.env")
    assert workspace.select(checkout, ["links/*", "links/deep/.env", "**/.env"]) == (
        ".env",
        "links/inside.env",
        "services/api/.env",
    )


def test_select_refuses_globs_that_leave_the_repository(checkout: Path) -> None:
    with pytest.raises(workspace.errors.InvalidInput, match=r"may not use '\.\.'"):
        workspace.select(checkout, ["../*"])
    assert workspace.normalize_glob("./config//*.toml") == "config/*.toml"


def test_a_file_that_is_not_utf8_is_refused_from_a_commit_and_a_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {})
    (repo / ".kanban.toml").write_bytes(b'[workspace]\nenv = { A = "\xff" }\n')
    git(repo, "add", ".kanban.toml")
    git(repo, "commit", "-qm", "latin-1")
    for read in (lambda: workspace.from_ref(repo, "HEAD"), lambda: workspace.from_checkout(repo)):
        with pytest.raises(workspace.WorkspaceError, match="is not UTF-8 text"):
            read()
