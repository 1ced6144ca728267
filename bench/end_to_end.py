"""One task end to end through kanban, per runtime, against the same agent run bare.

For each runtime (``codex``, ``hermes``) one small task (write a file, then report) goes
through a running ``kanban dispatch``, and the same scripted work is run by the bare agent
(``codex exec --sandbox workspace-write ...``, ``hermes chat -Q -q ...`` on its Codex
app-server runtime) in a checkout of the same repository. Both talk to one scripted model
(`testing.scripted_model`), so no time is spent thinking and what remains is the cost of
the programs and of the orchestration.

Workers reach the kanban tools through the board's one long-lived tool server (streamable
HTTP on 127.0.0.1), which the dispatcher starts on demand and which then stays up: every run
but a board's first finds it running. So there are three kanban modes:

- kanban: the tool server is already up (the steady state, and the figure of the goals);
- first run: the board's tool server is stopped just before the task is created, so this
  run's dispatcher has to start it (as for the first run of a board, or the first after the
  server went idle). Checked: its server started after the task was created;
- TCP_NODELAY: the tool server already up, but with Nagle's algorithm off on its sockets
  (`bench.timed_tool_server --nodelay`, recorded in the board in place of the shipped one):
  what a proposed one-line fix to `worker.mcp_server.http.bind` would give.

The bare agent is the baseline as before: the same model turns minus the kanban_complete call,
and no MCP server at all, because that is what running the agent without kanban is; the tool
call, the connection to the tool server and everything else kanban adds are its overhead.

The four modes are interleaved, their order rotating from one round to the next, after one
warm-up round that is not counted. A kanban run counts from the task's creation on the board to
the end of its run (the agent has exited and the dispatcher has committed its worktree and
settled the run); the bare run from its spawn to its exit. The kanban run is split with these
clocks (all wall clock, one machine):

- dispatch, split at its clocks: task created -> claimed (``runs.started_at``) -> the shim
  spawned (``runs.shim_started_at``; the worktree and, first run, the tool server's start
  taken out) -> the agent spawned by the shim (``runs.pid_started_at``);
- worktree: claimed -> the task's worktree recorded on the board (polled every 50 ms:
  `tasks.set_placement` is the only write to the task row in that window);
- tool server (first run only): its process spawned (found by polling our process tree
  every 50 ms) -> it listens (its record in the board);
- start-up: agent spawned -> the agent's first model request (which carries the tools: Codex
  holds it until it has the tool list); for Hermes, split at the spawn of `codex app-server`
  (through kanban's per-run ``codex`` wrapper);
- turns: first -> last model request (the scripted model's request log): the shell command,
  the kanban_complete call through the tool server, and the model's answers;
- exit + commit: last model request -> run ended: the agent shutting down, the shim
  recording its exit, the dispatcher committing the worktree and settling the run.

The bare run has start-up (spawn -> first request), turns and exit. The overhead is reported
as the ratio kanban / bare, per round (paired) and of the medians. `bench.mcp_startup` splits
Codex's start-up further (connect, handshake, first request).

Run on demand: ``.venv/bin/python -m bench.end_to_end [--runs 5]`` (about 3 minutes on 2
CPUs; `make bench` runs it). Needs `make tools`. Everything lives in a directory under the
repository's ignored ``demo-output/``, removed at the end; nothing touches ~/.codex,
~/.hermes or ~/.kanban.
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from bench import timed_tool_server
from board import connection, services
from orchestrator import toolserver
from testing import demo, scripted_model
from worker.setup import codex as codex_setup
from worker.setup import hermes as hermes_setup

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("codex", "hermes")
MODES = ("bare", "kanban", "first", "nodelay")
MODE_LABELS = {
    "kanban": "kanban",
    "first": "kanban, first run (starts the tool server)",
    "nodelay": "kanban, tool server with TCP_NODELAY",
    "bare": "bare",
}
GOALS = {"codex": 1.2, "hermes": 1.1}
POLL = 0.05  # seconds between looks at the process tree and the board
RUN_TIMEOUT = 180.0
FEATURES = demo.CODEX_SETTINGS


def psutil_clock_offset() -> float:
    """What to add to a psutil process start time to get wall-clock time.

    psutil derives start times from the boot time in /proc/stat, which is whole seconds, so
    they run up to 1 s early; the dispatcher records the shim's and the agent's start times
    that way too. /proc/uptime (1/100 s) gives the boot time precisely enough.
    """
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    return (time.time() - uptime) - psutil.boot_time()


def work_turns(marker: str) -> list[list[dict[str, Any]]]:
    return [[{"shell": f"echo {marker} > notes.txt"}]]


def script(markers: list[str]) -> dict[str, Any]:
    scenarios = []
    for marker in markers:
        report = (
            []
            if "-bare-" in marker
            else [[{"tool": "kanban_complete", "args": {"summary": f"{marker} written"}}]]
        )
        turns = [*work_turns(marker), *report, [{"message": f"{marker} done."}]]
        scenarios.append({"match": f"{marker}:", "turns": turns})
    return {"scenarios": scenarios}


# --- watching processes and the board ---------------------------------------------------


class Watcher:
    """Polls our process tree for the spawn times of the tool server and `codex app-server`,
    and the board for the current task's placement; `reset` before each measured run."""

    def __init__(self, db_path: Path, offset: float) -> None:
        self.db_path = db_path
        self.offset = offset
        self.spawned: dict[str, float] = {}
        self.placed: float | None = None
        self.task_id: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def reset(self, task_id: int | None = None) -> None:
        with self._lock:
            self.spawned, self.placed, self.task_id = {}, None, task_id

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        db = None
        while not self._stop.wait(POLL):
            for proc in _children(me):
                with contextlib.suppress(psutil.Error):
                    command = " ".join(proc.cmdline())
                    kind = (
                        "tool-server"
                        if "worker.mcp_server.http" in command
                        else "app-server"
                        if " app-server" in command
                        else None
                    )
                    if kind:
                        # The earliest process: the tool server's first one forks and exits,
                        # Hermes' `codex` wrapper execs the real one.
                        born = proc.create_time() + self.offset
                        with self._lock:
                            self.spawned[kind] = min(self.spawned.get(kind, born), born)
            with self._lock:
                task_id, placed = self.task_id, self.placed
            if task_id is not None and placed is None and self.db_path.exists():
                db = db or connection.connect(self.db_path)
                row = db.conn.execute(
                    "SELECT worktree, updated_at FROM tasks WHERE id = ?", (task_id,)
                ).fetchone()
                if row and row[0]:
                    with self._lock:
                        if self.task_id == task_id:
                            self.placed = row[1]
        if db is not None:
            db.conn.close()


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


