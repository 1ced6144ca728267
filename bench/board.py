"""The board's speed, against Hermes Agent's own kanban board, same scenarios, same run.

Scenarios (each on fresh board files in a temporary directory):

- create 10,000 tasks, one call each;
- claim-then-complete cycles draining 10,000 ready tasks;
- one heartbeat write, one process;
- heartbeats from 32 processes at once (total/s, p99, worst, errors, integrity afterwards);
- 4 processes draining 2,000 ready tasks at once, as 4 dispatchers sharing one board do
  (claims/s; errors counts refused calls, tasks claimed twice or never: ours only);
- the first 50 ready tasks of a 100,000-task board, and claiming the next ready task there
  (Hermes: what its dispatcher does, select every ready row and claim the first);
- completing the root of a 10,000-task chain (A blocks B blocks C ...);
- `kanban_show` at 100,000 tasks (ours: connect, `views.show`, close; Hermes: its tool
  handler, which also connects and closes).

Every measurement runs in a fresh interpreter; ours and Hermes' alternate repetition by
repetition so both see the same machine. Filling a board that a scenario only reads or
completes is not measured, and runs with ``synchronous=OFF`` to save time (the file is the
same); a checkpoint follows, so the first timed write does not pay for flushing the fill.
Hermes is driven through `hermes_cli.kanban_db` with Hermes' own interpreter, with
HERMES_HOME, HERMES_KANBAN_HOME and HERMES_KANBAN_DB pointed into the temporary directory
before it is imported. In the drain, Hermes' claim is given the task id (its dispatcher first
selects every ready row; that selection is not counted against it), while ours picks the next
task itself and also settles the run (a third transaction) after the worker's completion.

Only SQLite opens our board files (../shared/benchmarking.md, trap 1).

``--engine postgresql`` runs ours on PostgreSQL instead, ``--engine both`` on both side by
side (the default, ``sqlite``, only on SQLite). The server is a real one started for the run
(testing/postgres.py) with its data beside the SQLite files, on the same disk, a fresh
database for each fresh board file. Its durability is the one ours has on SQLite
(``synchronous=NORMAL`` in WAL mode: a commit survives the process, not necessarily the
machine, and nothing is corrupted): PostgreSQL's defaults with ``synchronous_commit=off``.
Drivers get the board's URL without its password, which they read from ``PGPASSWORD``.

Run on demand: ``.venv/bin/python -m bench.board [--reps 3] [--scale 1.0] [--only a,b]
[--engine sqlite|postgresql|both]``.
Needs `make tools` for the Hermes column (left empty when Hermes is not installed).
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)  # run as a script: `board` must be the package, not this file

HERMES_PYTHON = ROOT / ".tools" / "hermes" / "bin" / "python"
PUBLISHED = {  # Hermes 0.19 on this machine, ../shared/benchmarking.md
    "create": "0.42 ms",
    "drain": "696/s",
    "heartbeat": "0.22 ms",
    "hb32 total": "~3,600/s",
    "hb32 p99": "200 ms",
    "hb32 worst": "2.9 s",
    "ready50": "21 ms",
    "chain": "46 ms",
    "show": "64 ms",
}


# Ours on PostgreSQL: the server's settings beyond PostgreSQL's defaults (see above).
PG_SETTINGS = {"synchronous_commit": "off"}


def on_postgres(path: str) -> bool:
    return path.startswith(("postgresql://", "postgres://"))


# Adapters: the same operations on each board. They run inside driver processes only.


class Ours:
    def __init__(self, path: str) -> None:
        from board import actors, connection, runs, tasks, views
        from board.states import Outcome

        self.actors, self.connection, self.runs, self.tasks, self.views = (
            actors,
            connection,
            runs,
            tasks,
            views,
        )
        self.completed = Outcome.COMPLETED
        self.path = path
        self.db = connection.connect(path)

    def fast(self, on: bool) -> None:
        if on_postgres(self.path):  # commits never wait for the disk there (PG_SETTINGS)
            if not on:  # the first timed write must not pay for flushing the fill's log
                pg_execute(self.path, "CHECKPOINT")
            return
        self.db.conn.execute(f"PRAGMA synchronous = {'OFF' if on else 'NORMAL'}")
        if not on:  # the first timed write must not pay for flushing the fill's log
            self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def create(self, title: str, priority: int = 0, after: tuple = ()) -> Any:
        return self.tasks.create(
            self.db, self.tasks.NewTask(title, priority=priority, after=list(after))
        )

    def claim(self, task_id: Any = None) -> tuple:
        (claimed,) = self.runs.claim(self.db, task_id=task_id)
        worker = self.actors.Worker(claimed.task.id, claimed.run_id, claimed.token)
        return (claimed.task.id, claimed.run_id, claimed.token, worker)

    def complete(self, handle: tuple) -> None:
        task_id, run_id, _, worker = handle
        self.tasks.complete(self.db, task_id, "done", actor=worker)
        self.runs.settle(self.db, run_id, self.completed)  # the dispatcher ends the run

    def heartbeat(self, handle: tuple) -> bool:
        self.runs.heartbeat(self.db, handle[3])
        return True

    def comment(self, handle: tuple, body: str) -> None:
        self.tasks.comment(self.db, handle[0], body, actor=handle[3])

    def ready50(self) -> int:
        return len(self.tasks.list_tasks(self.db, ["ready"], limit=50))

    def claim_next(self) -> None:
        assert len(self.runs.claim(self.db)) == 1

    def complete_by_operator(self, task_id: Any) -> None:
        self.tasks.complete(self.db, task_id, "done by hand")

    def show_tool(self, task_id: Any) -> int:
        db = self.connection.connect(self.path)
        try:
            return len(json.dumps(self.views.show(db, task_id)))
        finally:
            db.conn.close()

    @staticmethod
    def worker_handle(argv: list[str]) -> tuple:
        from board import actors

        task_id, run_id, token = int(argv[0]), int(argv[1]), argv[2]
        return (task_id, run_id, token, actors.Worker(task_id, run_id, token))


class Hermes:
    def __init__(self, path: str) -> None:
        from hermes_cli import kanban_db

        self.kb = kanban_db
        self.path = path
        self.conn = kanban_db.connect(Path(path))

    def fast(self, on: bool) -> None:
        self.conn.execute(f"PRAGMA synchronous = {'OFF' if on else 'FULL'}")
        if not on:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def create(self, title: str, priority: int = 0, after: tuple = ()) -> Any:
        return self.kb.create_task(self.conn, title=title, priority=priority, parents=after)

    def claim(self, task_id: Any = None) -> tuple:
        task = self.kb.claim_task(self.conn, task_id)
        assert task is not None, f"could not claim {task_id}"
        return (task_id, task.current_run_id, "", None)

    def complete(self, handle: tuple) -> None:
        assert self.kb.complete_task(self.conn, handle[0], result="done", expected_run_id=handle[1])

    def heartbeat(self, handle: tuple) -> bool:
        return self.kb.heartbeat_worker(self.conn, handle[0], expected_run_id=handle[1])

    def comment(self, handle: tuple, body: str) -> None:
        self.kb.add_comment(self.conn, handle[0], author="worker", body=body)

    def ready50(self) -> int:
        return len(self.kb.list_tasks(self.conn, status="ready", limit=50))

    def claim_next(self) -> None:
        # What its dispatcher does each tick: select every ready row, claim from the top.
        ready = self.conn.execute(
            "SELECT id, assignee FROM tasks WHERE status = 'ready' AND claim_lock IS NULL"
            " ORDER BY priority DESC, created_at ASC"
        ).fetchall()
        assert self.kb.claim_task(self.conn, ready[0]["id"]) is not None

    def complete_by_operator(self, task_id: Any) -> None:
        assert self.kb.complete_task(self.conn, task_id, result="done by hand")

    def show_tool(self, task_id: Any) -> int:
        from tools import kanban_tools

        out = kanban_tools._handle_show({"task_id": task_id})
        assert '"task"' in out, out[:300]
        return len(out)

    @staticmethod
    def worker_handle(argv: list[str]) -> tuple:
        return (argv[0], int(argv[1]), "", None)


ADAPTERS = {"ours": Ours, "ours-pg": Ours, "hermes": Hermes}


def pg_execute(url: str, *statements: str) -> list[Any]:
    """Run `statements` on their own connection (autocommit); the last one's rows, if any."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[Any] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def pg_integrity(url: str) -> str:
    """PostgreSQL's counterpart of ``PRAGMA integrity_check``: amcheck on every B-tree index
    of the board (each index against its table's rows); "ok" or the first error."""
    import psycopg

    try:
        pg_execute(
            url,
            "CREATE EXTENSION IF NOT EXISTS amcheck",
            "SELECT bt_index_check(i.indexrelid, true) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE a.amname = 'btree' AND n.nspname = 'public'",
        )
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


