"""What the dispatcher costs: one task's start, many tasks' throughput, a workspace's setup.

1. Latency: from the exit of `kanban create` to the worker's first instruction (the worker
   writes ``time.time()`` to a file first thing), with a running dispatcher, one task at a
   time, alternating tasks without a repository (a scratch directory) and tasks with
   ``--repo`` (a worktree is created first). Floors measured in the same run: `python -c
   pass`, the shim starting `true`, and a bare `git worktree add` of the same repository.
2. Throughput: N trivial tasks (`true`) with W workers, worktree creation included, then
   their removal with `kanban gc`; against bare git doing the same: N `git worktree add` in a
   row (the dispatcher serializes creation per repository too), then N `git worktree remove`.
   The disk slows down after mass deletion (../../shared/benchmarking.md, trap 2), so each
   repetition measures the bare batch right beside the kanban run, before it in even
   repetitions and after it in odd ones, and the report gives ratios.
3. Workspace: from the claim (the run's ``started_at`` on the board) to the worker's first
   instruction, for tasks in a repository whose committed ``.kanban.toml`` copies 20 ignored
   files (``secrets/*.env``) into the new worktree and runs ``setup = ["true"]``, alternating
   with tasks in the same repository without that file (so the difference is the workspace's
   cost); one at a time, running dispatcher. Baseline in the same run, interleaved with the
   tasks (bench/workspace_fixture.py): the same steps by hand, one process after another:
   ``git worktree add``, ``cp -p`` of the same 20 files, ``/bin/sh -c true`` in the tree, then
   the same worker; and without the file, ``git worktree add`` then the worker. Its bare
   ``git worktree add`` step is the floor. The workspace's cost: with minus without, paired by
   round, for kanban; by hand, its ``cp`` and ``sh -c`` steps themselves.

Run on demand: ``.venv/bin/python -m bench.dispatch`` (about 9 minutes on 2 CPUs); smaller:
``--latency-tasks 40 --throughput-tasks 100 --reps 1 --workspace-tasks 10``. One section only:
``--only latency``, ``--only throughput`` or ``--only workspace`` (about 25 s with the default
``--workspace-tasks 15``; up to a minute right after a mass deletion, trap 2). Everything
lives in a temporary directory with its own HOME; nothing touches ~/.kanban.
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import sqlite_utils

from bench import workspace_fixture
from board import connection, runs, states, tasks

ROOT = Path(__file__).resolve().parent.parent
KANBAN = str(Path(sys.executable).with_name("kanban"))
PY = sys.executable

# The worker's first instruction reads the clock; the rest only publishes it atomically.
FIRST_INSTRUCTION = (
    "import time; t = time.time()\n"
    "import os, sys\n"
    "open(sys.argv[1] + '.tmp', 'w').write(repr(t)); os.replace(sys.argv[1] + '.tmp', sys.argv[1])"
)


# --- numbers -----------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    values = [v * 1000 for v in values]
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(argv: list[str], environ: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv,
        env=environ,
        cwd=cwd,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def wait_for(
    condition: Callable[[], object], what: str, timeout: float = 120.0, pause: float = 0.001
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(pause)


# --- the world ---------------------------------------------------------------------------


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
        self.repo = tmp / "repo"
        self._make_repo(files)
        self.sha = self.git("rev-parse", "HEAD")
        self.baseline_root = tmp / "baseline-worktrees"
        self.baseline_trees: list[Path] = []
        self.baseline_made = 0
        self.batch: list[Path] = []
        self.shim_run: tuple[str, int, str] | None = None

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.repo), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def _make_repo(self, files: int) -> None:
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        line = "some realistic line of source code, more or less eighty characters long\n"
        for n in range(files):
            path = self.repo / f"pkg{n % 50:02d}" / f"module_{n:05d}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"# file {n}\n" + line * (5 + n % 40))
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "a repository of a realistic size")

    def board(self, name: str) -> tuple[dict[str, str], str]:
        db = str(self.tmp / f"{name}.db")
        return {**self.env, "KANBAN_DB": db}, db

    # Baselines ---------------------------------------------------------------------------

    def worktree_adds(self, count: int) -> list[float]:
        times = []
        for _ in range(count):
            n = self.baseline_made
            self.baseline_made += 1
            path = self.baseline_root / f"b{n}"
            times.append(
                timed(
                    [
                        "git",
                        "-C",
                        str(self.repo),
                        "worktree",
                        "add",
                        "-q",
                        "-b",
                        f"baseline/b{n}",
                        str(path),
                        self.sha,
                    ],
                    self.env,
                )
            )
            self.baseline_trees.append(path)
        return times

    def batch_add(self, count: int) -> float:
        """Seconds to `git worktree add` `count` trees in a row (kept for `batch_remove`)."""
        started = time.perf_counter()
        self.batch = []
        for _ in range(count):
            n = self.baseline_made
            self.baseline_made += 1
            path = self.baseline_root / f"b{n}"
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(self.repo),
                    "worktree",
                    "add",
                    "-q",
                    "-b",
                    f"baseline/b{n}",
                    str(path),
                    self.sha,
                ],
                env=self.env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            self.batch.append(path)
        return time.perf_counter() - started

    def batch_remove(self) -> float:
        started = time.perf_counter()
        for path in self.batch:
            subprocess.run(
                ["git", "-C", str(self.repo), "worktree", "remove", str(path)],
                env=self.env,
                check=True,
            )
        return time.perf_counter() - started

    def process_starts(self, count: int) -> dict[str, list[float]]:
        """Bare start-up costs, round-robin: to exit, and to the first instruction."""
        if self.shim_run is None:
            environ, db_path = self.board("shim-baseline")
            db = connection.connect(db_path)
            tasks.create(
                db,
                tasks.NewTask(
                    "shim baseline", runtime="command", runtime_options={"argv": ["true"]}
                ),
            )
            (claim,) = runs.claim(db)
            db.conn.close()
            self.shim_run = (db_path, claim.run_id, claim.token)
        db_path, run_id, token = self.shim_run
        environ = {**self.env, "HERMES_KANBAN_TOKEN": token}
        shim = [
            PY,
            "-m",
            "worker.shim",
            "--db",
            db_path,
            "--run",
            str(run_id),
            "--cwd",
            str(self.tmp),
            "--",
        ]
        marker = self.tmp / "first-instruction"
        first = [PY, "-c", FIRST_INSTRUCTION, str(marker)]
        found: dict[str, list[float]] = {
            "python": [],
            "python_first": [],
            "shim": [],
            "shim_first": [],
        }
        for _ in range(count):
            found["python"].append(timed([PY, "-c", "pass"], self.env))
            found["shim"].append(timed([*shim, "true"], environ, cwd=ROOT))
            for key, argv in (("python_first", first), ("shim_first", [*shim, *first])):
                marker.unlink(missing_ok=True)
                spawned = time.time()
                subprocess.run(
                    argv,
                    env=environ,
                    cwd=ROOT,
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
                found[key].append(float(marker.read_text()) - spawned)
        return found


def start_dispatcher(environ: dict[str, str], db_path: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [KANBAN, "dispatch", "--quiet", *args],
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    db = connection.connect(db_path)
    try:
        wait_for(lambda: connection.read(db, "SELECT 1 FROM dispatchers"), "the dispatcher")
    finally:
        db.conn.close()
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(60)


# --- 1. latency ----------------------------------------------------------------------------


def latency(world: World, count: int) -> dict[str, list[float]]:
    environ, db_path = world.board("latency")
    dispatcher = start_dispatcher(environ, db_path, "--max-workers", "8")
    db = connection.connect(db_path)
    markers = world.tmp / "markers"
    markers.mkdir()
    found: dict[str, list[float]] = {
        "scratch": [],
        "worktree": [],
        "scratch_commit": [],
        "worktree_commit": [],
    }
    try:
        for n in range(count):
            mode = "worktree" if n % 2 else "scratch"
            marker = markers / f"{n}"
            argv = [
                KANBAN,
                "create",
                f"latency {n}",
                "--command",
                shlex.join([PY, "-c", FIRST_INSTRUCTION, str(marker)]),
            ]
            if mode == "worktree":
                argv += ["--repo", str(world.repo)]
            subprocess.run(argv, env=environ, check=True, stdout=subprocess.DEVNULL)
            created = time.time()
            wait_for(marker.exists, f"task {n}'s worker")
            first = float(marker.read_text())
            found[mode].append(first - created)
            # One at a time: the next task starts on an idle dispatcher.
            title = f"latency {n}"
            wait_for(
                lambda title=title: connection.read(
                    db, "SELECT 1 FROM tasks WHERE title = ? AND status = 'done'", (title,)
                ),
                f"task {n} to be done",
                pause=0.005,
            )
            (row,) = connection.read(db, "SELECT created_at FROM tasks WHERE title = ?", (title,))
            found[mode + "_commit"].append(first - row["created_at"])
    finally:
        stop(dispatcher)
        db.conn.close()
    return found


# --- 2. throughput ---------------------------------------------------------------------------


def throughput(world: World, count: int, workers: int, rep: int) -> dict[str, float]:
    environ, db_path = world.board(f"throughput-{rep}")
    db = connection.connect(db_path)
    for n in range(count):
        tasks.create(
            db,
            tasks.NewTask(
                f"trivial {n}",
                repo=str(world.repo),
                base_ref=world.sha,
                runtime="command",
                runtime_options={"argv": ["true"]},
            ),
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [KANBAN, "dispatch", "--quiet", "--until-idle", "--max-workers", str(workers)],
        env=environ,
        stdin=subprocess.DEVNULL,
    )
    # The dispatcher's own CPU (not its children's): its last reading before it exits.
    me = psutil.Process(proc.pid)
    own = 0.0
    while proc.poll() is None:
        try:
            times = me.cpu_times()
            own = times.user + times.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if proc.wait() != 0:
        raise RuntimeError("the dispatcher failed")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    everything = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = connection.read(db, "SELECT count(*) AS n FROM tasks WHERE status = 'done'")[0]["n"]
    db.conn.close()
    if done != count:
        raise RuntimeError(f"only {done} of {count} tasks are done")
    return {
        "wall": wall,
        "environ": environ,
        "dispatcher_cpu": own,  # type: ignore[dict-item]
        "all_cpu": everything,
    }


def collect(environ: dict[str, str]) -> tuple[float, float]:
    """`kanban gc` of the throughput run's worktrees, then again with nothing left."""
    first = timed([KANBAN, "gc"], environ)
    again = timed([KANBAN, "gc"], environ)
    return first, again


