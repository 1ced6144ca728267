"""Randomized soak: SIGKILL dispatchers, shims and agents at random, then check that nothing broke.

Each trial is a world of its own: a temporary directory with its own HOME, KANBAN_DB,
HERMES_HOME and CODEX_HOME, a real git repository with one commit, and a batch of real
`command` tasks created with `kanban create` while a `kanban dispatch` runs. Every task writes
``out-<n>.txt`` into its worktree: some at once, some after a second or two (so kills land
mid-run), some after starting a background child (``sleep 30 &``), some only after another
task (``--after``). At random moments the soak SIGKILLs a random victim: the dispatcher (and
starts another one, at once or a little later), a shim (``python -m worker.shim``), or an
agent (the shim's child). Then a final ``kanban dispatch --until-idle`` runs, sometimes beside
the last chaos dispatcher, with a deadline; one that does not finish is a *stranded* trial.

Invariants checked after every trial (../../shared/design.md, "Guarantees"):

- lost work: a task is `done` but its file is not on its branch (``git cat-file -e``);
- not ended: a task still todo/ready/running/waiting (a todo held by a failed blocker is
  fine), or a run never settled;
- attempts spent by the orchestrator: a task `done` after more attempts than agent kills
  plus one, or `failed` with fewer agent kills than attempts (only agents' failures count);
- duplicated runs: two runs of one task overlapping in the board (started_at..ended_at), or a
  run starting while a process of an earlier run of its task still lived (every agent takes
  a per-task ``flock`` that its children inherit, and notes when it cannot get it);
- orphans: a process of the trial (its environment, cwd or command line in the trial's
  directory) still alive after the final dispatcher;
- dispatcher errors: the final dispatcher exits non-zero, or any dispatcher prints a traceback;
- integrity: ``PRAGMA integrity_check`` of the board, opened read-only through SQLite.

The report gives the totals and, for every failing trial, its number, its seed and what broke;
``--seed S --trials 1`` replays that trial's plan (the tasks, the kill times and kinds; where
exactly a kill lands is up to the OS). Failing trials' directories are kept (logs, board,
repository, ``soak.json`` with the timeline). Exit status 1 if any invariant failed.

Run on demand, never in the tests: ``make soak`` (200 trials) or
``.venv/bin/python -m bench.soak --trials 20 --seed 1``.
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil

from board import connection, ids

ROOT = Path(__file__).resolve().parent.parent
KANBAN = str(Path(sys.executable).with_name("kanban"))
KINDS = ("dispatcher", "shim", "agent")
OPEN = ("todo", "ready", "running", "waiting")
CHECKS = (
    ("lost", "lost work (done, file not on its branch)"),
    ("not_ended", "not ended (open task or unsettled run)"),
    ("stranded", "stranded (final dispatcher past its deadline)"),
    ("attempts", "attempts spent by the orchestrator"),
    ("overlaps", "duplicated runs: overlapping in the board"),
    ("concurrent", "duplicated runs: started beside a live one"),
    ("orphans", "orphans (processes left after the trial)"),
    ("errors", "dispatcher errors (exit != 0, traceback)"),
    ("integrity", "integrity_check not ok"),
)


# --- the plan: everything random about a trial, drawn from its seed ----------------------------


@dataclasses.dataclass
class Spec:
    n: int
    kind: str  # quick | long | daemon
    sleep: float
    after: int | None  # index of an earlier task that must be done first
    id: str | None = None  # t_N once created


@dataclasses.dataclass
class Plan:
    seed: int
    workers: int
    specs: list[Spec]
    chaos: float  # seconds of chaos before the final dispatcher
    kills: list[tuple[float, tuple[str, ...]]]  # when, and victim kinds in order of preference
    restarts: list[float]  # delay before a killed dispatcher is replaced, per kill
    peer: bool  # leave the last chaos dispatcher running beside the final one


def make_plan(seed: int, count: int) -> Plan:
    rng = random.Random(seed)
    specs = []
    for n in range(1, count + 1):
        kind = rng.choices(("quick", "long", "daemon"), weights=(45, 35, 20))[0]
        sleep = rng.uniform(0.6, 1.6) if kind == "long" else rng.uniform(0.05, 0.4)
        after = rng.randrange(n - 1) if n > 1 and rng.random() < 0.35 else None
        specs.append(Spec(n, kind, round(sleep, 2), after))
    chaos = rng.uniform(1.2, 3.0)
    times = sorted(rng.uniform(0.3, chaos) for _ in range(rng.randint(1, 4)))
    kills = [(round(t, 2), tuple(rng.sample(KINDS, len(KINDS)))) for t in times]
    # Mostly at once (a supervisor restarting it); sometimes after the shims have moved on.
    restarts = [rng.choice((0.0, 0.0, round(rng.uniform(0.1, 1.0), 2))) for _ in kills]
    return Plan(
        seed=seed,
        workers=rng.choice((2, 3, 4)),
        specs=specs,
        chaos=round(chaos, 2),
        kills=kills,
        restarts=restarts,
        peer=rng.random() < 0.3,
    )


def script(spec: Spec, trial_dir: Path) -> str:
    """The agent: take the task's lock (children inherit it), wait, write the task's file."""
    lock = shlex.quote(str(trial_dir / "locks" / str(spec.n)))
    dups = shlex.quote(str(trial_dir / "concurrent.log"))
    lines = [
        f"exec 9>>{lock}",
        f'flock -n 9 || echo "{spec.n} $HERMES_KANBAN_RUN_ID" >> {dups}',
    ]
    if spec.kind == "daemon":
        lines.append("sleep 30 &")
    lines += [f"sleep {spec.sleep}", f"echo {spec.n} > out-{spec.n}.txt"]
    return "\n".join(lines)


# --- one trial -----------------------------------------------------------------------------------


class Trial:
    def __init__(self, number: int, plan: Plan, directory: Path, deadline: float) -> None:
        self.number = number
        self.plan = plan
        self.dir = directory
        self.deadline = deadline
        self.rng = random.Random(plan.seed ^ 0x5EED)
        self.began = time.monotonic()
        self.timeline: list[str] = []
        self.problems: list[str] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.kills: collections.Counter[str] = collections.Counter()
        self.agent_kills: collections.Counter[str] = collections.Counter()  # per task id
        self.dispatchers: list[subprocess.Popen[bytes]] = []
        self.current: subprocess.Popen[bytes] | None = None
        self.stranded = False
        self.first_task = threading.Event()
        home = directory / "home"
        home.mkdir(parents=True)
        (directory / "locks").mkdir()
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Soak\n\temail = soak@kanban.invalid\n"
            "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        )
        self.db = str(directory / "board.db")
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GIT_", "KANBAN_", "HERMES_", "CODEX_"))
        }
        self.env.update(
            HOME=str(home),
            KANBAN_DB=self.db,
            HERMES_HOME=str(home / ".hermes"),
            CODEX_HOME=str(home / ".codex"),
            XDG_CONFIG_HOME=str(home / ".config"),
            PYTHONPATH=str(ROOT),
            # Retry policy only: a killed agent's retry should come within the trial.
            KANBAN_RETRY_DELAY="0.2",
            KANBAN_RETRY_MAX_DELAY="1",
        )
        self.repo = directory / "repo"
        self.repo.mkdir()
        self.git("init", "-q")
        (self.repo / "README").write_text("soak\n")
        self.git("add", "README")
        self.git("commit", "-q", "-m", "one commit")

    def note(self, text: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.began:6.2f}s {text}")

    def problem(self, check: str, text: str) -> None:
        self.counts[check] += 1
        self.problems.append(text)
        self.note(f"PROBLEM {text}")

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(self.repo), *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=True,
        )

    # Processes ----------------------------------------------------------------------------

    def start_dispatcher(self, *args: str) -> subprocess.Popen[bytes]:
        number = len(self.dispatchers) + 1
        with open(self.dir / f"dispatcher-{number}.log", "wb") as log:
            proc = subprocess.Popen(
                [KANBAN, "dispatch", "--quiet", "--max-workers", str(self.plan.workers), *args],
                env=self.env,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.dispatchers.append(proc)
        self.note(
            f"dispatcher {number} started (pid {proc.pid}){' ' if args else ''}{' '.join(args)}"
        )
        return proc

    def ours(self, proc: psutil.Process) -> bool:
        """Does this process belong to the trial (its environment, cwd or argv point here)?"""
        mine = str(self.dir)
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                return False
            environ = proc.environ()
            if environ.get("KANBAN_DB") == self.db or environ.get("HOME") == self.env["HOME"]:
                return True
            if (proc.cwd() + os.sep).startswith(mine + os.sep):
                return True
            return any(mine in part for part in proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            return False

    def processes(self) -> list[psutil.Process]:
        return [p for p in psutil.process_iter() if self.ours(p)]

    def victims(self, kind: str) -> list[psutil.Process]:
        if kind == "dispatcher":
            if self.current is None or self.current.poll() is not None:
                return []
            return [psutil.Process(self.current.pid)]
        with_shim_argv = [p for p in self.processes() if "worker.shim" in _cmdline(p)]
        # A shim's child between fork and exec still shows the shim's argv: it is the agent
        # being born (killing it is an agent kill, whose attempt is rightly spent).
        pids = {p.pid for p in with_shim_argv}
        shims = [p for p in with_shim_argv if _parent_pid(p) not in pids]
        if kind == "shim":
            return shims
        agents = []
        for shim in shims:
            try:
                agents += [c for c in shim.children() if c.status() != psutil.STATUS_ZOMBIE]
            except psutil.NoSuchProcess:
                pass
        return agents

    def kill(self, preferred: tuple[str, ...], patience: float = 0.0) -> str | None:
        """SIGKILL a victim of the first kind that has one (waiting up to `patience` s for the
        first kind: workers come and go in a fraction of a second)."""
        deadline = time.monotonic() + patience
        while not self.victims(preferred[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        for kind in preferred:
            candidates = self.victims(kind)
            if not candidates:
                continue
            victim = self.rng.choice(candidates)
            task = _environ(victim).get("HERMES_KANBAN_TASK", "")
            try:
                victim.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
            self.kills[kind] += 1
            if kind == "agent" and task:
                self.agent_kills[task] += 1
            self.note(f"SIGKILL {kind} pid {victim.pid} {task}".rstrip())
            if kind == "dispatcher" and self.current is not None:
                self.current.wait()
                self.current = None
            return kind
        self.note("no victim alive")
        return None

    def kill_everything(self) -> list[str]:
        """SIGKILL every process of the trial until none is left; returns what was found."""
        found: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            procs = self.processes()
            if not procs:
                break
            for proc in procs:
                found.append(_describe(proc))
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.05)
        for proc in self.dispatchers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        return found

    # The trial --------------------------------------------------------------------------

    def create(self, spec: Spec, created: dict[int, threading.Event]) -> None:
        """`kanban create` one task, once the task it comes after exists."""
        try:
            after = None
            if spec.after is not None:
                blocker = self.plan.specs[spec.after]
                created[blocker.n].wait()
                after = blocker.id
            argv = [KANBAN, "create", f"soak {spec.n}", "--repo", str(self.repo)]
            argv += ["--runtime", "command", "--json"]
            argv += ["--command", shlex.join(["sh", "-c", script(spec, self.dir)])]
            argv += ["--after", after] if after else []
            done = subprocess.run(argv, env=self.env, cwd=self.dir, capture_output=True, text=True)
            if done.returncode != 0:
                self.problem("errors", f"kanban create soak {spec.n}: {_last(done.stderr)}")
                return
            spec.id = json.loads(done.stdout)["id"]
            self.note(
                f"created {spec.id}: soak {spec.n} ({spec.kind}, {spec.sleep}s"
                f"{', after ' + after if after else ''})"
            )
        finally:
            created[spec.n].set()
            self.first_task.set()

    def run(self) -> None:
        self.current = self.start_dispatcher()
        # Tasks arrive together, as from several clients; each waits for the one it follows.
        created = {spec.n: threading.Event() for spec in self.plan.specs}
        creators = [
            threading.Thread(target=self.create, args=(spec, created)) for spec in self.plan.specs
        ]
        for thread in creators:
            thread.start()
        # The plan's clock starts with the first task: kills before any work are rarely news.
        self.first_task.wait(60)
        start = time.monotonic()
        restart_at: float | None = None
        for (at, kinds), delay in zip(self.plan.kills, self.plan.restarts, strict=True):
            if restart_at is not None and restart_at <= start + at:
                _sleep_until(restart_at)
                self.current, restart_at = self.start_dispatcher(), None
            _sleep_until(start + at)
            if self.kill(kinds, patience=0.5) == "dispatcher":
                restart_at = time.monotonic() + delay
        if restart_at is not None and restart_at <= start + self.plan.chaos:
            _sleep_until(restart_at)
            self.current = self.start_dispatcher()
        _sleep_until(start + self.plan.chaos)
        for thread in creators:
            thread.join()
        peer = self.current if self.plan.peer else None
        if self.current is not None and not self.plan.peer:
            self.kill(("dispatcher",))
        self.final(peer)

    def final(self, peer: subprocess.Popen[bytes] | None) -> None:
        proc = self.start_dispatcher("--until-idle")
        try:
            code = proc.wait(self.deadline)
            self.note(f"final dispatcher exited {code}")
            if code != 0:
                self.problem("errors", f"the final dispatcher exited {code}")
        except subprocess.TimeoutExpired:
            self.problem("stranded", f"the final dispatcher did not finish in {self.deadline:g} s")
            self.stranded = True
            return
        if peer is not None:
            peer.send_signal(signal.SIGINT)
            try:
                self.note(f"peer dispatcher stopped by SIGINT: exit {peer.wait(15)}")
            except subprocess.TimeoutExpired:
                self.problem("errors", "the peer dispatcher did not stop within 15 s of SIGINT")

    # The checks ----------------------------------------------------------------------------

    def check(self) -> None:
        if self.stranded:
            self.note("killing the stranded trial's processes")
            self.kill_everything()
        else:
            self.check_orphans()
        self.check_tasks()
        self.check_runs()
        self.check_logs()
        verdict, _version = connection.inspect(self.db)
        if verdict != ["ok"]:
            self.problem("integrity", f"integrity_check: {'; '.join(verdict[:5])}")

    def check_orphans(self) -> None:
        # A process that is exiting right now is not an orphan: give it a moment.
        deadline = time.monotonic() + 0.5
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in left:
            self.problem("orphans", f"orphan {_describe(proc)}")

    def check_tasks(self) -> None:
        listed = subprocess.run(
            [KANBAN, "list", "--json"], env=self.env, cwd=self.dir, capture_output=True, text=True
        )
        if listed.returncode != 0:
            self.problem("errors", f"kanban list --json: {_last(listed.stderr)}")
            return
        tasks = json.loads(listed.stdout)
        status = {t["id"]: t["status"] for t in tasks}
        # A todo task behind a failed blocker, directly or through other such tasks, waits for
        # a person (`kanban retry`): that is the board doing its job, not a stranded task.
        behind_failed: set[str] = set()
        changed = True
        while changed:
            changed = False
            for t in tasks:
                if t["status"] != "todo" or t["id"] in behind_failed:
                    continue
                if any(
                    status.get(_id_of(b)) in ("failed", "cancelled") or _id_of(b) in behind_failed
                    for b in t["blockers"]
                ):
                    behind_failed.add(t["id"])
                    changed = True
        self.counts["tasks"] = len(tasks)
        for task in tasks:
            tid, state, n = task["id"], task["status"], task["title"].removeprefix("soak ")
            if state == "done":
                branch = task["branch"]
                seen = branch and self.git("cat-file", "-e", f"{branch}:out-{n}.txt", check=False)
                if not seen or seen.returncode != 0:
                    left = task["worktree"] and Path(task["worktree"], f"out-{n}.txt").exists()
                    self.problem(
                        "lost",
                        f"{tid} (soak {n}) is done but out-{n}.txt is not on its branch {branch}"
                        + (" (it is in the worktree, uncommitted)" if left else ""),
                    )
                # Only the agent's own failures spend attempts; our agent kills are the only
                # ones these agents have (issue 9, window 8).
                if task["attempts"] > self.agent_kills[tid] + 1:
                    self.problem(
                        "attempts",
                        f"{tid} is done after {task['attempts']} attempts, but only"
                        f" {self.agent_kills[tid]} agent kill(s) hit it",
                    )
            elif state == "todo" and task["id"] in behind_failed:
                self.note(f"{tid} stays todo behind a failed blocker")
            elif state in OPEN:
                self.problem("not_ended", f"{tid} ended {state}")
            elif state == "failed":
                killed = self.agent_kills[tid]
                text = f"{tid} failed ({task['failure_reason']}) after {killed} agent kill(s)"
                if killed < task["max_attempts"]:
                    self.problem("attempts", text)
                else:
                    self.note(text)
            else:
                self.problem("not_ended", f"{tid} ended {state}")

    def check_runs(self) -> None:
        uri = f"file:{urllib.parse.quote(self.db)}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            rows = conn.execute(
                "SELECT id, task_id, started_at, ended_at FROM runs ORDER BY task_id, started_at"
            ).fetchall()
        finally:
            conn.close()
        by_task: dict[int, list[tuple]] = collections.defaultdict(list)
        for run_id, task_id, started, ended in rows:
            if ended is None:
                self.problem("not_ended", f"run {run_id} of {ids.format(task_id)} never settled")
            for other_id, other_started, other_ended in by_task[task_id]:
                if started < (other_ended if other_ended is not None else float("inf")):
                    self.problem(
                        "overlaps",
                        f"runs {other_id} and {run_id} of {ids.format(task_id)} overlap"
                        f" ({other_started:.2f}..{other_ended} vs {started:.2f}..{ended})",
                    )
            by_task[task_id].append((run_id, started, ended))
        concurrent = self.dir / "concurrent.log"
        if concurrent.exists():
            for line in concurrent.read_text().splitlines():
                n, run = [*line.split(), "?"][:2]
                task = next((s.id for s in self.plan.specs if str(s.n) == n), f"soak {n}")
                self.problem(
                    "concurrent",
                    f"run {run} of {task} started while a process of an earlier"
                    " run of it still held the task's lock",
                )

    def check_logs(self) -> None:
        for number, proc in enumerate(self.dispatchers[:-1], start=1):
            # Chaos dispatchers end by our SIGKILL, or (a peer) by SIGINT: nothing else.
            if proc.returncode not in (None, 0, -signal.SIGKILL):
                self.problem("errors", f"dispatcher {number} exited {proc.returncode} by itself")
        for number in range(1, len(self.dispatchers) + 1):
            text = (self.dir / f"dispatcher-{number}.log").read_text(errors="replace")
            if "Traceback" in text:
                self.problem("errors", f"dispatcher {number} printed a traceback: {_error(text)}")

    def record(self) -> dict[str, Any]:
        return {
            "trial": self.number,
            "seed": self.plan.seed,
            "seconds": round(time.monotonic() - self.began, 2),
            "tasks": self.counts["tasks"],
            "kills": dict(self.kills),
            "counts": {key: self.counts[key] for key, _ in CHECKS},
            "problems": self.problems,
            "directory": str(self.dir),
        }


def run_trial(number: int, seed: int, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(seed, args.tasks)
    trial = Trial(number, plan, root / f"trial-{number:03d}-seed-{seed}", args.deadline)
    try:
        trial.run()
        trial.check()
    except Exception as exc:  # a soak bug or a broken CLI: the trial fails, the soak goes on
        trial.problem("errors", f"the soak itself failed: {type(exc).__name__}: {exc}")
    finally:
        leftovers = trial.kill_everything()
        if leftovers:
            trial.note(f"killed at the end: {', '.join(leftovers)}")
    result = trial.record()
    if trial.problems or args.keep:
        (trial.dir / "soak.json").write_text(
            json.dumps(
                {**result, "plan": dataclasses.asdict(plan), "timeline": trial.timeline}, indent=2
            )
        )
    else:
        shutil.rmtree(trial.dir, ignore_errors=True)
    return result


# --- helpers -----------------------------------------------------------------------------------


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def _parent_pid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.NoSuchProcess:
        return None


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return {}


def _describe(proc: psutil.Process) -> str:
    task = _environ(proc).get("HERMES_KANBAN_TASK")
    return f"pid {proc.pid} `{_cmdline(proc)[:80]}`" + (f" of {task}" if task else "")


def _id_of(blocker: Any) -> str:
    return blocker["id"] if isinstance(blocker, dict) else str(blocker)


def _error(traceback: str) -> str:
    """The exception line of a traceback (exception groups draw boxes around theirs)."""
    lines = [line.strip(" |+-") for line in traceback.splitlines()]
    found = [line for line in lines if re.match(r"[\w.]+(Error|Exception|Group)\b", line)]
    return found[-1][:300] if found else _last(traceback)


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument(
        "--seed", type=int, default=None, help="first trial's seed (default: random)"
    )
    parser.add_argument("--tasks", type=int, default=6, help="tasks per trial")
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds the final dispatcher may take"
    )
    parser.add_argument("--keep", action="store_true", help="keep every trial's directory")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1, 1_000_000)
    root = Path(tempfile.mkdtemp(prefix="kanban-soak-"))
    out = sys.stderr if args.json else sys.stdout
    print(
        f"soak: {args.trials} trials of {args.tasks} tasks, seeds {seed}..{seed + args.trials - 1},"
        f" in {root}",
        file=out,
        flush=True,
    )
    began = time.monotonic()
    results = []
    interrupted = False
    for number in range(1, args.trials + 1):
        try:
            result = run_trial(number, seed + number - 1, root, args)
        except KeyboardInterrupt:  # the trial's processes are gone (run_trial's finally)
            interrupted = True
            break
        results.append(result)
        kills = " ".join(f"{k[0]}{result['kills'].get(k, 0)}" for k in KINDS)
        problems = result["problems"]
        verdict = "; ".join(problems[:3]) or "ok"
        verdict += f" (+{len(problems) - 3} more)" if problems[3:] else ""
        print(
            f"  trial {number:3d} seed {result['seed']}: {result['tasks']} tasks, kills {kills},"
            f" {result['seconds']:.1f} s: {verdict}",
            file=out,
            flush=True,
        )
    summary = summarize(
        results, seed=seed, tasks=args.tasks, seconds=time.monotonic() - began, root=str(root)
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        report(summary)
    if not any(r["problems"] for r in results) and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if summary["failed_trials"] else 0


def summarize(
    results: list[dict], *, seed: int, tasks: int, seconds: float, root: str
) -> dict[str, Any]:
    failing = [r for r in results if r["problems"]]
    return {
        "trials": len(results),
        "tasks_per_trial": tasks,
        "seed": seed,
        "seconds": round(seconds, 1),
        "kills": {k: sum(r["kills"].get(k, 0) for r in results) for k in KINDS},
        "tasks": sum(r["tasks"] for r in results),
        "checks": {
            key: {
                "count": sum(r["counts"][key] for r in results),
                "trials": sum(1 for r in results if r["counts"][key]),
            }
            for key, _ in CHECKS
        },
        "integrity": "ok" if not any(r["counts"]["integrity"] for r in results) else "NOT OK",
        "failed_trials": len(failing),
        "failures": [
            {k: r[k] for k in ("trial", "seed", "problems", "directory")} for r in failing
        ],
        "directory": root,
    }


def report(summary: dict[str, Any]) -> None:
    print(
        f"\nsoak: {summary['trials']} trials in {summary['seconds']:.0f} s (seeds from"
        f" {summary['seed']}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"  {'':50} {'count':>7} {'trials':>7}")
    print(f"  {'trials':50} {summary['trials']:>7}")
    for kind in KINDS:
        print(f"  {'kills: ' + kind:50} {summary['kills'][kind]:>7}")
    print(f"  {'tasks':50} {summary['tasks']:>7}")
    for key, label in CHECKS:
        found = summary["checks"][key]
        print(f"  {label:50} {found['count']:>7} {found['trials']:>7}")
    print(f"  {'integrity':50} {summary['integrity']:>7}")
    if not summary["failures"]:
        print("\nevery invariant held")
        return
    print(
        f"\n{summary['failed_trials']} trial(s) failed; replay one with"
        f" `python -m bench.soak --trials 1 --tasks {summary['tasks_per_trial']} --seed SEED`:"
    )
    for failure in summary["failures"]:
        print(
            f"  trial {failure['trial']} (seed {failure['seed']}), kept in {failure['directory']}:"
        )
        for text in failure["problems"]:
            print(f"    - {text}")


if __name__ == "__main__":
    sys.exit(main())
