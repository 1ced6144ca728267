"""The repositories of bench.dispatch's workspace section, and its baseline done by hand.

Two repositories with the same tracked tree (clones of the benchmark's repository), the same
committed ``.gitignore`` (``secrets/``) and the same `FILES` ignored files
``secrets/f00.env``, ``secrets/f01.env``, ...; one of them also commits a ``.kanban.toml``
(docs/workspace.md) that copies those files into each new worktree and runs a trivial setup
command. Comparing tasks in the two shows what the workspace adds.

The baseline (`ByHand`) does what that file asks the way a person would type it, one process
after another: ``git worktree add``, ``cp -p`` of the same files, the setup command through
``/bin/sh -c`` in the new tree, then the agent there.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

FILES = 20
SETUP = "true"
SHELL = "/bin/sh"
KANBAN_TOML = f'[workspace]\ncopy = ["secrets/*.env"]\nsetup = ["{SETUP}"]\n'


@dataclasses.dataclass(frozen=True)
class Repo:
    path: Path
    sha: str  # the commit tasks and hand-made trees start from
    workspace: bool  # commits the .kanban.toml

    @property
    def name(self) -> str:
        return "with" if self.workspace else "without"

    def secrets(self) -> list[str]:
        """The ignored files, relative to the repository, as a shell's glob would list them."""
        return sorted(f"secrets/{p.name}" for p in (self.path / "secrets").glob("*.env"))


def _git(repo: Path, environ: dict[str, str], *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=environ, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repos(source: Path, under: Path, environ: dict[str, str]) -> tuple[Repo, Repo]:
    """(with the .kanban.toml, without it): clones of `source` with the same ignored files."""
    under.mkdir()
    made = []
    for workspace in (True, False):
        path = under / ("with-workspace" if workspace else "without-workspace")
        _git(under, environ, "clone", "-q", str(source), str(path))
        (path / ".gitignore").write_text("secrets/\n")
        if workspace:
            (path / ".kanban.toml").write_text(KANBAN_TOML)
        _git(path, environ, "add", ".")
        _git(path, environ, "commit", "-q", "-m", "ignore secrets/; declare the workspace")
        (path / "secrets").mkdir()
        for n in range(FILES):
            (path / "secrets" / f"f{n:02d}.env").write_text(
                f"# secret {n}\nAPI_KEY_{n}={'0123456789abcdef' * 4}\nDB_URL=postgres://db/{n}\n"
            )
        made.append(Repo(path, _git(path, environ, "rev-parse", "HEAD"), workspace))
    with_toml, without = made
    if with_toml.secrets() != without.secrets() or len(without.secrets()) != FILES:
        raise RuntimeError("the two repositories do not hold the same ignored files")
    return with_toml, without


class ByHand:
    """Worktrees made by hand under `root`; they are kept, never removed (trap 2 of
    ../../shared/benchmarking.md: deleting trees between samples slows the disk down)."""

    def __init__(self, root: Path, environ: dict[str, str]) -> None:
        self.root = root
        self.environ = environ
        self.made = 0

    def _run(self, argv: list[str], cwd: Path) -> float:
        started = time.perf_counter()
        subprocess.run(
            argv,
            cwd=cwd,
            env=self.environ,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started

    def start(self, repo: Repo, agent: list[str], marker: Path) -> dict[str, float]:
        """Seconds for each step (``add``, ``cp``, ``setup``: spawn to exit; ``agent``: spawn
        to its first instruction, which writes ``time.time()`` to `marker`), and ``total``: from
        the first spawn to the agent's first instruction. The repository without the
        .kanban.toml gets what it asks for: a worktree, then the agent."""
        n = self.made
        self.made += 1
        tree = self.root / f"{repo.name}-{n}"
        began = time.time()
        steps = {
            "add": self._run(
                ["git", "worktree", "add", "-q", "-b", f"hand/{n}", str(tree), repo.sha], repo.path
            )
        }
        if repo.workspace:
            # As typed: `cp -p --parents secrets/*.env TREE` (the shell expands the glob).
            steps["cp"] = self._run(
                ["cp", "-p", "--parents", *repo.secrets(), str(tree)], repo.path
            )
            steps["setup"] = self._run([SHELL, "-c", SETUP], tree)
        marker.unlink(missing_ok=True)
        spawned = time.time()
        self._run(agent, tree)
        first = float(marker.read_text())
        steps["agent"] = first - spawned  # spawn to first instruction
        steps["total"] = first - began
        if repo.workspace and len(list((tree / "secrets").glob("*.env"))) != FILES:
            raise RuntimeError(f"{tree}: the copies are missing")
        return steps
