"""How long an MCP client waits for the kanban MCP server, and what its tool calls cost.

Codex (and Hermes) start one MCP server per worker session, and the model's first request waits
for the `initialize` and `tools/list` answers. This measures, from spawn, the time to each
answer for our server and for baselines: a bare Python, Python importing the MCP SDK, and
Hermes' own MCP callback server (run with Hermes' interpreter and a throwaway HERMES_HOME).
Then one `kanban_heartbeat` round trip, and `kanban_show` / `kanban_list` on a board of
100,000 tasks.

Run on demand: ``.venv/bin/python -m bench.mcp_startup [--runs 20]``. Needs `make tools` for
the Hermes row (skipped when Hermes is not installed).
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from board import actors, connection, runs, tasks
from worker import env

ROOT = Path(__file__).resolve().parent.parent

HERMES_PYTHON = ROOT / ".tools" / "hermes" / "bin" / "python"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


class RawClient:
    """Newline-delimited JSON-RPC over a child's pipes: no SDK on our side of the timing."""

    def __init__(self, argv: list[str], environment: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.next_id = 10

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def answer(self, request_id: int) -> dict:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.proc.args} closed stdout before answering")
            message = json.loads(line)
            if message.get("id") == request_id:
                return message

    def call(self, tool: str, arguments: dict) -> dict:
        self.next_id += 1
        self.send(
            {
                "jsonrpc": "2.0",
                "id": self.next_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
        )
        result = self.answer(self.next_id)["result"]
        if result.get("isError"):
            raise RuntimeError(f"{tool}: {result['content'][0]['text']}")
        return result

    def handshake(self) -> tuple[float, float]:
        """Seconds from spawn to the initialize answer and to the tools/list answer."""
        self.send(INITIALIZE)
        self.answer(1)
        initialized = time.perf_counter() - self.started
        self.send(INITIALIZED)
        self.send(LIST)
        tools = self.answer(2)["result"]["tools"]
        if not tools:
            raise RuntimeError(f"{self.proc.args} lists no tools")
        return initialized, time.perf_counter() - self.started

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def stats(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):7.1f} ({min(ms):.1f}-{max(ms):.1f})"


