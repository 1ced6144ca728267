"""What `kanban init` proposes for a repository: a commented ``.kanban.toml``, its `setup` and
`check` guessed from the files at the repository's root.

What is recognised (first match of each kind; a `make test` target wins the check)::

    package.json + package-lock.json    npm ci                          npm test
                 + pnpm-lock.yaml       pnpm install --frozen-lockfile  pnpm test
                 + yarn.lock            yarn install --frozen-lockfile  yarn test
                 + bun.lock(b)          bun install --frozen-lockfile   bun run test
                 (no lockfile)          npm install                     npm test
    pyproject.toml + uv.lock            uv sync                         uv run pytest
                   + poetry.lock        poetry install                  poetry run pytest
                   (otherwise)          a .venv, pip install -e .       .venv/bin/python -m pytest
    Makefile with a `test:` target                                      make test
    Cargo.toml                          cargo build                     cargo test
    go.mod                              go mod download                 go test ./...

A test command is proposed only where the project has tests to run (a ``test`` script, pytest
in sight). The common env files (``.env``, ``.env.local``) go into `copy` when git ignores
them. The text always parses with `orchestrator.workspace.parse` (a test holds it to that).
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from orchestrator import git, workspace

ENV_FILES = (".env", ".env.local")
# npm's own placeholder for a project without tests.
_NO_TEST = "no test specified"
_JS = (
    ("package-lock.json", "npm ci", "npm test"),
    ("npm-shrinkwrap.json", "npm ci", "npm test"),
    ("pnpm-lock.yaml", "pnpm install --frozen-lockfile", "pnpm test"),
    ("yarn.lock", "yarn install --frozen-lockfile", "yarn test"),
    ("bun.lock", "bun install --frozen-lockfile", "bun run test"),
    ("bun.lockb", "bun install --frozen-lockfile", "bun run test"),
)
_PY_EXTRAS = ("test", "tests", "dev")


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A ``.kanban.toml`` for one repository, and what it was guessed from."""

    copy: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()  # shell lines
    check: str | None = None
    other_checks: tuple[str, ...] = ()  # what else could be the check, offered in a comment
    sources: tuple[str, ...] = ()  # the files the guesses come from
    notes: tuple[str, ...] = ()  # what the user should know or do

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def render(self) -> str:
        """The commented file."""
        found = ", ".join(self.sources) if self.sources else "nothing it recognised"
        lines = [
            "# What a task's worktree needs beyond a bare checkout of this repository.",
            "# kanban reads this file from each task's base commit: commit it to use it.",
            "# `kanban doctor` checks it; every key is described in kanban's docs/workspace.md.",
            f"# Written by `kanban init`, guessed from: {found}.",
            *(f"# Note: {note}" for note in self.notes),
            "",
            "[workspace]",
            "# Ignored files copied from the main checkout into each new worktree (globs;",
            "# missing files and files git tracks are skipped).",
            _key("copy", list(self.copy), example=list(ENV_FILES[:1])),
            "# Ignored files or directories symlinked instead: shared by every worktree.",
            '# link = ["node_modules/.cache"]',
            "# Run in each new worktree before its first agent starts: a string runs with",
            "# /bin/sh -c, a list of strings as the program and its arguments.",
            _key("setup", list(self.setup), example=["make deps"]),
            "# Seconds each setup command may take (a slower one fails the attempt).",
            "# setup_timeout = 600",
            "# Run before `kanban gc` removes a worktree.",
            '# teardown = ["docker compose down"]',
            "# Free ports for each running task: $KANBAN_PORT (the first) and $KANBAN_PORTS.",
            "# ports = 1",
            "# Variables for setup, the agent and the check.",
            '# env = { NODE_ENV = "development" }',
            "",
            '# What "the work is right" means here, run in the task\'s worktree.',
        ]
        check = [
            "[check]",
            f"command = {_toml(self.check or 'make test')}",
            *(f"# or: command = {_toml(other)}" for other in self.other_checks),
            "timeout = 600",
            "# true: a task is done only when its check passes.",
            "gate = false",
        ]
        lines += check if self.check else [f"# {line}" for line in check]
        return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    return tomlkit.item(value).as_string()