# Scenarios: each returns one repetition's figures. They run inside driver processes only.


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def s_create(board: Any, n: int) -> dict:
    elapsed = timed(lambda: [board.create(f"task {i}") for i in range(n)])
    return {"create": elapsed / n * 1000}


def s_drain(board: Any, n: int) -> dict:
    board.fast(True)
    ids = [board.create(f"task {i}") for i in range(n)]
    board.fast(False)
    claim_id = isinstance(board, Hermes)

    def drain() -> None:
        for task_id in ids:
            board.complete(board.claim(task_id if claim_id else None))

    return {"drain": n / timed(drain)}


def s_heartbeat(board: Any, n: int) -> dict:
    handle = board.claim(board.create("long task"))
    assert all(board.heartbeat(handle) for _ in range(20))  # warm up
    return {"heartbeat": timed(lambda: [board.heartbeat(handle) for _ in range(n)]) / n * 1000}


def together(argvs: list[list[str]]) -> list[dict]:
    """Start one child of this file per argv, let them all go at once once every one is
    ready, and return what each printed (one JSON object)."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return [json.loads(proc.communicate()[0]) for proc in procs]


def s_hb32(board: Any, n: int, kind: str, path: str) -> dict:
    procs_n = 32
    handles = [board.claim(board.create(f"long task {i}")) for i in range(procs_n)]
    results = together(
        [["--child", kind, path, str(n), str(h[0]), str(h[1]), h[2]] for h in handles]
    )
    latencies = sorted(x for r in results for x in r["latencies"])
    ok = sum(r["ok"] for r in results)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    if on_postgres(path):
        integrity = pg_integrity(path)
    else:
        check = sqlite3.connect(path)
        try:
            integrity = check.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            integrity = f"{type(exc).__name__}: {exc}"
        finally:
            check.close()
    return {
        "hb32 total": ok / span,
        "hb32 p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "hb32 worst": latencies[-1] * 1000,
        "hb32 errors": sum(r["errors"] for r in results),
        "hb32 messages": sorted({m for r in results for m in r["messages"]})[:3],
        "hb32 integrity": integrity,
    }


DISPATCHERS = 4


def s_drain4(board: Any, n: int, kind: str, path: str) -> dict:
    """`n` ready tasks drained by 4 processes at once, each claiming the next ready task,
    completing it and settling its run, as 4 dispatchers sharing one board would."""
    if isinstance(board, Hermes):
        return {}  # Hermes' board has one dispatcher per host: not comparable
    board.fast(True)
    for i in range(n):
        board.create(f"task {i}")
    board.fast(False)
    results = together([["--drainer", kind, path] for _ in range(DISPATCHERS)])
    claimed = sum(r["claimed"] for r in results)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    runs_per_task = board.db.conn.execute(
        "SELECT count(*) FROM runs GROUP BY task_id HAVING count(*) <> 1"
    ).fetchall()
    return {
        "drain4": claimed / span,
        "drain4 errors": sum(r["errors"] for r in results) + len(runs_per_task) + abs(n - claimed),
    }


def drain_child(kind: str, path: str) -> None:
    board = ADAPTERS[kind](path)
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = errors = 0
    start = time.time()
    while True:
        try:
            found = board.runs.claim(board.db, dispatcher_id=os.getpid())
        except Exception:  # counted: a board that refuses a claim under load is the question
            errors += 1
            continue
        if not found:
            break
        (claim,) = found
        worker = board.actors.Worker(claim.task.id, claim.run_id, claim.token)
        board.complete((claim.task.id, claim.run_id, claim.token, worker))
        claimed += 1
    print(json.dumps({"claimed": claimed, "errors": errors, "start": start, "end": time.time()}))


def hb_child(kind: str, path: str, n: int, argv: list[str]) -> None:
    board = ADAPTERS[kind](path)
    handle = board.worker_handle(argv)
    print("ready", flush=True)
    sys.stdin.readline()
    latencies, ok, messages = [], 0, []
    start = time.time()
    for _ in range(n):
        began = time.perf_counter()
        try:
            ok += bool(board.heartbeat(handle))  # a refused heartbeat counts as an error
        except Exception as exc:  # counted, not fatal: "database is locked" is the question
            messages.append(f"{type(exc).__name__}: {exc}")
        latencies.append(time.perf_counter() - began)
    errors = n - ok
    print(
        json.dumps(
            {
                "latencies": latencies,
                "ok": ok,
                "errors": errors,
                "messages": sorted(set(messages))[:3],
                "start": start,
                "end": time.time(),
            }
        )
    )


def s_build_big(board: Any, n: int) -> dict:
    """A board of `n` ready tasks (priorities 0-9) and one finished task with some history."""
    board.fast(True)
    ids = [board.create(f"task {i}", priority=(i * 7) % 10) for i in range(n)]
    target = ids[n // 2]
    handle = board.claim(target)
    for i in range(3):
        board.heartbeat(handle)
        board.comment(handle, f"progress {i}")
    board.complete(handle)
    board.fast(False)
    return {"target": target}


def s_ready50(board: Any, calls: int) -> dict:
    assert board.ready50() == 50  # warm up
    return {"ready50": statistics.median(timed(board.ready50) for _ in range(calls)) * 1000}


def s_claim_next(board: Any, calls: int) -> dict:
    board.claim_next()  # warm up
    return {"claim_next": statistics.median(timed(board.claim_next) for _ in range(calls)) * 1000}


def s_show(board: Any, calls: int, target: Any) -> dict:
    board.show_tool(target)  # warm up
    times = [timed(lambda: board.show_tool(target)) for _ in range(calls)]
    return {"show": statistics.median(times) * 1000}


def s_chain(board: Any, n: int) -> dict:
    board.fast(True)
    ids = [board.create("root")]
    for i in range(1, n):
        ids.append(board.create(f"link {i}", after=(ids[-1],)))
    board.fast(False)
    elapsed = timed(lambda: board.complete_by_operator(ids[0]))
    return {"chain": elapsed * 1000}


def driver(kind: str, scenario: str, path: str, params: dict) -> dict:
    board = ADAPTERS[kind](path)
    if scenario == "hb32":
        return s_hb32(board, params["n"], kind, path)
    if scenario == "drain4":
        return s_drain4(board, params["n"], kind, path)
    function = globals()[f"s_{scenario}"]
    return function(board, **params)


# The runner: starts drivers, alternates implementations, prints the table.


# Which of ours each --engine measures: "ours" is the board on SQLite, "ours-pg" on PostgreSQL.
ENGINES = {"sqlite": ["ours"], "postgresql": ["ours-pg"], "both": ["ours", "ours-pg"]}


class Runner:
    def __init__(
        self, workdir: Path, with_hermes: bool, ours: list[str], pg: Any | None = None
    ) -> None:
        self.workdir = workdir
        self.kinds = [*ours, "hermes"] if with_hermes else list(ours)
        self.count = 0
        self.pg = pg  # a testing.postgres.Server when one of ours is on PostgreSQL

    def fresh(self, kind: str) -> str:
        self.count += 1
        if kind == "ours-pg":
            name = f"board_{self.count:03d}"
            self.pg.create_database(name)
            return self.pg.url(name, password=False)
        folder = self.workdir / f"{self.count:03d}-{kind}"
        folder.mkdir()
        return str(folder / ("board.db" if kind == "ours" else "kanban.db"))

    def run(self, kind: str, scenario: str, path: str, params: dict) -> dict:
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        if kind == "ours-pg":
            environment["PGPASSWORD"] = self.pg.password
        if kind == "hermes":
            folder = Path(path).parent
            environment.update(
                HERMES_HOME=str(folder / "hermes-home"),
                HERMES_KANBAN_HOME=str(folder / "kanban-home"),
                HERMES_KANBAN_DB=path,
            )
            python = str(HERMES_PYTHON)
        else:
            python = sys.executable
        result = subprocess.run(
            [python, __file__, "--driver", kind, scenario, path, json.dumps(params)],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{kind} {scenario} failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def repeat(self, scenario: str, reps: int, params: dict) -> dict[str, list[dict]]:
        """`reps` repetitions on fresh boards, alternating which implementation goes first."""
        found: dict[str, list[dict]] = {kind: [] for kind in self.kinds}
        for rep in range(reps):
            order = self.kinds if rep % 2 == 0 else self.kinds[::-1]
            for kind in order:
                found[kind].append(self.run(kind, scenario, self.fresh(kind), params))
        return found


def physical_floor(workdir: Path) -> dict[str, float]:
    """One autocommit insert in WAL mode, per synchronous setting, on a scratch file."""
    floor = {}
    for mode in ("NORMAL", "FULL"):
        conn = sqlite3.connect(workdir / f"floor-{mode}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {mode}")
        conn.execute("CREATE TABLE t (x)")
        n = 500
        started = time.perf_counter()
        for _ in range(n):
            conn.execute("INSERT INTO t VALUES (1)")
        floor[mode] = (time.perf_counter() - started) / n * 1000
        conn.close()
    return floor


def pg_floor(url: str) -> float:
    """One autocommit insert over TCP on the benchmark's PostgreSQL, in ms."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor (x int)")
        n = 500
        started = time.perf_counter()
        for _ in range(n):
            conn.execute("INSERT INTO floor VALUES (1)")
        elapsed = (time.perf_counter() - started) / n * 1000
        conn.execute("DROP TABLE floor")
    return elapsed


