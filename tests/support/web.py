"""A web board for tests: `kanban serve` on a board of its own, dispatchers, HTTP requests.

One server per test module (starting one costs about a second): `Served` owns the board, the
`kanban serve` subprocess on a free port, the `kanban dispatch` subprocesses started on the
same board, and requests to it as a browser or a script would send them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import sqlite_utils

from board import connection, tasks
from support.cli import KANBAN
from support.processes import end_board_processes
from support.waiting import wait_for
from support.world import Dispatcher

PY = sys.executable


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class _Quiet(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # tests look at redirects themselves


def request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Answer:
    """One HTTP request; any status is an answer (nothing raised for 4xx or 3xx)."""
    prepared = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(_Quiet)
    try:
        with opener.open(prepared, timeout=timeout) as answer:
            return Answer(answer.status, dict(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read())


class Served:
    """A board served by `kanban serve`, in `root` (a directory of the test module's)."""

    def __init__(self, root: Path, *serve_args: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.db_path = root / "board.db"
        self.env = {
            k: v
            for k, v in (env or os.environ).items()
            if not k.startswith(("GIT_", "HERMES_KANBAN_", "KANBAN_"))
        }
        home = root / "home"
        home.mkdir(exist_ok=True)
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Kanban Tests\n\temail = tests@kanban.invalid\n"
            "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        )
        self.env.update(
            HOME=str(home),
            KANBAN_DB=str(self.db_path),
            KANBAN_CONFIG=str(root / "config.toml"),
            KANBAN_WORKTREE_ROOT=str(root / "worktrees"),
            KANBAN_SCRATCH_ROOT=str(root / "scratch"),
            KANBAN_KILL_GRACE="1",
            KANBAN_RETRY_DELAY="0.2",
            KANBAN_STALL_TIMEOUT="30",
            KANBAN_TOOL_SERVER_IDLE_EXIT="8",
        )
        self.db: sqlite_utils.Database = connection.connect(self.db_path)
        self.dispatchers: list[Dispatcher] = []
        self.log = root / "serve.log"
        self.out = root / "serve.out"
        with open(self.log, "wb") as err, open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [KANBAN, "serve", "--port", "0", *serve_args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        first = wait_for(self._first_line, "kanban serve to listen", on_fail=self.output)
        self.url = first.split()[2].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def _first_line(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"kanban serve exited {self.proc.returncode}:\n{self.output()}")
        lines = self.out.read_text().splitlines()
        return lines[0] if lines else None

    def output(self) -> str:
        return self.out.read_text() + self.log.read_text(errors="replace")

    def get(self, path: str, **headers: str) -> Answer:
        return request(self.url + path, headers=headers)

    def post_json(self, path: str, data: Any = None, **headers: str) -> Answer:
        body = json.dumps({} if data is None else data).encode()
        return request(
            self.url + path,
            method="POST",
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )

    def dispatch(self, *args: str, **env: str) -> Dispatcher:
        log = self.root / f"dispatcher-{len(self.dispatchers) + 1}.log"
        dispatcher = Dispatcher(log, {**self.env, **env}, args)
        self.dispatchers.append(dispatcher)
        return dispatcher

    def create(self, title: str, code: str, *args: object, **options: Any) -> int:
        """A `command` task running ``python -c CODE ARGS...``."""
        argv = [PY, "-c", code, *(str(a) for a in args)]
        spec = tasks.NewTask(title, runtime="command", runtime_options={"argv": argv}, **options)
        return tasks.create(self.db, spec)

    def status(self, task_id: int) -> str:
        return tasks.get(self.db, task_id).status

    def wait_status(self, task_id: int, *statuses: str) -> None:
        wait_for(
            lambda: self.status(task_id) in statuses,
            f"t_{task_id} to be {' or '.join(statuses)}",
            on_fail=lambda: "\n".join(d.output() for d in self.dispatchers),
        )

    def stop_dispatchers(self) -> None:
        for dispatcher in self.dispatchers:
            if dispatcher.proc.poll() is None:
                dispatcher.proc.terminate()
                try:
                    dispatcher.proc.wait(10)
                except subprocess.TimeoutExpired:
                    dispatcher.proc.kill()
                    dispatcher.proc.wait()

    def close(self) -> None:
        self.stop_dispatchers()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        end_board_processes(self.db)
        self.db.conn.close()


# Decodes a PNG in the browser (natively: a Python decoder takes seconds per screenshot) and
# measures it: how many colours, how much the brightness varies.
_MEASURE = """async (data) => {
  const image = new Image();
  image.src = "data:image/png;base64," + data;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, image.width, image.height).data;
  const colours = new Set();
  let sum = 0, squares = 0, count = 0;
  for (let i = 0; i < pixels.length; i += 4 * 7) {
    const light = 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
    colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
    sum += light; squares += light * light; count += 1;
  }
  const mean = sum / count;
  return {width: image.width, height: image.height, colours: colours.size,
          deviation: Math.sqrt(squares / count - mean * mean)};
}"""


def screenshot(page: Any, path: Path) -> dict[str, float]:
    """Save a screenshot of `page` at `path` and measure it in a blank page of its browser."""
    import base64

    page.screenshot(path=str(path), full_page=True)
    blank = page.context.new_page()
    try:
        return blank.evaluate(_MEASURE, base64.b64encode(path.read_bytes()).decode())
    finally:
        blank.close()


def not_blank(stats: dict[str, float]) -> bool:
    """Something is drawn: many colours, and a brightness that varies."""
    return stats["colours"] > 20 and stats["deviation"] > 10
