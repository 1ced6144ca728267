"""What landing costs: `kanban land` of done tasks, against the same merges by plain git.

Setup, not measured, once per repetition and per case: a repository of ``--files`` files
(copied from one template, so every repetition starts alike), a board of its own, and
``--tasks`` tasks made done by a real ``kanban dispatch --until-idle --max-workers 2`` (real
worktrees, branches and commits): ``--tasks - --chain`` independent tasks that each write a
file of their own (``task_007.txt``), and a chain of ``--chain`` tasks, each ``after`` the
previous one, that append their line to one shared ``chain.txt`` (a dependent starts with its
blockers' branches merged in, so each chain branch holds the ones before it). The runtime is
``command`` (``/bin/sh -c "echo ... > file"``): no agent.

Measured, each case on its own fresh setup (one landing consumes it):

1. ``kanban land --all --json``, the repository has no check (no ``.kanban.toml`` at all: what
   a repository without a check costs, its lookup of the file included; ``--no-check`` on a
   repository that has one would skip that lookup and so flatter kanban);
2. the same where the repository commits ``.kanban.toml`` with ``[check] command = "true"``
   (run as ``/bin/sh -c true`` on each merged result, in kanban's scratch worktree);
3. the baseline for each: the same branches, in the same (dependency) order, merged by plain
   git in the user's checkout of ``main``, the way one would script it without kanban: one
   ``bash`` process looping over ``git merge -q --no-ff -m MSG BRANCH`` (and, for case 2,
   ``/bin/sh -c true`` after each merge, the check as kanban runs it). It runs in a ``git clone
   --no-local`` of that same repository made during setup, its task branches created as local
   branches.

Both sides are one process started by the benchmark and timed from spawn to exit; kanban's
figure includes its scratch worktree's creation (once per board and repository) and its board
writes, and the user's checkout fast-forwarded after each task. The four measurements of a
repetition run back to back (the disk slows down after mass deletion, ../../shared/
benchmarking.md, trap 2: nothing is deleted before the end, and the order alternates between
repetitions: baseline first in even ones, kanban first in odd ones). Also timed: ``kanban land
--all`` with nothing left to land, kanban's fixed cost (start-up, board, query).

Every landing is verified, so a failure cannot pass for a fast run: exit code 0; every task
``landed`` in kanban's JSON, with a passed check in case 2 and none in case 1; ``main`` holds
each task's file and ``chain.txt`` with its lines in order, in the branch and in the checkout;
as many merge commits as tasks; and kanban's final tree is the baseline's, object for object.

Run on demand: ``.venv/bin/python -m bench.land`` (about 2 minutes on 2 CPUs, then about 1.5
more to delete the temporary directory's 300 worktrees, after which the disk is slow for a few
minutes: trap 2 again); smaller: ``--tasks 20 --chain 5 --reps 1 --files 500``. Everything
lives in a temporary directory with its own HOME, board and worktree root; nothing touches
~/.kanban.
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from board import connection, tasks
from orchestrator import landing

ROOT = Path(__file__).resolve().parent.parent
KANBAN = str(Path(sys.executable).with_name("kanban"))
CHECK = "true"
KANBAN_TOML = f'[check]\ncommand = "{CHECK}"\n'
CASES = ("nocheck", "check")

# The user's loop: one merge per branch, in order, stopping at the first failure.
MERGE_LOOP = """set -e
check=$1; shift
for branch in "$@"; do
    git merge -q --no-ff -m "Land $branch" "$branch"
    if [ -n "$check" ]; then /bin/sh -c "$check"; fi
