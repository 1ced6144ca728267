"""`python -m testing.demo`, run as `make demo` runs it, with real Codex and Hermes workers.

It runs in a directory of its own under the repository's ignored ``demo-output/``, as a user's
demo does (wherever the clone is: under /tmp the demo takes the temporary roots out of its
Codex sandbox), and removes it afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO_ROOT
from support.cli import kanban
from support.gitrepo import git

# title -> {path: text that must be in that file on the task's branch}
EXPECTED = {
    "Add slugify() to textutils.py": {"textutils.py": "def slugify"},
    "Document the helpers in README.md": {"README.md": "## Usage"},
    # It ran after the two above: their work is in its branch too.
    "Write CHANGELOG.md for the release": {
        "CHANGELOG.md": "## 0.2.0",
        "textutils.py": "def slugify",
        "README.md": "## Usage",
    },
    "Add a stats module (via subtasks)": {"stats.py": "def mean", "test_stats.py": "StatsTest"},
    "Write stats.py: mean() and median()": {"stats.py": "def median"},
    "Write test_stats.py for stats.py": {"test_stats.py": "def test_median"},
}


@pytest.fixture
def output() -> Iterator[Path]:
    parent = REPO_ROOT / "demo-output"
    path = parent / f"test-{secrets.token_hex(4)}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


@pytest.mark.e2e
def test_the_demo_runs_every_task_to_done_with_its_files_on_its_branch(
    output: Path, isolated_home: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testing.demo", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Demo finished" in done.stdout
    assert "The model was SCRIPTED" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr

    board = json.loads(
        kanban(
            "list",
            "--json",
            env={
                **os.environ,
                "KANBAN_DB": str(output / "board.db"),
                "KANBAN_CONFIG": str(output / "kanban-config.toml"),
            },
        ).stdout
    )
    by_title = {task["title"]: task for task in board}
    assert set(by_title) == set(EXPECTED)
    assert {task["status"] for task in board} == {"done"}
    runtimes = {title: task["runtime"] for title, task in by_title.items()}
    assert set(runtimes.values()) == {"codex", "hermes"}
    parent = by_title["Add a stats module (via subtasks)"]
    assert {
        by_title[t]["parent"]
        for t in ("Write stats.py: mean() and median()", "Write test_stats.py for stats.py")
    } == {parent["id"]}
    for title, files in EXPECTED.items():
        for path, text in files.items():
            assert text in git(output / "repo", "show", f"{by_title[title]['branch']}:{path}")
            assert text in git(output / "repo", "show", f"main:{path}")  # landed
    top_level = [task for task in board if not task["parent"]]
    assert all(task["landed"] for task in top_level)
    tests_on_main = done.stdout.split("The project's tests, on main:", 1)[1]
    assert "Ran 3 tests" in tests_on_main.split("Logs", 1)[0]

    # The hints to look around work as printed, from where the demo ran, with no `kanban` on
    # the PATH and KANBAN_DB naming another board.
    lines = done.stdout.splitlines()
    start = lines.index("To look around the demo's board, from this directory:") + 1
    hints = [line.strip() for line in lines[start : start + 3]]
    assert [shlex.split(h)[-2:] for h in hints] == [
        ["logs", "t_1"],
        ["show", "t_1"],
        ["board", "--all"],
    ]
    outputs = []
    for hint in hints:
        shown = subprocess.run(
            shlex.split(hint),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PATH": "/usr/bin:/bin"},
        )
        assert shown.returncode == 0, (hint, shown.stderr)
        outputs.append(shown.stdout)
    logs, show, board_table = outputs
    assert logs.strip() and board_table.strip()
    assert "Add slugify() to textutils.py" in show

    # Nothing of the user's (here: the test's isolated home) was read into or written.
    for name in (".codex", ".hermes", ".kanban"):
        assert not (isolated_home / name).exists()