# --- one measured run -------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    out: Path
    environ: dict[str, str]
    kanban: list[str]
    server: scripted_model.ScriptedModel
    watcher: Watcher
    repo: Path
    bare_codex_home: Path
    nodelay: subprocess.Popen[bytes] | None = None  # the TCP_NODELAY server, while it runs

    @property
    def db_path(self) -> Path:
        return self.out / "board.db"

    def serve(self, mode: str) -> None:
        """Before a kanban run: the board's tool server that `mode` needs (none: "first")."""
        if self.nodelay is not None and mode != "nodelay":
            timed_tool_server.stop(self.db_path)
            self.nodelay.wait()
            self.nodelay = None
        if mode == "first":
            # Right before the task: nothing else starts it while no run is live.
            timed_tool_server.stop(self.db_path)
        elif mode == "kanban":
            # What the dispatcher calls: the running server, or a new one (after "nodelay").
            toolserver.ensure(str(self.db_path), log_dir=self.out / "logs" / "bench")
        elif self.nodelay is None:
            timed_tool_server.stop(self.db_path)
            self.nodelay, _ = timed_tool_server.start(
                self.db_path, self.out / "nodelay-requests.jsonl", nodelay=True
            )

    def requests(self, marker: str) -> list[float]:
        return [
            r.time
            for r in self.server.requests
            if r.path == "/v1/responses" and r.scenario == f"{marker}:"
        ]

    def bare(self, runtime: str, marker: str) -> dict[str, float]:
        workdir = self.out / "bare" / marker
        subprocess.run(
            [
                "git",
                "-C",
                str(self.repo),
                "worktree",
                "add",
                "-q",
                "-b",
                f"bare/{marker}",
                str(workdir),
            ],
            env=self.environ,
            check=True,
        )
        prompt = f"{marker}: write notes.txt, then say you are done."
        environ = dict(self.environ)
        if runtime == "codex":
            argv = [
                self.environ["KANBAN_CODEX_BIN"],
                "exec",
                "--sandbox",
                "workspace-write",
                "--skip-git-repo-check",
                "--cd",
                str(workdir),
                prompt,
            ]
            environ["CODEX_HOME"] = str(self.bare_codex_home)
        else:
            argv = [self.environ["KANBAN_HERMES_BIN"], "chat", "-Q", "-q", prompt]
            environ |= hermes_setup.runtime_env(
                self.out / "hermes-home",
                codex_home=self.bare_codex_home,
                codex_bin=self.environ["KANBAN_CODEX_BIN"],
            )
        log = self.out / "bare" / f"{marker}.log"
        self.watcher.reset()
        with open(log, "wb") as handle:
            started = time.time()
            done = subprocess.run(
                argv,
                cwd=workdir,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=handle,
                timeout=RUN_TIMEOUT,
                check=False,
            )
            exited = time.time()
        if done.returncode != 0 or f"{marker}" not in (workdir / "notes.txt").read_text():
            raise RuntimeError(f"bare {runtime} run {marker} failed; see {log}")
        times = self.requests(marker)
        spawned = dict(self.watcher.spawned)
        row = {
            "start": times[0] - started,
            "turns": times[-1] - times[0],
            "exit": exited - times[-1],
            "total": exited - started,
        }
        if runtime == "hermes" and "app-server" in spawned:
            row["hermes"] = spawned["app-server"] - started
            row["codex"] = times[0] - spawned["app-server"]
        return row

    def kanban_run(self, runtime: str, marker: str, mode: str) -> dict[str, float]:
        """`mode`: "kanban" (the tool server up), "first" (this run's dispatcher starts it),
        "nodelay" (up, with TCP_NODELAY: the proposed fix)."""
        title = f"{marker}: write notes.txt"
        first = mode == "first"
        self.serve(mode)
        created = subprocess.run(
            [
                *self.kanban,
                "create",
                title,
                "--repo",
                str(self.repo),
                "--runtime",
                runtime,
                "--max-attempts",
                "1",
                "--timeout",
                str(RUN_TIMEOUT),
                "--body",
                "Write notes.txt, then report with kanban_complete.",
            ],
            env=self.environ,
            capture_output=True,
            text=True,
            check=True,
        )
        task_id = int(created.stdout.strip().removeprefix("t_"))
        self.watcher.reset(task_id)
        db = connection.connect(self.out / "board.db")
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                run = db.conn.execute(
                    "SELECT * FROM runs WHERE task_id = ? AND ended_at IS NOT NULL", (task_id,)
                ).fetchone()
                if run is not None:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kanban run {marker} did not end")
                time.sleep(POLL)
            columns = [c[0] for c in db.conn.execute("SELECT * FROM runs LIMIT 0").description]
            run = dict(zip(columns, run, strict=True))
            task = db.conn.execute(
                "SELECT status, created_at FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
        finally:
            db.conn.close()
        if task[0] != "done":
            raise RuntimeError(f"kanban run {marker} ended {task[0]}: {run['reason']}")
        time.sleep(2 * POLL)  # let the watcher's last look land
        spawned, placed = dict(self.watcher.spawned), self.watcher.placed
        times = self.requests(marker)
        if placed is None:
            raise RuntimeError(f"kanban run {marker}: missed the placement")
        server = self.tool_server()
        if first != (server.started_at > task[1]):
            raise RuntimeError(
                f"kanban run {marker}: the tool server started "
                f"{server.started_at - task[1]:+.2f} s after the task's creation; "
                f"expected {'after' if first else 'before'}"
            )
        worktree = placed - run["started_at"]
        agent = run["pid_started_at"] + self.watcher.offset
        shim = run["shim_started_at"] + self.watcher.offset
        row = {
            "dispatch": (agent - task[1]) - worktree,
            "claim": run["started_at"] - task[1],
            "launch": (shim - run["started_at"]) - worktree,
            "shim": agent - shim,
            "worktree": worktree,
            "start": times[0] - agent,
            "turns": times[-1] - times[0],
            "exit": run["ended_at"] - times[-1],
            "total": run["ended_at"] - task[1],
        }
        if first:
            born = spawned.get("tool-server", server.pid_started_at or server.started_at)
            row["server"] = server.started_at - min(born, server.started_at)
            row["dispatch"] -= row["server"]
            row["launch"] -= row["server"]
        if runtime == "hermes" and "app-server" in spawned:
            row["hermes"] = spawned["app-server"] - agent
            row["codex"] = times[0] - spawned["app-server"]
        return row

    def tool_server(self) -> services.ToolServer:
        db = connection.connect(self.out / "board.db")
        try:
            found = services.tool_server(db)
        finally:
            db.conn.close()
        if found is None:
            raise RuntimeError("the board records no tool server")
        return found


# --- set-up and report ------------------------------------------------------------------


@contextlib.contextmanager
def bench_setup(out: Path, markers: list[str]) -> Iterator[Bench]:
    demo.prepare_output(out)
    environ = demo.environment(out)
    kanban = demo.kanban_command()
    repo = out / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "bench"],
        ["config", "user.email", "bench@kanban.invalid"],
        ["config", "commit.gpgsign", "false"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], env=environ, check=True)
    for name, text in demo.PROJECT.items():
        (repo / name).write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], env=environ, check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], env=environ, check=True)
    (out / "bare").mkdir()
    with scripted_model.serve(script(markers)) as server:
        provider = codex_setup.ModelProvider(server.base_url, scripted_model.MODEL_NAME)
        (out / "codex-home").mkdir()
        (out / "codex-home" / "config.toml").write_text(FEATURES)
        codex_setup.install(out / "codex-home", model_provider=provider)
        (out / "hermes-home").mkdir()
        (out / "hermes-home" / "config.yaml").write_text(
            json.dumps({"security": {"tirith_enabled": False}}) + "\n"
        )
        hermes_setup.install(out / "hermes-home", model_provider=provider)
        bare_home = out / "bare-codex-home"
        bare_home.mkdir()
        # The same model and features as kanban's home (which names no MCP server either:
        # workers get the tool server on the command line); the sandbox Hermes asks for in
        # kanban mode (workspace-write) set here for its bare runs.
        (bare_home / "config.toml").write_text(
            f'model = "{provider.model}"\nmodel_provider = "scripted"\n'
            'sandbox_mode = "workspace-write"\n\n'
            f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{server.base_url}"\n'
            'wire_api = "responses"\n\n' + FEATURES
        )
        watcher = Watcher(out / "board.db", psutil_clock_offset())
        with open(out / "dispatcher.log", "wb") as log:
            dispatcher = subprocess.Popen(
                [*kanban, "dispatch", "--max-workers", "1"],
                env=environ,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        watcher.start()
        bench = Bench(out, environ, kanban, server, watcher, repo, bare_home)
        try:
            yield bench
        finally:
            watcher.stop()
            dispatcher.terminate()
            dispatcher.wait(timeout=60)
            # In a session of its own (started by the dispatcher or `serve`): it would outlive us.
            if (out / "board.db").exists():
                timed_tool_server.stop(out / "board.db")
            if bench.nodelay is not None:
                bench.nodelay.wait()


SEGMENTS = (
    ("dispatch", "dispatch: claim, prompt, spawn (less the worktree and the tool server)"),
    ("claim", "- of which task created -> claimed"),
    ("launch", "- of which prompt, tool server URL, environment, shim spawned (+-0.01)"),
    ("shim", "- of which shim spawned -> agent spawned (+-0.01: process start times)"),
    ("worktree", "worktree creation"),
    ("server", "tool server start: its spawn -> listening"),
    ("start", "start-up: agent spawned -> first model request (with the tools)"),
    ("hermes", "- of which Hermes, until it spawns `codex app-server`"),
    ("codex", "- of which `codex app-server` spawned -> first request"),
    ("turns", "the agent's turns: first -> last model request"),
    ("exit", "exit (kanban: + commit and settle)"),
    ("total", "**total**"),
)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def ratio(rows: list[dict[str, float]], bare_rows: list[dict[str, float]]) -> tuple[float, str]:
    """kanban / bare: of the medians, and paired per round (median (min-max))."""
    paired = [k["total"] / b["total"] for k, b in zip(rows, bare_rows, strict=True)]
    medians = statistics.median(r["total"] for r in rows) / statistics.median(
        r["total"] for r in bare_rows
    )
    return medians, summary(paired)


def report(results: dict[str, dict[str, list[dict[str, float]]]], runs: int) -> None:
    print(f"\n## One task end to end, kanban vs. the bare agent (median of {runs}, min-max, s)\n")
    ratios = []
    for runtime in results:
        modes = ("kanban", "first", "nodelay", "bare")
        print(f"### {runtime}\n")
        print(f"| segment | {' | '.join(MODE_LABELS[m] for m in modes)} |")
        print("|---" * (len(modes) + 1) + "|")
        for segment, label in SEGMENTS:
            cells = []
            for mode in modes:
                values = [r[segment] for r in results[runtime][mode] if segment in r]
                cells.append(summary(values) if values else "")
            if any(cells):
                print(f"| {label} | {' | '.join(cells)} |")
        bare = results[runtime]["bare"]
        for mode in ("kanban", "first", "nodelay"):
            medians, paired = ratio(results[runtime][mode], bare)
            print(
                f"\n{MODE_LABELS[mode]} / bare: {medians:.2f}x of the medians; paired per "
                f"round {paired}x"
            )
            ratios.append((runtime, mode, medians, paired))
        print()
    print("### Ratios (kanban / bare agent, same run, interleaved)\n")
    for runtime, mode, medians, paired in ratios:
        goal = GOALS[runtime]
        verdict = (
            ""
            if mode == "first"
            else (f"  goal <= {goal}x: {'met' if medians <= goal else 'NOT met'}")
        )
        print(f"  {runtime:6} {MODE_LABELS[mode]:45} {medians:.2f}x (paired {paired}x){verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "demo-output" / f"bench-end-to-end-{os.getpid()}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the output directory")
    parser.add_argument("--json", type=Path, help="also write the raw rows to this file")
    parser.add_argument(
        "--runtime", action="append", choices=RUNTIMES, help="only this runtime (repeatable)"
    )
    args = parser.parse_args(argv)
    chosen = tuple(args.runtime or RUNTIMES)
    out = Path(os.path.abspath(args.output))
    rounds = args.warmup + args.runs
    plan = []  # (round, runtime, mode), the modes' order rotating from round to round
    for index in range(rounds):
        for runtime in chosen:
            shift = (index + RUNTIMES.index(runtime)) % len(MODES)
            plan += [(index, runtime, mode) for mode in (*MODES[shift:], *MODES[:shift])]
    markers = {step: f"E2E-{step[1]}-{step[2]}-{step[0]}" for step in plan}
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        r: {m: [] for m in MODES} for r in chosen
    }
    started = time.monotonic()
    try:
        with bench_setup(out, list(markers.values())) as bench:
            for step in plan:
                index, runtime, mode = step
                if mode == "bare":
                    row = bench.bare(runtime, markers[step])
                else:
                    row = bench.kanban_run(runtime, markers[step], mode)
                label = "warm-up" if index < args.warmup else f"round {index - args.warmup + 1}"
                print(f"{label:>8} {runtime:6} {mode:6} {row['total']:6.2f} s", flush=True)
                if index >= args.warmup:
                    results[runtime][mode].append(row)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
            with contextlib.suppress(OSError):
                out.parent.rmdir()  # only if empty
    report(results, args.runs)
    print(f"({time.monotonic() - started:.0f} s in all; {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