done
"""


# --- numbers -----------------------------------------------------------------------------


def med(values: list[float], digits: int) -> str:
    return (
        f"{statistics.median(values):.{digits}f}"
        f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def ratio(measured: list[float], baseline: list[float]) -> str:
    """The median of the ratios paired by repetition, with their range."""
    ratios = [m / b for m, b in zip(measured, baseline, strict=True)]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


# --- the world ---------------------------------------------------------------------------


def git(repo: Path, environ: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        env=environ,
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclasses.dataclass(frozen=True)
class Setup:
    """One case of one repetition: a repository with its done tasks, and a clone of it."""

    case: str
    environ: dict[str, str]  # with this setup's KANBAN_DB
    db_path: str
    repo: Path  # the user's checkout kanban lands into
    clone: Path  # the same repository, for the baseline
    base: str  # main before landing
    branches: list[str]  # the task branches, in landing order
    files: list[str]  # each independent task's file


class World:
    def __init__(self, tmp: Path, files: int) -> None:
        self.tmp = tmp
        home = tmp / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@kanban.invalid\n")
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GIT_", "KANBAN_", "HERMES_KANBAN_"))
        }
        self.env.update(
            HOME=str(home),
            KANBAN_WORKTREE_ROOT=str(tmp / "worktrees"),
            KANBAN_SCRATCH_ROOT=str(tmp / "scratch"),
            PYTHONPATH=str(ROOT),
        )
        self.template = tmp / "template"
        self._make_template(files)

    def _make_template(self, files: int) -> None:
        self.template.mkdir()
        git(self.template, self.env, "init", "-q", "-b", "main")
        line = "some realistic line of source code, more or less eighty characters long\n"
        for n in range(files):
            path = self.template / f"pkg{n % 50:02d}" / f"module_{n:05d}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"# file {n}\n" + line * (5 + n % 40))
        git(self.template, self.env, "add", "-A")
        git(self.template, self.env, "commit", "-q", "-m", "a repository of a realistic size")
        # Packed, like a cloned repository (the baseline's clone is packed too).
        git(self.template, self.env, "gc", "-q")

    def prepare(self, name: str, case: str, count: int, chain: int) -> Setup:
        """A repository and a board with `count` done tasks (`chain` of them in a chain)."""
        where = self.tmp / name
        where.mkdir()
        repo = where / "repo"
        subprocess.run(["cp", "-a", str(self.template), str(repo)], check=True)
        if case == "check":
            (repo / ".kanban.toml").write_text(KANBAN_TOML)
            git(repo, self.env, "add", ".kanban.toml")
            git(repo, self.env, "commit", "-q", "-m", "declare the check")
        base = git(repo, self.env, "rev-parse", "HEAD")
        db_path = str(where / "kanban.db")
        environ = {**self.env, "KANBAN_DB": db_path}

        db = connection.connect(db_path)
        files = []
        ids = []
        previous: list[int] = []
        for n in range(count):
            independent = n < count - chain
            if independent:
                target = f"task_{n:03d}.txt"
                files.append(target)
                script = f"echo 'task {n}' > {target}"
            else:
                script = f"echo 'step {n - (count - chain)}' >> chain.txt"
            task_id = tasks.create(
                db,
                tasks.NewTask(
                    f"{'write' if independent else 'chain'} {n}",
                    repo=str(repo),
                    base_ref=base,
                    base_branch="main",
                    runtime="command",
                    runtime_options={"argv": ["/bin/sh", "-c", script]},
                    after=() if independent else previous,
                ),
            )
            ids.append(task_id)
            if not independent:
                previous = [task_id]
        subprocess.run(
            [KANBAN, "dispatch", "--quiet", "--until-idle", "--max-workers", "2"],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        done = [tasks.get(db, task_id) for task_id in ids]
        not_done = [t.label for t in done if t.status != "done" or not t.branch]
        if not_done:
            raise RuntimeError(f"{name}: not done after dispatch: {', '.join(not_done)}")
        # The order kanban lands them in (dependency order, then id): the baseline's too.
        branches = [t.branch for t in landing.order(db, ids) if t.branch]
        db.conn.close()

        clone = where / "clone"
        git(where, self.env, "clone", "-q", "--no-local", str(repo), str(clone))
        refs = "".join(f"create refs/heads/{b} refs/remotes/origin/{b}\n" for b in branches)
        git(clone, self.env, "update-ref", "--stdin", stdin=refs)
        if git(clone, self.env, "rev-parse", "HEAD") != base:
            raise RuntimeError(f"{clone}: not at {base}")
        return Setup(case, environ, db_path, repo, clone, base, branches, files)


# --- the measurements ----------------------------------------------------------------------


def land_kanban(setup: Setup) -> tuple[float, float]:
    """Seconds for ``kanban land --all``, then for it again with nothing left to land."""
    argv = [KANBAN, "land", "--all", "--json"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=setup.environ, stdin=subprocess.DEVNULL, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"kanban land exited {done.returncode} in {setup.repo}: {done.stderr.decode()[-2000:]}"
            f"\n{done.stdout.decode()[-2000:]}"
        )
    results = json.loads(done.stdout)["tasks"]
    if len(results) != len(setup.branches):
        raise RuntimeError(f"kanban land landed {len(results)} of {len(setup.branches)} tasks")
    for result in results:
        checked = result["check"] is not None and result["check"]["passed"]
        wrong = result["status"] != "landed" or checked != (setup.case == "check")
        if wrong:
            raise RuntimeError(f"kanban land in {setup.repo}: {result}")
    verify(setup, setup.repo)

    started = time.perf_counter()
    again = subprocess.run(argv, env=setup.environ, stdin=subprocess.DEVNULL, capture_output=True)
    fixed = time.perf_counter() - started
    if again.returncode != 0 or json.loads(again.stdout)["tasks"]:
        raise RuntimeError(f"kanban land --all again: {again.stdout.decode()[-2000:]}")
    return seconds, fixed


def land_git(setup: Setup) -> float:
    """Seconds for the same merges by plain git in a loop, in the clone's checkout."""
    check = CHECK if setup.case == "check" else ""
    argv = ["bash", "-c", MERGE_LOOP, "merge-loop", check, *setup.branches]
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=setup.environ, cwd=setup.clone, stdin=subprocess.DEVNULL, capture_output=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the git loop exited {done.returncode}: {done.stderr.decode()}")
    verify(setup, setup.clone)
    return seconds