ROWS = [  # (key, label, unit, higher is better)
    ("create", "create a task (10,000 in a row)", "ms", False),
    ("drain", "claim then complete, draining 10,000", "/s", True),
    ("heartbeat", "one heartbeat, one process", "ms", False),
    ("hb32 total", "32 processes heartbeating: total", "/s", True),
    ("hb32 p99", "32 processes heartbeating: p99", "ms", False),
    ("hb32 worst", "32 processes heartbeating: worst", "ms", False),
    ("hb32 errors", "32 processes heartbeating: errors", "", False),
    ("drain4", "4 dispatchers draining 2,000: claims", "/s", True),
    ("drain4 errors", "4 dispatchers draining: errors", "", False),
    ("ready50", "first 50 ready of 100,000", "ms", False),
    ("claim_next", "claim the next ready task of 100,000", "ms", False),
    ("chain", "complete the root of a 10,000 chain", "ms", False),
    ("show", "kanban_show at 100,000 tasks", "ms", False),
]


def summary(values: list[float], unit: str) -> str:
    if not values:
        return "-"
    if unit == "":
        return f"{int(sum(values))} (sum)"
    fmt = (
        (lambda v: f"{v:,.0f}")
        if unit == "/s" or max(values) >= 100
        else (lambda v: f"{v:.3g}" if v < 1 else f"{v:.1f}")
    )
    median = statistics.median(values)
    return f"{fmt(median)}{unit} [{fmt(min(values))}-{fmt(max(values))}]"


