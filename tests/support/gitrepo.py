"""Real git repositories, made with `git init`, and the tests' own `git`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(cwd: Path, *args: str, check: bool = True, strip: bool = True) -> str:
    """`git -C CWD ARGS...`'s stdout (`strip`: without the white space around it).

    The tests' own git never sees ``GIT_*`` variables, so a test that sets them checks only the
    code under test. With `check`, a failing git fails the test with git's stderr.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run(
        ["git", "-C", str(cwd), *args], env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip() if strip else result.stdout


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A new repository at `path` on branch main, with one commit of `files`.

    `files` maps names to texts; None gives a README, and an empty mapping an empty commit.
    """
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in ({"README": "hello\n"} if files is None else files).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", "first")
    return path
