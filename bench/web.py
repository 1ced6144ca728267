"""The web board's speed: page load and live-update latency at 1,000 and 100,000 tasks.

For each board size (filled once, not measured: tasks inserted in one transaction, most of
them then marked ended, as a long-lived board is), one `kanban serve`-equivalent server
process serves the board, plus one baseline route: the board page's own bytes, saved once,
served as a static page by the same server (same size, same headers, no board reads).

- **page, HTTP**: GET / (the board page: eight columns of at most 50 tasks) against GET of the
  static copy, from this process, one connection per request;
- **page, browser**: Chromium (Debian's, through Playwright) loads the page to its ``load``
  event, against the static copy (which loads the same stylesheet and script);
- **live update**: a task created on the board by this process (another connection, as a
  dispatcher or the CLI would) until its card is in the open page's DOM. The baseline is a
  perfect poller: the same page fetching that task from the API right after the commit
  (what a page that polled with no interval at all would pay per change).

Every figure is a median of several repetitions with min-max; each is also given as a ratio
to its baseline measured in the same run, the two interleaved. Run on demand:
``.venv/bin/python -m bench.web [--reps 10] [--sizes 1000,100000]``.
"""

# ruff: noqa: T201 - a benchmark reports on stdout

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from testing.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent


def fill(path: Path, count: int) -> None:
    """A board of `count` tasks: 90% done, the rest spread over the other states."""
    from board import connection, tasks
    from board.connection import transaction

    rng = random.Random(7)
    db = connection.connect(path)
    db.conn.execute("PRAGMA synchronous = OFF")
    with transaction(db) as tx:
        for number in range(count):
            spec = tasks.NewTask(
                f"Task number {number}: do the thing",
                body="Instructions " * 10,
                runtime="command",
                runtime_options={"argv": ["true"]},
                priority=rng.choice([0, 0, 0, 1, 5]),
            )
            tasks.insert(tx, spec)
    now = time.time()
    shares = [
        ("done", 0.90),
        ("failed", 0.93),
        ("cancelled", 0.95),
        ("blocked", 0.96),
        ("todo", 0.98),
        ("ready", 1.0),
    ]
    db.conn.execute("BEGIN")
    for (task_id,) in db.conn.execute("SELECT id FROM tasks").fetchall():
        draw = rng.random()
        status = next(name for name, upto in shares if draw < upto)
        ended = (
            now - rng.random() * 30 * 86400 if status in ("done", "failed", "cancelled") else None
        )
        db.conn.execute(
            "UPDATE tasks SET status = ?, ended_at = ? WHERE id = ?", (status, ended, task_id)
        )
    db.conn.execute("COMMIT")
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()


def serve(db_path: str, port_file: str, baseline: str) -> None:
    """The server process: the web board's application plus the static baseline route."""
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from board import connection
    from orchestrator.web import app as web_app
    from orchestrator.web import server

    where = server.listen("127.0.0.1", 0)
    db = connection.connect(db_path)
    application = web_app.create(db_path, policy=server.policy(db, where))
    db.conn.close()
    static = Path(baseline)
    cached: list[bytes] = []

    def copy(request):  # the board page's bytes (saved once, after the first GET /)
        if not cached:
            cached.append(static.read_bytes())
        return HTMLResponse(cached[0])

    application.app.router.routes.insert(0, Route("/__baseline", copy))
    Path(port_file).write_text(str(where.port))
    with contextlib.suppress(KeyboardInterrupt):  # how the benchmark stops it
        server.run(application, where)


def get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        body = answer.read()
    return time.perf_counter() - start, body


def median(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):8.1f} ms ({min(ms):.1f}-{max(ms):.1f})"


def ratio(values: list[float], base: list[float]) -> str:
    return f"{statistics.median(values) / statistics.median(base):6.2f}x"


def measure(size: int, reps: int, workdir: Path, browser) -> dict[str, list[float]]:
    from board import connection, tasks

    path = workdir / f"board-{size}.db"
    started = time.perf_counter()
    fill(path, size)
    print(f"\n{size:,} tasks (filled in {time.perf_counter() - started:.1f} s, not measured)")
    port_file, baseline = workdir / f"port-{size}", workdir / f"baseline-{size}.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.web", "--serve", str(path), str(port_file), str(baseline)],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        _, page = get(url + "/")
        baseline.write_bytes(page)
        cards = page.count(b'<li class="card')
        print(f"  board page: {len(page):,} bytes, {cards} cards (at most 50 per column)")
        found: dict[str, list[float]] = {k: [] for k in ("http", "http0", "load", "load0")}
        get(url + "/__baseline")
        for _ in range(reps):
            found["http"].append(get(url + "/")[0])
            found["http0"].append(get(url + "/__baseline")[0])
        context = browser.new_context()
        tab = context.new_page()
        for _ in range(reps):
            for key, target in (("load", "/"), ("load0", "/__baseline")):
                start = time.perf_counter()
                tab.goto(url + target, wait_until="load")
                found[key].append(time.perf_counter() - start)
        db = connection.connect(path)
        found["live"], found["poll"] = [], []
        tab.goto(url + "/")
        tab.wait_for_function("document.getElementById('live').classList.contains('on')")
        for rep in range(reps):
            start = time.perf_counter()
            made = tasks.create(db, tasks.NewTask(f"Live {rep}", priority=900_000 + rep))
            tab.wait_for_selector(f"#card-t_{made}", state="attached", timeout=10_000)
            found["live"].append(time.perf_counter() - start)
            start = time.perf_counter()
            made = tasks.create(db, tasks.NewTask(f"Polled {rep}", priority=-1))
            tab.evaluate(
                "async (label) => (await fetch('/api/tasks/' + label)).json()", f"t_{made}"
            )
            found["poll"].append(time.perf_counter() - start)
        db.conn.close()
        context.close()
        return found
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    from playwright.sync_api import sync_playwright

    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="kanban-bench-web-") as tmp, sync_playwright() as pw:
        os.environ.pop("KANBAN_DB", None)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for size in sizes:
                results[size] = measure(size, args.reps, Path(tmp), browser)
        finally:
            browser.close()
    print(f"\nmedians of {args.reps} (min-max); ratio: against the baseline in the same run")
    for size, found in results.items():
        print(f"\n{size:,} tasks")
        rows = (
            ("page over HTTP", "http", "static copy, same server", "http0"),
            ("page in Chromium, to load", "load", "static copy in Chromium", "load0"),
            ("live update, commit to DOM", "live", "perfect poller (fetch after commit)", "poll"),
        )
        for label, key, base_label, base in rows:
            print(
                f"  {label:28} {median(found[key])}   {ratio(found[key], found[base])}"
                f"   vs {base_label}: {median(found[base]).strip()}"
            )
    print(
        json.dumps(
            {str(k): {n: statistics.median(v) for n, v in f.items()} for k, f in results.items()}
        )
    )


if __name__ == "__main__":
    main()