def ratio(ours: list[float], hermes: list[float], higher_better: bool) -> str:
    if not ours or not hermes:
        return "-"
    a, b = statistics.median(ours), statistics.median(hermes)
    if a == 0 or b == 0:
        return "-"
    times = a / b if higher_better else b / a
    return f"{times:.1f}x {'faster' if times >= 1 else 'slower'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every size (smoke runs)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: create,drain,heartbeat,hb32,drain4,ready50,chain,show",
    )
    parser.add_argument("--dir", default=None, help="where the temporary boards go")
    parser.add_argument(
        "--keep", action="store_true", help="keep the board files afterwards (not PostgreSQL's)"
    )
    parser.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default="sqlite",
        help="which engine ours runs on; both: side by side, a PostgreSQL column beside SQLite's",
    )
    args = parser.parse_args()
    ours = ENGINES[args.engine]
    only = set(filter(None, args.only.split(",")))
    wanted = lambda name: not only or name in only  # noqa: E731
    size = lambda n: max(int(n * args.scale), 60)  # noqa: E731
    with_hermes = HERMES_PYTHON.exists()
    if not with_hermes:
        print("Hermes is not installed (make tools): measuring ours only", file=sys.stderr)

    workdir = Path(tempfile.mkdtemp(prefix="kanban-bench-board-", dir=args.dir))
    stack = contextlib.ExitStack()
    pg = None
    if "ours-pg" in ours:
        from testing import postgres

        workdir.chmod(0o711)  # the server may run as another user (root's is kanban-pg)
        try:  # its data beside the SQLite files: the same disk
            pg = stack.enter_context(postgres.server(settings=PG_SETTINGS, directory=workdir))
        except postgres.PostgresUnavailable as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    runner = Runner(workdir, with_hermes, ours, pg)
    figures: dict[str, dict[str, list]] = {kind: {} for kind in (*ours, "hermes")}

    def collect(found: dict[str, list[dict]]) -> None:
        for kind, reps in found.items():
            for rep in reps:
                for key, value in rep.items():
                    figures[kind].setdefault(key, []).append(value)

    try:
        floor = physical_floor(workdir)
        if pg is not None:
            pg.create_database("floor")
            floor["PostgreSQL"] = pg_floor(pg.url("floor"))
        plan = [
            ("create", args.reps, {"n": size(10_000)}),
            ("drain", args.reps, {"n": size(10_000)}),
            ("heartbeat", args.reps, {"n": size(2_000)}),
            ("hb32", args.reps, {"n": size(100)}),
            ("drain4", args.reps, {"n": size(2_000)}),
            ("chain", args.reps, {"n": size(10_000)}),
        ]
        for scenario, reps, params in plan:
            if wanted(scenario):
                print(f"... {scenario}", file=sys.stderr, flush=True)
                collect(runner.repeat(scenario, reps, params))
        if wanted("ready50") or wanted("show") or wanted("claim_next"):
            print("... building the 100,000-task boards", file=sys.stderr, flush=True)
            big = {}
            for kind in runner.kinds:
                path = runner.fresh(kind)
                big[kind] = (path, runner.run(kind, "build_big", path, {"n": size(100_000)}))
            for scenario in ("ready50", "show", "claim_next"):
                if not wanted(scenario):
                    continue
                print(f"... {scenario}", file=sys.stderr, flush=True)
                for rep in range(max(args.reps, 5)):
                    for kind in runner.kinds if rep % 2 == 0 else runner.kinds[::-1]:
                        path, built = big[kind]
                        params = {"calls": 10}
                        if scenario == "show":
                            params["target"] = built["target"]
                        collect({kind: [runner.run(kind, scenario, path, params)]})
    finally:
        stack.close()  # stops PostgreSQL, removes its directory
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\nBoard benchmark, scale {args.scale}, {args.reps} repetitions: "
        "median [min-max] over repetitions"
    )
    print(
        f"SQLite floor here: one WAL autocommit insert {floor['NORMAL']:.3f} ms with "
        f"synchronous=NORMAL (ours), {floor['FULL']:.3f} ms with FULL (Hermes)"
        + ("\n" if pg is None else "")
    )
    if pg is not None:
        print(
            f"PostgreSQL floor here: one autocommit insert over TCP "
            f"{floor['PostgreSQL']:.3f} ms with synchronous_commit=off (ours)\n"
        )
    name = {"ours": "ours", "ours-pg": "ours (PostgreSQL)", "hermes": "Hermes"}
    if len(ours) > 1:
        name["ours"] = "ours (SQLite)"
    # (column title, compared kind, baseline kind): every speed claim is a ratio against a
    # baseline measured in the same run.
    ratios = [(f"{name[kind]} vs Hermes", kind, "hermes") for kind in ours]
    if len(ours) > 1:
        ratios.append(("PostgreSQL vs SQLite", "ours-pg", "ours"))
    header = (
        "scenario",
        *(name[kind] for kind in (*ours, "hermes")),
        *(title for title, _, _ in ratios),
        "Hermes published",
    )
    table = [header]
    for key, label, unit, higher in ROWS:
        values = {kind: figures[kind].get(key, []) for kind in (*ours, "hermes")}
        if not any(values.values()):
            continue
        table.append(
            (
                label,
                *(summary(found, unit) for found in values.values()),
                *(ratio(values[a], values[b], higher) if unit else "" for _, a, b in ratios),
                PUBLISHED.get(key, ""),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for number, row in enumerate(table):
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            print("-+-".join("-" * width for width in widths))
    for kind in (*ours, "hermes"):
        checks = figures[kind].get("hb32 integrity", [])
        if checks:
            check = "amcheck" if kind == "ours-pg" else "integrity_check"
            print(f"\n{kind}: {check} after the 32-process runs: {checks}")
        messages = sorted({m for ms in figures[kind].get("hb32 messages", []) for m in ms})
        if messages:
            print(f"{kind}: heartbeat errors: {messages}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        _, _, kind, scenario, path, params = sys.argv
        print(json.dumps(driver(kind, scenario, path, json.loads(params))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--drainer":
        drain_child(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, path, n, *rest = sys.argv[2:]
        hb_child(kind, path, int(n), rest)
    else:
        sys.exit(main())