# --- 3. workspace ----------------------------------------------------------------------------


def workspace_start(world: World, count: int) -> dict[str, list[float]]:
    """`count` rounds of: a task with the .kanban.toml, the same by hand, a task without it,
    the same by hand; in reverse order in odd rounds."""
    environ, db_path = world.board("workspace")
    repos = workspace_fixture.make_repos(world.repo, world.tmp / "workspace-repos", world.env)
    hand = workspace_fixture.ByHand(world.tmp / "hand-worktrees", world.env)
    markers = world.tmp / "workspace-markers"
    markers.mkdir()
    dispatcher = start_dispatcher(environ, db_path, "--max-workers", "8")
    db = connection.connect(db_path)
    found: dict[str, list[float]] = {}
    try:
        for n in range(count):
            steps = [(who, repo) for repo in repos for who in ("kanban", "hand")]
            for who, repo in steps if n % 2 == 0 else reversed(steps):
                marker = markers / f"{n}-{who}-{repo.name}"
                agent = [PY, "-c", FIRST_INSTRUCTION, str(marker)]
                if who == "hand":
                    measured = hand.start(repo, agent, marker)
                else:
                    measured = kanban_start(db, repo, agent, marker, f"workspace {n}")
                for part, seconds in measured.items():
                    found.setdefault(f"{who}_{repo.name}_{part}", []).append(seconds)
    finally:
        stop(dispatcher)
        db.conn.close()
    return found


