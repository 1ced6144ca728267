"""The tool server's own costs, for `bench.mcp_startup`: its start-up, and tool calls over HTTP.

Sections 2 and 3 of `bench.mcp_startup` (see its docstring): run through it.
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench import timed_tool_server
from board import actors, connection, runs, tasks
from orchestrator import toolserver
from worker import env

ROOT = Path(__file__).resolve().parent.parent
HERMES_PYTHON = ROOT / ".tools" / "hermes" / "bin" / "python"


def ms(values: list[float]) -> str:
    """Median (min-max) in ms; to 0.1 ms below 10 ms."""
    scaled = [v * 1000 for v in values]
    middle = statistics.median(scaled)
    d = 1 if middle < 10 else 0
    return f"{middle:.{d}f} ({min(scaled):.{d}f}-{max(scaled):.{d}f})"


LABELS = {
    "kanban": "the tool server as shipped",
    "nodelay": "the tool server with TCP_NODELAY",
}

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


# --- raw MCP clients -----------------------------------------------------------------------


class HttpClient:
    """JSON-RPC over one keep-alive HTTP connection, as a worker's Codex holds it."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        self.next_id = 10

    def post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        self.conn.request("POST", "/mcp", body=json.dumps(message).encode(), headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status >= 400:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return json.loads(body) if body else None

    def handshake(self) -> list[str]:
        self.post(INITIALIZE)
        self.headers["MCP-Protocol-Version"] = INITIALIZE["params"]["protocolVersion"]
        self.post(INITIALIZED)
        listed = self.post(LIST)
        assert listed is not None
        return [tool["name"] for tool in listed["result"]["tools"]]

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        answer = self.post(
            {
                "jsonrpc": "2.0",
                "id": self.next_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
        )
        assert answer is not None
        result = answer["result"]
        if result.get("isError"):
            raise RuntimeError(f"{tool}: {result['content'][0]['text']}")
        return result

    def close(self) -> None:
        self.conn.close()


# --- section 2: the tool server's own start-up --------------------------------------------


class StdioClient:
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

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def answer(self, request_id: int) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.proc.args} closed stdout before answering")
            message = json.loads(line)
            if message.get("id") == request_id:
                return message

    def listed(self) -> float:
        """Seconds from spawn to the tools/list answer."""
        self.send(INITIALIZE)
        self.answer(1)
        self.send(INITIALIZED)
        self.send(LIST)
        if not self.answer(2)["result"]["tools"]:
            raise RuntimeError(f"{self.proc.args} lists no tools")
        return time.perf_counter() - self.started

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def time_ready(code: str) -> float:
    """Seconds from spawn until `python -c CODE` prints (not its exit: the interpreter's
    teardown after a big import takes a while and no client waits for it)."""
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


def time_stdio(argv: list[str], environment: dict[str, str]) -> float:
    client = StdioClient(argv, environment)
    try:
        return client.listed()
    finally:
        client.close()


def time_tool_server(db_path: Path, token: str, log_dir: Path) -> tuple[float, float]:
    """`toolserver.ensure` from nothing: seconds until it returns (the server listens and is
    recorded) and until a client has the tool list; then the server is stopped."""
    start = time.perf_counter()
    found = toolserver.ensure(str(db_path), log_dir=log_dir)
    listening = time.perf_counter() - start
    client = HttpClient(found.port, token)
    try:
        client.handshake()
        listed = time.perf_counter() - start
    finally:
        client.close()
        timed_tool_server.stop(db_path)
    return listening, listed


def base_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TERM")  # about what Codex passes a stdio MCP server
    return {k: os.environ[k] for k in keep if k in os.environ} | extra


def server_section(out: Path, n: int) -> dict[str, Any]:
    """Round-robin over the candidates, so a change in machine load hits them all alike."""
    db_path = out / "startup.db"
    db = connection.connect(db_path)
    task_id = tasks.create(db, tasks.NewTask("Start-up bench"))
    (claim,) = runs.claim(db, task_id=task_id)
    db.conn.close()
    worker_env = base_env(
        **{
            env.DB: str(db_path),
            env.TASK: f"t_{task_id}",
            env.RUN_ID: str(claim.run_id),
            env.TOKEN: claim.token,
        }
    )
    stdio = {
        "old per-worker stdio server: python -m worker.mcp_server": (
            [sys.executable, "-m", "worker.mcp_server"],
            worker_env,
        )
    }
    if HERMES_PYTHON.exists():
        home = out / "hermes-mcp-home"
        home.mkdir()
        stdio["hermes: agent.transports.hermes_tools_mcp_server"] = (
            [str(HERMES_PYTHON), "-m", "agent.transports.hermes_tools_mcp_server"],
            base_env(HERMES_HOME=str(home), HERMES_QUIET="1"),
        )
    else:
        print(f"(no {HERMES_PYTHON}: run `make tools` for the Hermes row)")
    programs = {"python -c pass": "pass", "python -c 'import mcp'": "import mcp"}
    log_dir = out / "tool-server-logs"
    for argv, environment in stdio.values():
        time_stdio(argv, environment)  # warm caches; Hermes populates its home
    time_tool_server(db_path, claim.token, log_dir)
    ready: dict[str, list[float]] = {name: [] for name in programs}
    listed: dict[str, list[float]] = {name: [] for name in stdio}
    ours: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for name, code in programs.items():
            ready[name].append(time_ready(code))
        for name, (argv, environment) in stdio.items():
            listed[name].append(time_stdio(argv, environment))
        up, answered = time_tool_server(db_path, claim.token, log_dir)
        ours[0].append(up)
        ours[1].append(answered)
    print(
        f"\n## The board's tool server starting (only a board's first run waits for it), ms "
        f"from spawn, median (min-max) of {n}, round-robin\n"
    )
    print("| process | listening | has the tool list |")
    print("|---|---|---|")
    for name, times in ready.items():
        print(f"| {name} (until it prints) | {ms(times)} | |")
    for name, times in listed.items():
        print(f"| {name} | | {ms(times)} |")
    print(
        "| **kanban tool server: `toolserver.ensure` (python -m worker.mcp_server.http "
        f"--detach)** | {ms(ours[0])} | {ms(ours[1])} |"
    )
    return {"ready": ready, "stdio": listed, "tool_server": ours}


# --- section 3: tool calls over HTTP ------------------------------------------------------


def claim_one(db_path: Path, title: str) -> runs.Claim:
    """A new task, claimed: a live run whose token the tool server accepts."""
    db = connection.connect(db_path)
    try:
        (claim,) = runs.claim(db, task_id=tasks.create(db, tasks.NewTask(title)))
    finally:
        db.conn.close()
    return claim


def heartbeats(url: str, db_path: Path, n: int) -> tuple[float, list[float]]:
    claim = claim_one(db_path, "Heartbeat bench")
    client = HttpClient(urllib.parse.urlsplit(url).port or 80, claim.token)
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
    return first, times


def big_board(path: Path, count: int = 100_000) -> tuple[runs.Claim, float]:
    """`count` tasks in one transaction (raw SQL), and one claimed task with subtasks and
    history, whose run's token the worker's client uses."""
    db = connection.connect(path)
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
    return claim, inserted


def calls_section(out: Path, n: int, heartbeat_n: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in ("kanban", "nodelay"):
        path = out / f"calls-{name}.db"
        connection.connect(path).conn.close()
        log = out / f"calls-{name}-requests.jsonl"
        proc, found = timed_tool_server.start(path, log, nodelay=name == "nodelay")
        try:
            results[name] = heartbeats(found.url, path, heartbeat_n)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("\n## Tool calls over HTTP (one keep-alive connection), ms, median (min-max)\n")
    for name in ("kanban", "nodelay"):
        first, times = results[name]
        print(
            f"kanban_heartbeat, {LABELS[name]}: first call {first * 1000:.1f}; "
            f"then {heartbeat_n} calls {ms(times)}, mean {statistics.mean(times) * 1000:.1f}"
        )

    path = out / "big.db"
    claim, inserted = big_board(path)
    label = f"t_{claim.task.id}"
    cases = [
        ("kanban_show (100 events, 10 comments, 5 subtasks)", "kanban_show", {"task_id": label}),
        ("kanban_list (no filter, 50 of 100k)", "kanban_list", {}),
        ("kanban_list status=ready (50)", "kanban_list", {"status": ["ready"]}),
    ]
    shown: dict[str, dict[str, list[float]]] = {title: {} for title, _, _ in cases}
    sizes: dict[str, int] = {}
    for name in ("kanban", "nodelay"):
        log = out / f"big-{name}-requests.jsonl"
        proc, found = timed_tool_server.start(path, log, nodelay=name == "nodelay")
        client = HttpClient(found.port, claim.token)
        try:
            client.handshake()
            client.call("kanban_show", {"task_id": label})  # warms the server's board
            for title, tool, arguments in cases:
                shown[title][name] = []
                for _ in range(n):
                    start = time.perf_counter()
                    result = client.call(tool, arguments)
                    shown[title][name].append(time.perf_counter() - start)
                sizes[title] = len(json.dumps(result))
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=30)
    print(
        f"\nBoard of 100,006 tasks (100,000 inserted in {inserted:.2f} s in one transaction);"
        f" a worker's calls over HTTP, ms, median (min-max) of {n}:\n"
    )
    print("| call | result | as shipped | TCP_NODELAY |")
    print("|---|---|---|---|")
    for title, times in shown.items():
        print(
            f"| {title} | {sizes[title] / 1024:.1f} KiB | {ms(times['kanban'])} "
            f"| {ms(times['nodelay'])} |"
        )
    results["big_board"] = shown
    return results