def verify(setup: Setup, repo: Path) -> None:
    """`main` holds every task's work, in the branch and in the checkout, and merges only."""
    environ = setup.environ
    if git(repo, environ, "symbolic-ref", "--short", "HEAD") != "main":
        raise RuntimeError(f"{repo}: main is not checked out")
    if git(repo, environ, "status", "--porcelain", "--untracked-files=no"):
        raise RuntimeError(f"{repo}: the checkout is not at main")
    tree = set(git(repo, environ, "ls-tree", "--name-only", "main").splitlines())
    missing = [f for f in setup.files if f not in tree or not (repo / f).is_file()]
    if missing:
        raise RuntimeError(f"{repo}: main lacks {', '.join(missing[:5])}")
    chain = len(setup.branches) - len(setup.files)
    expected = "".join(f"step {n}\n" for n in range(chain))
    if chain and (repo / "chain.txt").read_text() != expected:
        raise RuntimeError(f"{repo}: chain.txt is {(repo / 'chain.txt').read_text()!r}")
    # One merge commit per task on main's own line (a chain's branches hold merges too).
    line = f"{setup.base}..main"
    steps = git(repo, environ, "rev-list", "--count", "--first-parent", line)
    merges = git(repo, environ, "rev-list", "--count", "--first-parent", "--merges", line)
    if int(steps) != len(setup.branches) or int(merges) != len(setup.branches):
        raise RuntimeError(
            f"{repo}: {steps} commits, {merges} merges on main, not {len(setup.branches)} merges"
        )


def same_result(setup: Setup) -> None:
    """Kanban's main and the baseline's hold the very same tree."""
    ours = git(setup.repo, setup.environ, "rev-parse", "main^{tree}")
    theirs = git(setup.clone, setup.environ, "rev-parse", "main^{tree}")
    if ours != theirs:
        raise RuntimeError(f"{setup.repo} and {setup.clone} landed different trees")


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50, help="done tasks landed per run")
    parser.add_argument("--chain", type=int, default=10, help="of which in a chain")
    parser.add_argument("--reps", type=int, default=3, help="repetitions")
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not 0 <= args.chain <= args.tasks:
        parser.error("--chain must be between 0 and --tasks")

    tmp = Path(tempfile.mkdtemp(prefix="kanban-bench-land-"))
    began = time.monotonic()
    found: dict[str, list[float]] = {}
    try:
        world = World(tmp, args.files)
        for rep in range(args.reps):
            setups = [
                world.prepare(f"r{rep}-{case}", case, args.tasks, args.chain) for case in CASES
            ]
            steps = [(who, s) for s in setups for who in ("git", "kanban")]
            # ABBA: the baseline goes first in even repetitions, second in odd ones.
            for who, setup in steps if rep % 2 == 0 else reversed(steps):
                if who == "git":
                    found.setdefault(f"git_{setup.case}", []).append(land_git(setup))
                else:
                    seconds, fixed = land_kanban(setup)
                    found.setdefault(f"kanban_{setup.case}", []).append(seconds)
                    found.setdefault(f"fixed_{setup.case}", []).append(fixed)
            for setup in setups:
                same_result(setup)
            print(
                f"(rep {rep + 1}: "
                + ", ".join(
                    f"{case}: kanban {found[f'kanban_{case}'][-1]:.2f} s, git"
                    f" {found[f'git_{case}'][-1]:.2f} s"
                    for case in CASES
                )
                + f"; at {time.monotonic() - began:.0f} s)",
                flush=True,
            )
        report(args, found)
        print(
            f"\n(total {time.monotonic() - began:.0f} s; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; repository of {args.files}"
            f" files; {shlex.join(sys.argv[1:]) or 'default options'})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args, found: dict[str, list[float]]) -> None:
    n, chain = args.tasks, args.chain
    print(
        f"\nLanding {n} done tasks ({n - chain} independent, a {chain}-chain) onto main;"
        f" {args.reps} repetition(s), each case on a fresh setup; median (min-max)"
    )
    print(f"{'':56} {'total, s':>18} {'per task, ms':>20} {'vs git loop':>20}")
    for case, label in (("nocheck", "no check"), ("check", f"check `{CHECK}`")):
        ours, theirs = found[f"kanban_{case}"], found[f"git_{case}"]
        rows = [
            (f"kanban land --all, {label}", ours, ratio(ours, theirs)),
            (
                "git loop: merge --no-ff" + (f" + sh -c {CHECK}" if case == "check" else ""),
                theirs,
                "",
            ),
        ]
        for what, values, versus in rows:
            per_task = [v / n * 1000 for v in values]
            print(f"  {what:54} {med(values, 2):>18} {med(per_task, 1):>20} {versus:>20}")
        fixed = found[f"fixed_{case}"]
        print(f"  {'  kanban land --all, nothing left to land':54} {med(fixed, 2):>18}")
    print(
        "  (vs git loop: kanban over the baseline of the same repetition, the ratios' median"
        " and range; both sides one process from spawn to exit; kanban merges in a scratch"
        " worktree, checks there, then moves main and fast-forwards the checkout; the loop"
        " merges in the checkout of a clone of the same repository)"
    )


if __name__ == "__main__":
    main()