def kanban_start(
    db: sqlite_utils.Database,
    repo: workspace_fixture.Repo,
    agent: list[str],
    marker: Path,
    title: str,
) -> dict[str, float]:
    """One task in `repo`, on an idle dispatcher: seconds from the claim to the worker's first
    instruction (``total``).

    Only clocks that agree: the run's ``started_at`` and the marker are both ``time.time()``;
    a process's creation time from psutil (the run's ``shim_started_at``) is not, as it counts
    from the boot time rounded down to the second (about 80 ms early here).
    """
    task_id = tasks.create(
        db,
        tasks.NewTask(
            f"{title} {repo.name}",
            repo=str(repo.path),
            base_ref=repo.sha,
            runtime="command",
            runtime_options={"argv": agent},
        ),
    )
    try:
        wait_for(marker.exists, f"{title}'s worker", timeout=60)
    except RuntimeError:
        ended = runs.last_ended(db, task_id)
        raise RuntimeError(
            f"{title}: no worker started ({ended.reason if ended else 'no run ended'})"
        ) from None
    first = float(marker.read_text())
    # One at a time: the next task starts on an idle dispatcher.
    wait_for(
        lambda: tasks.get(db, task_id).status == states.Status.DONE,
        f"{title} to be done",
        pause=0.005,
    )
    (run,) = runs.for_task(db, task_id)
    worktree = Path(tasks.get(db, task_id).worktree or "")
    copied = len(list((worktree / "secrets").glob("*.env")))
    if copied != (workspace_fixture.FILES if repo.workspace else 0):
        raise RuntimeError(f"{worktree}: {copied} files copied")
    return {"total": first - run.started_at}