def _key(name: str, values: list[str], *, example: list[str]) -> str:
    return f"{name} = {_toml(values)}" if values else f"# {name} = {_toml(example)}"


def propose(top: Path) -> Proposal:
    """Guess a ``.kanban.toml`` for the checkout at `top` (its root) from what is there."""
    setup: list[str] = []
    checks: list[str] = []
    sources: list[str] = []
    notes: list[str] = []
    for guess in (_node, _python, _cargo, _go):
        found = guess(top, notes)
        if found is not None:
            source, lines, check = found
            sources.append(source)
            setup += lines
            checks += [check] if check else []
    makefiles = (top / name for name in ("GNUmakefile", "makefile", "Makefile"))
    makefile = next((path for path in makefiles if path.is_file()), None)
    if makefile is not None and re.search(r"^test\s*:(?!=)", _read(makefile), re.MULTILINE):
        sources.append(f"{makefile.name} (a test target)")
        checks.insert(0, "make test")
    return Proposal(
        copy=workspace.select(top, ENV_FILES),
        setup=tuple(setup),
        check=checks[0] if checks else None,
        other_checks=tuple(checks[1:]),
        sources=tuple(sources),
        notes=tuple(notes),
    )


_Guess = tuple[str, list[str], str | None] | None


def _node(top: Path, notes: list[str]) -> _Guess:
    if not (top / "package.json").is_file():
        return None
    try:
        package = json.loads(_read(top / "package.json"))
        scripts = package.get("scripts") if isinstance(package, dict) else None
    except ValueError:
        notes.append("package.json is not valid JSON, so nothing was guessed from it")
        return None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    has_tests = isinstance(test, str) and _NO_TEST not in test
    for lockfile, install, run_tests in _JS:
        if (top / lockfile).is_file():
            return f"package.json ({lockfile})", [install], run_tests if has_tests else None
    notes.append("package.json has no lockfile: setup runs `npm install`, which may vary")
    return "package.json", ["npm install"], "npm test" if has_tests else None


def _python(top: Path, notes: list[str]) -> _Guess:
    if not (top / "pyproject.toml").is_file():
        return None
    text = _read(top / "pyproject.toml")
    has_tests = "pytest" in text or any(
        (top / name).exists() for name in ("tests", "test", "conftest.py", "pytest.ini")
    )
    if (top / "uv.lock").is_file():
        return "pyproject.toml (uv.lock)", ["uv sync"], "uv run pytest" if has_tests else None
    if (top / "poetry.lock").is_file():
        check = "poetry run pytest" if has_tests else None
        return "pyproject.toml (poetry.lock)", ["poetry install"], check
    try:
        extras = tomllib.loads(text).get("project", {}).get("optional-dependencies", {})
    except (tomllib.TOMLDecodeError, AttributeError):
        extras = {}
    extra = next((name for name in _PY_EXTRAS if name in extras), None)
    target = f"'.[{extra}]'" if extra else "."
    # A file inside, so that `.venv/` (a pattern for directories only) counts too.
    ignored = git.run(top, "check-ignore", "-q", ".venv/pyvenv.cfg", ok=(0, 1)).status == 0
    if not ignored:
        notes.append(
            "setup makes a .venv in the worktree, which git does not ignore here: add .venv "
            "to .gitignore, or kanban commits it with the task's work"
        )
    setup = ["python3 -m venv .venv", f".venv/bin/python -m pip install -e {target}"]
    return "pyproject.toml", setup, ".venv/bin/python -m pytest" if has_tests else None


def _cargo(top: Path, notes: list[str]) -> _Guess:
    return ("Cargo.toml", ["cargo build"], "cargo test") if (top / "Cargo.toml").is_file() else None


def _go(top: Path, notes: list[str]) -> _Guess:
    return ("go.mod", ["go mod download"], "go test ./...") if (top / "go.mod").is_file() else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