def time_ready(code: str) -> float:
    """Seconds from spawn until `python -c CODE` prints its first line (not its exit: the
    interpreter's teardown after a big import takes a while and no client waits for it)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code + "; print(flush=True)"], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    ready = time.perf_counter() - start
    proc.stdout.close()
    proc.wait()
    return ready


def time_server(argv: list[str], environment: dict[str, str]) -> tuple[float, float]:
    client = RawClient(argv, environment)
    try:
        return client.handshake()
    finally:
        client.close()


def base_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TERM")  # about what Codex passes an MCP server
    return {k: os.environ[k] for k in keep if k in os.environ} | extra


def startup(n: int, tmp: Path) -> None:
    """Round-robin over the candidates, so a change in machine load hits them all alike."""
    connection.connect(tmp / "startup.db").conn.close()  # created and migrated up front
    ours = [sys.executable, "-m", "worker.mcp_server"]
    servers = {
        "kanban: python -m worker.mcp_server": (ours, base_env(**{env.DB: str(tmp / "startup.db")}))
    }
    if HERMES_PYTHON.exists():
        home = tmp / "hermes-home"
        home.mkdir()
        argv = [str(HERMES_PYTHON), "-m", "agent.transports.hermes_tools_mcp_server"]
        servers["hermes: agent.transports.hermes_tools_mcp_server"] = (
            argv,
            base_env(HERMES_HOME=str(home), HERMES_QUIET="1"),
        )
    else:
        print(f"(no {HERMES_PYTHON}: run `make tools` for the Hermes row)")
    programs = {
        "python -c pass": "pass",
        "python -c 'import mcp'": "import mcp",
        "python -c 'import mcp.server.lowlevel'": "import mcp.server.lowlevel",
    }
    for argv, environment in servers.values():
        time_server(argv, environment)  # warm caches; Hermes populates its home
    exits: dict[str, list[float]] = {name: [] for name in programs}
    answers: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in servers}
    for _ in range(n):
        for name, code in programs.items():
            exits[name].append(time_ready(code))
        for name, (argv, environment) in servers.items():
            init, listed = time_server(argv, environment)
            answers[name][0].append(init)
            answers[name][1].append(listed)

    print(
        f"\nStart-up, ms from spawn: median (min-max) of {n}, round-robin"
        " (`python -c`: until it prints after the import)"
    )
    print(f"{'process':52} {'initialize':>20} {'tools/list':>20}")
    for name, times in exits.items():
        print(f"{name:52} {stats(times):>20} {'-':>20}")
    for name, (init, listed) in answers.items():
        print(f"{name:52} {stats(init):>20} {stats(listed):>20}")
    ours_list = statistics.median(answers["kanban: python -m worker.mcp_server"][1])
    print("\nkanban tools/list answer vs each baseline (median / median):")
    baselines = {**exits, **{k: v[1] for k, v in answers.items() if not k.startswith("kanban")}}
    for name, times in baselines.items():
        print(f"  vs {name:50} {ours_list / statistics.median(times):6.2f}x")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


def heartbeat(n: int, tmp: Path) -> None:
    db = connection.connect(tmp / "heartbeat.db")
    task_id = tasks.create(db, tasks.NewTask("Heartbeat bench"))
    (claim,) = runs.claim(db, task_id=task_id)
    db.conn.close()
    worker_env = base_env(
        **{
            env.DB: str(tmp / "heartbeat.db"),
            env.TASK: f"t_{task_id}",
            env.RUN_ID: str(claim.run_id),
            env.TOKEN: claim.token,
        }
    )
    client = RawClient([sys.executable, "-m", "worker.mcp_server"], worker_env)
    try:
        client.handshake()
        start = time.perf_counter()
        client.call("kanban_heartbeat", {})
        first = time.perf_counter() - start
        times = []
        for i in range(n):
            start = time.perf_counter()
            client.call("kanban_heartbeat", {"note": f"step {i}"} if i % 2 else {})
            times.append(time.perf_counter() - start)
    finally:
        client.close()
    print(
        f"\nkanban_heartbeat round trip, ms: first call (opens the board) {first * 1000:.1f}; "
        f"then median (min-max) of {n}: {stats(times)}"
    )


def big_board(tmp: Path, count: int = 100_000) -> tuple[int, float]:
    """`count` tasks in one transaction (raw SQL), and one task with subtasks and history."""
    db = connection.connect(tmp / "big.db")
    start = time.perf_counter()
    with connection.transaction(db) as tx:
        statuses = ("done", "done", "done", "ready", "todo", "failed", "blocked", "cancelled")
        tx.conn.executemany(
            "INSERT INTO tasks (title, body, status, priority, depth, runtime, created_at,"
            " updated_at, summary) VALUES (?, ?, ?, ?, 0, 'hermes', ?, ?, ?)",
            (
                (
                    f"Task {i}",
                    "Do the thing. " * 20,
                    statuses[i % len(statuses)],
                    i % 7,
                    tx.now,
                    tx.now,
                    "Did it." if i % 8 < 3 else None,
                )
                for i in range(count)
            ),
        )
    inserted = time.perf_counter() - start
    parent = tasks.create(db, tasks.NewTask("The task a worker shows", body="Details " * 200))
    (claim,) = runs.claim(db, task_id=parent)
    worker = actors.Worker(parent, claim.run_id, claim.token)
    for i in range(5):
        tasks.create(db, tasks.NewTask(f"Subtask {i}"), worker)
    for i in range(100):
        runs.heartbeat(db, worker, f"step {i}")
        if i % 10 == 0:
            tasks.comment(db, parent, f"Progress note {i}", actor=worker)
    db.conn.close()
    return parent, inserted


def show_on_big_board(n: int, tmp: Path) -> None:
    parent, inserted = big_board(tmp)
    client = RawClient(
        [sys.executable, "-m", "worker.mcp_server"], base_env(**{env.DB: str(tmp / "big.db")})
    )
    try:
        client.handshake()
        client.call("kanban_show", {"task_id": f"t_{parent}"})  # opens the board
        results = {}
        for label, tool, arguments in (
            (
                "kanban_show (100 events, 10 comments, 5 subtasks)",
                "kanban_show",
                {"task_id": f"t_{parent}"},
            ),
            ("kanban_list (no filter, 50 of 100k)", "kanban_list", {}),
            ("kanban_list status=ready (50)", "kanban_list", {"status": ["ready"]}),
        ):
            times, size = [], 0
            for _ in range(n):
                start = time.perf_counter()
                result = client.call(tool, arguments)
                times.append(time.perf_counter() - start)
                size = len(json.dumps(result))
            results[label] = (times, size)
    finally:
        client.close()
    print(
        f"\nBoard of 100,005 tasks (100,000 inserted in {inserted:.2f} s in one transaction);"
        f" round trip ms, median (min-max) of {n}:"
    )
    for label, (times, size) in results.items():
        print(f"  {label:52} {stats(times):>22}   result {size / 1024:.1f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    n = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="kanban-mcp-bench-") as tmp:
        startup(n, Path(tmp))
        heartbeat(200, Path(tmp))
        show_on_big_board(n, Path(tmp))


if __name__ == "__main__":
    main()