# --- main --------------------------------------------------------------------------------------


SECTIONS = ("latency", "throughput", "workspace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--throughput-tasks", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2, help="throughput repetitions")
    parser.add_argument(
        "--workspace-tasks", type=int, default=15, help="tasks with and without the workspace"
    )
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument("--block", type=int, default=30, help="baseline samples per block")
    parser.add_argument("--only", choices=SECTIONS, help="run this section only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    sections = (args.only,) if args.only else SECTIONS

    tmp = Path(tempfile.mkdtemp(prefix="kanban-bench-dispatch-"))
    began = time.monotonic()
    try:
        world = World(tmp, args.files)
        if "latency" in sections:
            starts = world.process_starts(args.block)
            adds = world.worktree_adds(args.block)
            lat = latency(world, args.latency_tasks * 2)
            for key, values in world.process_starts(args.block).items():
                starts[key] += values
            adds += world.worktree_adds(args.block)
            print(f"(latency done at {time.monotonic() - began:.0f} s)", flush=True)

        reps = []
        for rep in range(args.reps if "throughput" in sections else 0):
            # ABBA: the bare batch goes first in even repetitions, second in odd ones, so a
            # disk that slows down (or recovers) over time favours neither side.
            order = ("bare", "kanban") if rep % 2 == 0 else ("kanban", "bare")
            result: dict = {}
            for who in order:
                if who == "bare":
                    result["bare_add"] = world.batch_add(args.throughput_tasks)
                else:
                    result.update(throughput(world, args.throughput_tasks, args.workers, rep))
            for who in order:
                if who == "bare":
                    result["bare_remove"] = world.batch_remove()
                else:
                    result["gc"], result["gc_again"] = collect(result["environ"])
            reps.append(result)
            print(
                f"(throughput rep {rep + 1}: dispatch {result['wall']:.1f} s, bare add"
                f" {result['bare_add']:.1f} s, gc {result['gc']:.1f} s, bare remove"
                f" {result['bare_remove']:.1f} s; at {time.monotonic() - began:.0f} s)",
                flush=True,
            )

        if "workspace" in sections:
            space = workspace_start(world, args.workspace_tasks)
            print(f"(workspace done at {time.monotonic() - began:.0f} s)", flush=True)

        if "latency" in sections:
            report_latency(args, lat, starts, adds)
        if "throughput" in sections:
            report_throughput(args, reps)
        if "workspace" in sections:
            report_workspace(args, space)
        print(
            f"\n(total {time.monotonic() - began:.0f} s; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; repository of {args.files}"
            f" files)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def report_latency(args, lat, starts, adds) -> None:
    n = args.latency_tasks
    print(
        f"\n1. Latency: `kanban create` exits -> the worker's first instruction; {n} tasks"
        " each, one at a time, running dispatcher; ms"
    )
    print(f"{'':68} {'median (min-max)':>24} {'p95':>8} {'/ floor':>8}")
    floor = statistics.median(starts["shim_first"])
    floor_wt = floor + statistics.median(adds)
    for mode, label, floor_of in (
        ("scratch", "no repo (scratch directory)", floor),
        ("worktree", "--repo (worktree created first)", floor_wt),
    ):
        for key, since in (
            (mode, "`kanban create` exits"),
            (mode + "_commit", "the task's transaction"),
        ):
            values = lat[key]
            print(
                f"  {label + ', from ' + since:66} {ms(values):>24}"
                f" {p95(values) * 1000:8.1f} {statistics.median(values) / floor_of:7.2f}x"
            )
    print("  floors, measured before and after, round-robin:")
    print(f"  {'python -c pass, spawn to exit':66} {ms(starts['python']):>24}")
    print(f"  {'python, spawn to first instruction':66} {ms(starts['python_first']):>24}")
    print(f"  {'shim + python, spawn to first instruction':66} {ms(starts['shim_first']):>24}")
    print(f"  {'shim running `true`, spawn to exit':66} {ms(starts['shim']):>24}")
    print(f"  {'git worktree add (same repository)':66} {ms(adds):>24}")
    print(
        "  (/ floor: no repo over shim + python to first instruction; --repo over that plus"
        " git worktree add. A sample can be negative: the worker may start before the"
        " `kanban create` process has finished exiting.)"
    )


def report_throughput(args, reps) -> None:
    count, workers = args.throughput_tasks, args.workers
    print(
        f"\n2. Throughput: {count} trivial tasks (`true`), {workers} workers, worktrees"
        f" included; {len(reps)} repetition(s), median (min-max)"
    )
    print(f"{'':46} {'value':>24} {'vs bare':>8}")
    rows = [
        (
            "kanban dispatch --until-idle, s",
            [r["wall"] for r in reps],
            1,
            ([r["wall"] for r in reps], [r["bare_add"] for r in reps]),
        ),
        (f"bare: {count} x git worktree add in a row, s", [r["bare_add"] for r in reps], 1, None),
        ("tasks/s", [count / r["wall"] for r in reps], 1, None),
        ("ms per task", [r["wall"] / count * 1000 for r in reps], 1, None),
        ("CPU ms per task, every process", [r["all_cpu"] / count * 1000 for r in reps], 1, None),
        (
            "CPU ms per task, the dispatcher itself",
            [r["dispatcher_cpu"] / count * 1000 for r in reps],
            1,
            None,
        ),
        (
            f"kanban gc of the {count} worktrees, s",
            [r["gc"] for r in reps],
            1,
            ([r["gc"] for r in reps], [r["bare_remove"] for r in reps]),
        ),
        (f"bare: {count} x git worktree remove, s", [r["bare_remove"] for r in reps], 1, None),
        ("kanban gc again (nothing left), s", [r["gc_again"] for r in reps], 2, None),
    ]
    for label, values, digits, versus in rows:
        print(f"  {label:44} {med(values, digits):>24} {ratio(*versus) if versus else '':>8}")
    print(
        "  (vs bare: the same number of worktrees added, or removed, by bare git in a row,"
        " in the same repetition, before or after the kanban run in alternate repetitions)"
    )


def report_workspace(args, space: dict[str, list[float]]) -> None:
    n, files, setup = args.workspace_tasks, workspace_fixture.FILES, workspace_fixture.SETUP
    print(
        f"\n3. Workspace: claim -> the worker's first instruction; .kanban.toml copying {files}"
        f" ignored files, setup `{setup}`; {n} tasks each way, one at a time, by hand"
        " interleaved; ms"
    )
    print(f"{'':56} {'median (min-max)':>24} {'p95':>8} {'/ by hand':>9}")

    def row(label: str, values: list[float], versus: list[float] | None = None) -> None:
        base = statistics.median(versus) if versus else 0.0
        by_hand = f"{statistics.median(values) / base:8.2f}x" if base > 0 else ""
        print(f"  {label:54} {ms(values):>24} {p95(values) * 1000:8.1f} {by_hand:>9}")

    with_, without = space["kanban_with_total"], space["kanban_without_total"]
    hand_with, hand_without = space["hand_with_total"], space["hand_without_total"]
    paired = [a - b for a, b in zip(with_, without, strict=True)]
    hand_paired = [a - b for a, b in zip(hand_with, hand_without, strict=True)]
    # What the workspace adds by hand, measured directly: far less noisy than a difference
    # of two chains that each hold a `git worktree add`.
    hand_steps = [
        c + s for c, s in zip(space["hand_with_cp"], space["hand_with_setup"], strict=True)
    ]
    row("kanban, with .kanban.toml", with_, hand_with)
    row("kanban, without it (worktree only)", without, hand_without)
    row("kanban workspace cost (with - without, paired)", paired, hand_steps)
    print("  by hand, one process after another, spawn -> first instruction:")
    row(f"with: worktree add, cp -p {files} files, sh -c, agent", hand_with)
    row("  git worktree add", space["hand_with_add"])
    row(f"  cp -p --parents of the {files} files", space["hand_with_cp"])
    row(f"  /bin/sh -c {setup}", space["hand_with_setup"])
    row("  agent (python), spawn -> first instruction", space["hand_with_agent"])
    row("without: git worktree add, agent", hand_without)
    row("  git worktree add (the floor)", space["hand_without_add"])
    row("by-hand workspace cost: cp + sh -c", hand_steps)
    row("by-hand workspace cost (with - without, paired)", hand_paired)
    median = statistics.median
    cost, hand_cost = median(paired), median(hand_steps)
    floor = median(space["hand_without_add"])
    print(
        f"  kanban with / by hand with: {median(with_) / median(hand_with):.2f}x;"
        f" kanban with / git worktree add: {median(with_) / floor:.2f}x;"
        f" workspace cost {cost * 1000:.1f} ms by kanban vs {hand_cost * 1000:.1f} ms by hand"
        + (f" ({cost / hand_cost:.2f}x)" if cost > 0 and hand_cost > 0 else "")
    )
    print(
        "  (claim: the run's started_at, written by the claim's transaction; / by hand: median"
        " over the median of the same steps by hand, in the same rounds (for the workspace cost:"
        " cp + sh -c); paired: each round's task with the file minus its task without, by"
        " kanban or by hand)"
    )


def med(values: list[float], digits: int) -> str:
    return (
        f"{statistics.median(values):.{digits}f}"
        f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def ratio(measured: list[float], baseline: list[float]) -> str:
    ratios = [m / b for m, b in zip(measured, baseline, strict=True)]
    return f"{statistics.median(ratios):.2f}x"


if __name__ == "__main__":
    main()
