"""How long a worker's Codex waits for the kanban tools, and what a tool call costs.

No worker starts an MCP server of its own any more: one long-lived tool server per board
(`worker.mcp_server.http`) serves every worker over streamable HTTP on 127.0.0.1, and each
worker's Codex gets its URL and the run's token by ``-c`` overrides. Codex connects at start
and holds its first model request until it has the tool list (``required = true``); that
first ``POST /v1/responses`` carries the tools. Three sections:

1. Codex, spawn -> its first model request, against the scripted model (`testing.
   scripted_model`, one message turn, so Codex exits at once), for one worker and for 8
   started at once, all 8 on the same board's tool server, each with a run of its own:
   - bare: ``codex exec`` as a user runs it, no MCP server (the baseline);
   - kanban: the `codex` runtime's exact command line and environment (`CodexRuntime.launch`,
     `env.build`), the board's tool server already running;
   - kanban, TCP_NODELAY: the same against a server whose listening socket has Nagle's
     algorithm off (a proposed one-line fix, see `bench.timed_tool_server`);
   - -c flags, server off (one worker only): kanban's command line plus
     ``mcp_servers.kanban.enabled=false``: Codex parses every flag but connects nowhere.
   The tool servers run under `bench.timed_tool_server` (the real server, its requests
   logged), which splits the kanban rows: spawn -> the server receives ``initialize``
   (Codex's own start-up), -> the ``tools/list`` answer sent (the handshake), -> the first
   model request (Codex turning the tools into its request, and its other start-up work).
   Also each Codex's CPU time (``wait4``), which is what 8 workers at once on few CPUs pay.
   Variants are interleaved, their order rotating from round to round, after one warm-up
   round that is not counted.
2. The tool server's own start-up, which only the first run of a board (or the first after
   it went idle) waits for: ``toolserver.ensure`` (what the dispatcher calls) until it
   returns, and until a raw HTTP client has the tool list; baselines: ``python -c pass``,
   ``import mcp``, the stdio server each worker's Codex used to start (``python -m
   worker.mcp_server``), and Hermes' own MCP callback server (skipped without `make tools`).
3. Tool calls over HTTP (a raw keep-alive client, no SDK, calls back to back):
   ``kanban_heartbeat``, and ``kanban_show`` / ``kanban_list`` on a board of 100,000 tasks,
   each against the server as shipped and with TCP_NODELAY.

Run on demand: ``.venv/bin/python -m bench.mcp_startup [--runs 5]`` (about 2 minutes on 2
CPUs). Needs `make tools` (Codex; Hermes for one row). Everything lives in a directory under
the repository's ignored ``demo-output/``, removed at the end (``--keep`` keeps it).
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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import timed_tool_server, tool_server_costs
from board import connection, runs
from testing import demo, scripted_model
from worker import env
from worker.runtimes import base
from worker.runtimes import codex as codex_runtime
from worker.setup import codex as codex_setup

ROOT = Path(__file__).resolve().parent.parent
GROUP = 8  # workers started at once
RUN_TIMEOUT = 120.0
GOAL_MS = 100.0

SINGLE = ("bare", "kanban", "nodelay", "flags")
GROUPED = ("bare", "kanban", "nodelay")
LABELS = {
    "bare": "bare `codex exec` (no MCP server)",
    "kanban": "kanban (the board's tool server, as shipped)",
    "nodelay": "kanban, tool server with TCP_NODELAY",
    "flags": "kanban's -c flags, server off (enabled=false)",
}


# --- section 1: Codex, spawn -> its tools -------------------------------------------------


@dataclasses.dataclass
class Board:
    """A board with the timed tool server on it; `claim` gives a live run for a worker."""

    path: Path
    log: Path
    proc: subprocess.Popen[bytes]
    url: str

    def claim(self, title: str) -> runs.Claim:
        return tool_server_costs.claim_one(self.path, title)

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@dataclasses.dataclass
class Spawned:
    variant: str
    marker: str
    proc: subprocess.Popen[bytes]
    spawned: float
    who: str | None  # the bearer's hash prefix in the server's log


@dataclasses.dataclass
class Codex:
    out: Path
    environ: dict[str, str]
    model: scripted_model.ScriptedModel
    boards: dict[str, Board]  # "kanban", "nodelay"
    workspace: Path
    counter: int = 0

    def command(self, variant: str, marker: str) -> tuple[list[str], dict[str, str], str | None]:
        prompt = f"{marker}: say done."
        if variant == "bare":
            argv = [
                self.environ["KANBAN_CODEX_BIN"],
                "exec",
                "--sandbox",
                "workspace-write",
                "--skip-git-repo-check",
                "--cd",
                str(self.workspace),
                prompt,
            ]
            return argv, dict(self.environ), None
        board = self.boards["nodelay" if variant == "nodelay" else "kanban"]
        claim = board.claim(marker)
        context = base.Context(
            task=claim.task,
            run_id=claim.run_id,
            token=claim.token,
            attempt=claim.attempt,
            kind=claim.kind,
            workspace=str(self.workspace),
            branch=None,
            db_path=str(board.path),
            prompt=prompt,
            settings=base.Settings(
                codex_bin=self.environ["KANBAN_CODEX_BIN"],
                codex_home=self.environ["CODEX_HOME"],
            ),
            private_dir=str(self.out),
            tool_url=board.url,
        )
        launch = codex_runtime.CodexRuntime().launch(context)
        environ = env.build(
            self.environ,
            task=f"t_{claim.task.id}",
            run_id=claim.run_id,
            token=claim.token,
            workspace=str(self.workspace),
            branch=None,
            db_path=str(board.path),
        )
        environ.update(launch.env)
        argv = list(launch.argv)
        if variant == "flags":
            off = ["-c", f"mcp_servers.{codex_setup.SERVER}.enabled=false"]
            argv = [*argv[:-1], *off, argv[-1]]
        return argv, environ, timed_tool_server.token_hash(claim.token)

    def start(self, variants: list[str], tag: str) -> list[Spawned]:
        """Spawn one Codex per entry of `variants`, back to back (prepared beforehand)."""
        prepared = []
        for variant in variants:
            self.counter += 1
            marker = f"MS-{variant}-{tag}-{self.counter}"
            prepared.append((variant, marker, *self.command(variant, marker)))
        spawned = []
        for variant, marker, argv, environ, who in prepared:
            with open(self.out / "logs" / f"{marker}.log", "wb") as log:
                started = time.time()
                proc = subprocess.Popen(
                    argv,
                    cwd=self.workspace,
                    env=environ,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            spawned.append(Spawned(variant, marker, proc, started, who))
        return spawned

    def measure(self, spawned: list[Spawned]) -> list[dict[str, float]]:
        cpu = {}
        for one in spawned:
            code, cpu[one.marker] = reap(one.proc, RUN_TIMEOUT)
            if code != 0:
                raise RuntimeError(f"codex {one.marker} failed; see {self.out / 'logs'}")
        served = {name: board.requests() for name, board in self.boards.items() if name != "flags"}
        rows = []
        for one in spawned:
            first = next(
                r
                for r in self.model.requests
                if r.path == "/v1/responses" and f"{one.marker}:" in r.user_text
            )
            tools = [n for n in first.tool_names if n.startswith(scripted_model.DEFAULT_NAMESPACE)]
            wants_tools = one.variant in ("kanban", "nodelay")
            if bool(tools) != wants_tools:
                raise RuntimeError(f"codex {one.marker}: first request offers {tools or 'none'}")
            row = {"first": first.time - one.spawned, "cpu": cpu[one.marker]}
            if wants_tools:
                mine = [r for r in served[one.variant] if r["who"] == one.who]
                init = next(r for r in mine if r["rpc"] == ["initialize"])
                listed = next(r for r in mine if r["rpc"] == ["tools/list"])
                row |= {
                    "connect": init["arrived"] - one.spawned,
                    "handshake": listed["answered"] - init["arrived"],
                    "after": first.time - listed["answered"],
                    "tools": listed["answered"] - one.spawned,
                }
            rows.append(row)
        return rows


def reap(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for `proc`: its exit code, and the CPU seconds (user + system) it and the
    descendants it waited for used (Codex's node launcher waits for the native binary)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{proc.args[0]} did not exit within {timeout:.0f} s")
        time.sleep(0.01)


@contextlib.contextmanager
def codex_setup_for(out: Path) -> Iterator[Codex]:
    environ = demo.environment(out)
    (out / "logs").mkdir()
    workspace = out / "workspace"
    workspace.mkdir()
    script = {"scenarios": [{"match": "", "turns": [[{"message": "done"}]]}]}
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with scripted_model.serve(script) as model:
            home = out / "codex-home"
            home.mkdir()
            (home / "config.toml").write_text(demo.CODEX_SETTINGS)
            provider = codex_setup.ModelProvider(model.base_url, scripted_model.MODEL_NAME)
            codex_setup.install(home, model_provider=provider)
            boards = {}
            for name in ("kanban", "nodelay"):
                path = out / f"{name}.db"
                connection.connect(path).conn.close()
                log = out / f"{name}-requests.jsonl"
                proc, found = timed_tool_server.start(path, log, nodelay=name == "nodelay")
                servers.append(proc)
                boards[name] = Board(path, log, proc, found.url)
            yield Codex(out, environ, model, boards, workspace)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)


def rotated(items: tuple[str, ...], by: int) -> list[str]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def codex_section(out: Path, runs_: int, warmup: int) -> dict[str, Any]:
    single: dict[str, list[dict[str, float]]] = {v: [] for v in SINGLE}
    grouped: dict[str, list[list[dict[str, float]]]] = {v: [] for v in GROUPED}
    with codex_setup_for(out) as codex:
        for index in range(warmup + runs_):
            counted = index >= warmup
            for variant in rotated(SINGLE, index):
                (row,) = codex.measure(codex.start([variant], f"r{index}"))
                if counted:
                    single[variant].append(row)
            for variant in rotated(GROUPED, index):
                rows = codex.measure(codex.start([variant] * GROUP, f"r{index}g"))
                if counted:
                    grouped[variant].append(rows)
            label = "warm-up" if not counted else f"round {index - warmup + 1}"
            print(f"{label:>8}: 1 worker and {GROUP} at once, each variant", flush=True)
    report_codex(single, grouped, runs_)
    return {"single": single, "grouped": grouped}


def report_codex(
    single: dict[str, list[dict[str, float]]],
    grouped: dict[str, list[list[dict[str, float]]]],
    n: int,
) -> None:
    print(
        f"\n## Codex: spawn -> its first model request (the one carrying the tools), ms, "
        f"median (min-max) of {n} rounds\n"
    )
    print(f"| variant | 1 worker | {GROUP} at once: each worker | {GROUP} at once: the last |")
    print("|---|---|---|---|")
    for variant in SINGLE:
        cells = [tool_server_costs.ms([r["first"] for r in single[variant]])]
        if variant in grouped:
            rounds = grouped[variant]
            cells.append(tool_server_costs.ms([r["first"] for rows in rounds for r in rows]))
            cells.append(tool_server_costs.ms([max(r["first"] for r in rows) for rows in rounds]))
        else:
            cells += ["", ""]
        print(f"| {LABELS[variant]} | {' | '.join(cells)} |")

    print("\nkanban rows split by the tool server's log (ms, median (min-max)):\n")
    print(f"| segment | kanban, 1 | kanban, {GROUP} at once | TCP_NODELAY, 1 | TCP_NODELAY, 8 |")
    print("|---|---|---|---|---|")
    for key, label in (
        ("connect", "spawn -> server receives `initialize`"),
        ("handshake", "`initialize` received -> `tools/list` answered"),
        ("tools", "**spawn -> `tools/list` answered**"),
        ("after", "`tools/list` answered -> first model request"),
    ):
        cells = []
        for variant in ("kanban", "nodelay"):
            cells.append(tool_server_costs.ms([r[key] for r in single[variant]]))
            cells.append(tool_server_costs.ms([r[key] for rows in grouped[variant] for r in rows]))
        print(f"| {label} | {' | '.join(cells)} |")

    print(
        f"\neach of the {GROUP} workers started at once, ms: spawn -> first model request; for "
        "kanban also the server's handshake (`initialize` received -> `tools/list` answered)"
    )
    for variant in GROUPED:
        print(f"  {LABELS[variant]}:")
        for number, rows in enumerate(grouped[variant], 1):
            for key, name in (("first", "first request"), ("handshake", "handshake")):
                if key in rows[0]:
                    each = " ".join(f"{r[key] * 1000:4.0f}" for r in rows)
                    worst = max(r[key] for r in rows) * 1000
                    print(f"    round {number}, {name:13}: {each}   max {worst:.0f}")

    def med(rows: list[dict[str, float]], key: str = "first") -> float:
        return statistics.median(r[key] for r in rows)

    bare1, bare8 = med(single["bare"]), med([r for g in grouped["bare"] for r in g])
    last_bare = statistics.median(max(r["first"] for r in g) for g in grouped["bare"])
    print("\nratios against bare codex exec in the same run (median / median):")
    for variant in ("kanban", "nodelay", "flags"):
        one = med(single[variant])
        line = (
            f"  {LABELS[variant]:48} 1 worker {one / bare1:.2f}x ({(one - bare1) * 1000:+.0f} ms)"
        )
        if variant in grouped:
            each = med([r for g in grouped[variant] for r in g])
            last = statistics.median(max(r["first"] for r in g) for g in grouped[variant])
            line += (
                f"; {GROUP} at once: each {each / bare8:.2f}x ({(each - bare8) * 1000:+.0f} ms),"
                f" the last {last / last_bare:.2f}x ({(last - last_bare) * 1000:+.0f} ms)"
            )
        print(line)
    print(
        "\nCPU time of one Codex, start to exit (user + system, with the native binary its "
        "launcher waits for), ms, median (min-max):"
    )
    for v in SINGLE:
        line = f"  {LABELS[v]:48} 1 worker {tool_server_costs.ms([r['cpu'] for r in single[v]])}"
        if v in grouped:
            used = [r["cpu"] for g in grouped[v] for r in g]
            line += f"; {GROUP} at once {tool_server_costs.ms(used)}"
        print(line)
    print(
        f"\ngoal: each of {GROUP} workers started at once has its tools within {GOAL_MS:.0f} ms."
        f" From spawn no design can: bare Codex itself needs {last_bare * 1000:.0f} ms (the "
        "last, median of the rounds) to its first request here. What kanban adds:"
    )
    for variant in ("kanban", "nodelay"):
        handshakes = [r["handshake"] for g in grouped[variant] for r in g]
        late = sum(h * 1000 > GOAL_MS for h in handshakes)
        extra = [
            max(r["first"] for r in g) - max(b["first"] for b in bare)
            for g, bare in zip(grouped[variant], grouped["bare"], strict=True)
        ]
        print(
            f"  {LABELS[variant]}: the server's handshake {tool_server_costs.ms(handshakes)} ms,"
            f" over {GOAL_MS:.0f} ms for {late} of {len(handshakes)} workers "
            f"({'met' if not late else 'NOT met'}); the last worker's first request after the "
            f"last bare one's, per round: {tool_server_costs.ms(extra)} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--heartbeats", type=int, default=100)
    parser.add_argument("--only", choices=("codex", "server", "calls"), help="run one section only")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "demo-output" / f"bench-mcp-startup-{os.getpid()}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the output directory")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    args = parser.parse_args(argv)
    out = Path(os.path.abspath(args.output))
    demo.prepare_output(out)
    started = time.monotonic()
    results: dict[str, Any] = {}
    try:
        if args.only in (None, "codex"):
            results["codex"] = codex_section(out, args.runs, args.warmup)
        if args.only in (None, "server"):
            results["server"] = tool_server_costs.server_section(out, args.runs)
        if args.only in (None, "calls"):
            results["calls"] = tool_server_costs.calls_section(
                out, max(args.runs, 20), args.heartbeats
            )
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
            with contextlib.suppress(OSError):
                out.parent.rmdir()  # only if empty
    print(
        f"\n({time.monotonic() - started:.0f} s in all; load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
