"""The fixtures of the end-to-end tests: a world (tests/support/agents.py) on the real agents.

The real agents come from ``$KANBAN_CODEX_BIN`` / ``$KANBAN_HERMES_BIN`` (the Makefile exports
them), else from ``.tools/`` (``make tools``). A missing agent fails the test: these tests are
the proof that kanban works with the real programs, and skipping them would hide that.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO_ROOT
from support.agents import World, outside_temporary_dirs


def agent_binary(env_var: str, relative: str) -> Path:
    binary = Path(os.environ.get(env_var) or REPO_ROOT / relative)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"{binary} is not an executable: run `make tools`, or set {env_var}")
    return binary.absolute()


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    return agent_binary("KANBAN_CODEX_BIN", ".tools/node_modules/.bin/codex")


@pytest.fixture(scope="session")
def hermes_bin() -> Path:
    return agent_binary("KANBAN_HERMES_BIN", ".tools/hermes/bin/hermes")


@pytest.fixture
def world(
    tmp_path: Path, isolated_home: Path, codex_bin: Path, hermes_bin: Path
) -> Iterator[World]:
    """A world under the isolated HOME in tmp_path, itself in a temporary directory."""
    made = World(tmp_path, isolated_home, codex_bin, hermes_bin)
    made.make_repo()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def user_home_world(isolated_home: Path, codex_bin: Path, hermes_bin: Path) -> Iterator[World]:
    """A world whose homes, board and repository are outside every temporary directory."""
    root = outside_temporary_dirs()
    home = root / "home"
    home.mkdir()
    shutil.copy(isolated_home / ".gitconfig", home / ".gitconfig")
    made = World(root, home, codex_bin, hermes_bin)
    made.make_repo()
    try:
        yield made
    finally:
        made.close()
        shutil.rmtree(root, ignore_errors=True)
