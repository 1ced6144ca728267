"""`make demo`: a batch of tasks run by real Codex and Hermes workers against a scripted model.

Everything lives under one output directory (default ``./demo-output``, wiped at each run): a
throwaway git repository holding a tiny Python project, the board, the workers' worktrees and
logs, and Codex and Hermes homes of the demo's own, so the user's ``~/.codex``, ``~/.hermes``
and ``~/.kanban`` are never read or written. No account is needed: the model is
`testing.scripted_model`, which replays tool calls written down below. The agents, the
MCP server, the dispatcher, the worktrees and the merges are all real.

The batch: two tasks in parallel (one on the ``codex`` runtime, one on ``hermes``) that edit
different files, a third that runs after both, and an orchestrator task that splits its work
into two subtasks with ``kanban_create``, completes, and, resumed once they are done with their
branches merged into its worktree, runs their tests and completes for real.

    python -m testing.demo [--output DIR]

Exit status 0 only if every task is done with the expected files on its branch. Codex's
sandbox lets the agent's shell write /tmp, and the board must stay out of its reach: when the
output directory is in a temporary directory, the demo's own Codex home takes /tmp and $TMPDIR
out of the sandbox.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator import git
from testing import scripted_model
from worker.runtimes import codex as codex_runtime

# Codex settings kept outside kanban's block: no plugin or app sync at start-up (there is no
# account to sync with), and no usage metrics sent (nothing leaves the machine).
CODEX_SETTINGS = (
    "[features]\nplugins = false\napps = false\nremote_plugin = false\n\n"
    "[analytics]\nenabled = false\n"
)
SANDBOX_WITHOUT_TMP = (
    "\n[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n"
)
MARKER = ".kanban-demo"  # only a directory holding this file is ever wiped
TASK_TIMEOUT = 90  # seconds per attempt: a wedged agent must not hang the demo
CHILD_TIMEOUT = 60  # seconds for the kanban commands around the run
RUN_TIMEOUT = 300  # seconds for the whole `kanban run`

# The throwaway project the workers edit.
PROJECT = {
    ".gitignore": "__pycache__/\n",
    "README.md": "# textutils\n\nTiny text helpers: the kanban demo's project.\n",
    "textutils.py": textwrap.dedent('''\
        """Small text helpers."""


        def shout(text: str) -> str:
            """SHOUT the text."""
            return text.upper() + "!"
        '''),
    "test_textutils.py": textwrap.dedent("""\
        import unittest

        import textutils


        class ShoutTest(unittest.TestCase):
            def test_shout(self):
                self.assertEqual(textutils.shout("hi"), "HI!")
        """),
}

SLUGIFY = textwrap.dedent('''

    def slugify(text: str) -> str:
        """'Hello, World!' -> 'hello-world'."""
        import re

        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    ''')
README_SECTION = textwrap.dedent("""
    ## Usage

        >>> import textutils
        >>> textutils.shout("hi")
        'HI!'
    """)
CHANGELOG = textwrap.dedent("""\
    # Changelog

    ## 0.2.0
    - `slugify()` turns a title into a URL slug.
    - The README shows how to use the helpers.
    """)
STATS = textwrap.dedent('''\
    """Descriptive statistics."""


    def mean(values):
        """The arithmetic mean of a non-empty sequence."""
        values = list(values)
        return sum(values) / len(values)


    def median(values):
        """The middle value (the mean of the two middle ones for an even count)."""
        ordered = sorted(values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2
    ''')
TEST_STATS = textwrap.dedent("""\
    import unittest

    import stats


    class StatsTest(unittest.TestCase):
        def test_mean(self):
            self.assertEqual(stats.mean([1, 2, 3, 4]), 2.5)

        def test_median(self):
            self.assertEqual(stats.median([3, 1, 2]), 2)
            self.assertEqual(stats.median([4, 1, 3, 2]), 2.5)
    """)


TRY_SLUGIFY = "python3 -c 'import textutils; print(textutils.slugify(\"Hello, World!\"))'"


def write_file(path: str, text: str, *, append: bool = False) -> str:
    """A shell command that writes `text` to `path` (a quoted here-document)."""
    return f"cat {'>>' if append else '>'} {path} <<'EOF'\n{text}EOF"


@dataclasses.dataclass(frozen=True)
class DemoTask:
    title: str
    runtime: str
    body: str
    files: dict[str, str]  # path -> text the file must contain on the task's branch
    turns: list[list[dict[str, Any]]]  # the scripted model's turns for the first run
    key: str | None = None  # batch key; None for a subtask
    after: tuple[str, ...] = ()
    resume_turns: list[list[dict[str, Any]]] | None = None


def _finish(summary: str, closing: str) -> list[list[dict[str, Any]]]:
    return [[{"tool": "kanban_complete", "args": {"summary": summary}}], [{"message": closing}]]


STATS_PY = DemoTask(
    title="Write stats.py: mean() and median()",
    runtime="codex",
    body="Create stats.py with mean(values) and median(values).",
    files={"stats.py": "def median"},
    turns=[
        [{"shell": write_file("stats.py", STATS)}],
        *_finish("stats.py has mean() and median().", "stats.py is written."),
    ],
)
TEST_STATS_PY = DemoTask(
    title="Write test_stats.py for stats.py",
    runtime="hermes",
    body="Create test_stats.py, unittest tests of stats.mean and stats.median.",
    files={"test_stats.py": "def test_median"},
    turns=[
        [{"shell": write_file("test_stats.py", TEST_STATS)}],
        *_finish("test_stats.py tests mean() and median().", "The tests are written."),
    ],
)


def _create(task: DemoTask) -> dict[str, Any]:
    args = {
        "title": task.title,
        "body": task.body,
        "runtime": task.runtime,
        "timeout": TASK_TIMEOUT,
    }
    return {"tool": "kanban_create", "args": args}


TASKS = [
    DemoTask(
        key="slugify",
        title="Add slugify() to textutils.py",
        runtime="codex",
        body="Add slugify(text) to textutils.py: lower case, runs of other characters "
        "become one dash, no dash at either end.",
        files={"textutils.py": "def slugify"},
        turns=[
            [{"shell": write_file("textutils.py", SLUGIFY, append=True)}],
            [{"shell": TRY_SLUGIFY}],
            *_finish(
                "Added slugify() to textutils.py; slugify('Hello, World!') == 'hello-world'.",
                "slugify() is in.",
            ),
        ],
    ),
    DemoTask(
        key="readme",
        title="Document the helpers in README.md",
        runtime="hermes",
        body="Add a Usage section to README.md with an example.",
        files={"README.md": "## Usage"},
        turns=[
            [{"shell": write_file("README.md", README_SECTION, append=True)}],
            *_finish("README.md has a Usage section with an example.", "README updated."),
        ],
    ),
    DemoTask(
        key="changelog",
        title="Write CHANGELOG.md for the release",
        runtime="codex",
        after=("slugify", "readme"),
        body="Once slugify() and the README are done, write CHANGELOG.md for 0.2.0.",
        # Its blockers' work is in its branch: it started with theirs merged in.
        files={
            "CHANGELOG.md": "## 0.2.0",
            "textutils.py": "def slugify",
            "README.md": "## Usage",
        },
        turns=[
            [{"shell": write_file("CHANGELOG.md", CHANGELOG)}],
            *_finish(
                "CHANGELOG.md lists slugify() and the README's usage section.", "Changelog written."
            ),
        ],
    ),
    DemoTask(
        key="stats",
        title="Add a stats module (via subtasks)",
        runtime="hermes",
        body="Split the work: one subtask writes stats.py, another its tests. When resumed "
        "with both merged, run the tests and complete.",
        files={"stats.py": "def mean", "test_stats.py": "class StatsTest"},
        turns=[
            [_create(STATS_PY)],
            [_create(TEST_STATS_PY)],
            *_finish("Split into two subtasks: stats.py and its tests.", "Waiting for them."),
        ],
        resume_turns=[
            [{"shell": "ls stats.py test_stats.py && python3 -m unittest -v test_stats 2>&1"}],
            *_finish(
                "Both subtasks merged: stats.py and test_stats.py are here and "
                "`python3 -m unittest test_stats` passes.",
                "The stats module is done.",
            ),
        ],
    ),
]
SUBTASKS = [STATS_PY, TEST_STATS_PY]


def _marker(task: DemoTask) -> str:
    # How the prompt's first line names the task itself: blockers' and subtasks' titles also
    # appear in a prompt, but never after these words.
    return f'kanban board: "{task.title}"'


def script() -> dict[str, Any]:
    """The scripted model's scenarios: resumes first, since their prompt holds the title too."""
    scenarios = [
        {"match": ["You are being resumed", _marker(t)], "turns": t.resume_turns}
        for t in TASKS
        if t.resume_turns
    ]
    scenarios += [{"match": _marker(t), "turns": t.turns} for t in [*TASKS, *SUBTASKS]]
    return {"scenarios": scenarios}


def batch_toml() -> str:
    lines = [
        'name = "demo"',
        "",
        "[defaults]",
        'repo = "repo"',
        "max_attempts = 2",
        f"timeout = {TASK_TIMEOUT}",
    ]
    for task in TASKS:
        lines += [
            "",
            f"[tasks.{task.key}]",
            f"title = {json.dumps(task.title)}",
            f"runtime = {json.dumps(task.runtime)}",
            f"body = {json.dumps(task.body)}",
        ]
        if task.after:
            lines.append(f"after = {json.dumps(list(task.after))}")
    return "\n".join(lines) + "\n"


# --- running it ------------------------------------------------------------------------


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


@dataclasses.dataclass
class Demo:
    out: Path
    console: Console
    environ: dict[str, str] = dataclasses.field(default_factory=dict)
    kanban: list[str] = dataclasses.field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.out / "repo"

    def show(self, path: Path | str) -> str:
        """A path as the user would type it from here."""
        return os.path.relpath(path)

    def program(self) -> list[str]:
        """The kanban the demo runs, as the user would type it from here."""
        return [self.show(a) if os.path.isabs(a) and _below_here(a) else a for a in self.kanban]

    def hint(self, *args: str) -> str:
        """`kanban ARGS` on the demo's board, as a command that works as printed from here.

        `kanban` itself is rarely on the PATH after `make demo` (it is the checkout's venv's),
        so a hint names the program the demo ran, and the board with --db.
        """
        return shlex.join([*self.program(), "--db", self.show(self.out / "board.db"), *args])

    def step(self, text: str) -> None:
        self.console.print(f"\n[bold]{text}[/]")

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def command(self, text: str) -> None:
        self.console.print(f"[cyan]$ {text}[/]", markup=True)

    def run_kanban(
        self, *args: str, capture: bool = True, timeout: float = CHILD_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `kanban ARGS`, showing the command; captured output is printed indented."""
        shown = [self.show(a) if a.startswith(str(self.out)) else a for a in args]
        self.command(shlex.join(["kanban", *shown]))
        sys.stdout.flush()
        done = subprocess.run(
            [*self.kanban, *args],
            env=self.environ,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            capture_output=capture,
        )
        if capture:
            for line in (done.stdout + done.stderr).strip().splitlines():
                self.say(f"  {line}")
        return done

    def git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        done = subprocess.run(
            ["git", "-C", str(cwd or self.repo), *args],
            env=self.environ,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise DemoError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout


def _below_here(path: str) -> bool:
    return not os.path.relpath(path).startswith(os.pardir)


def kanban_command() -> list[str]:
    """The `kanban` of this interpreter's environment."""
    script_path = Path(sys.executable).parent / "kanban"
    if script_path.exists():
        return [str(script_path)]
    return [sys.executable, "-c", "from orchestrator.cli.main import main; main()"]


def _tool(variable: str, relative: str) -> str | None:
    """The agent the Makefile pinned ($variable), else the checkout's .tools, else PATH's."""
    if os.environ.get(variable):
        return os.environ[variable]
    pinned = Path(__file__).resolve().parent.parent / ".tools" / relative
    return str(pinned) if pinned.exists() else shutil.which(Path(relative).name)


def _ours(path: Path) -> bool:
    """A demo's output, or a directory holding nothing but demo outputs (the tests' runs)."""
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    return (path / MARKER).exists() or all((e / MARKER).exists() for e in entries)


def prepare_output(out: Path) -> None:
    """Wipe the previous demo's directory (only ever one of ours) and start afresh."""
    if out.exists():
        if not _ours(out):
            raise DemoError(
                f"{out} exists and is not a kanban demo's output; pass --output a new or "
                "empty directory"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("Made by `python -m testing.demo`; wiped by its next run.\n")


def environment(out: Path) -> dict[str, str]:
    """The children's environment: every kanban path under `out`, nothing of the user's."""
    environ = {
        k: v
        for k, v in git.clean_environ().items()
        if not k.startswith(("KANBAN_", "HERMES_KANBAN_"))
    }
    environ |= {
        "KANBAN_DB": str(out / "board.db"),
        "KANBAN_CONFIG": str(out / "kanban-config.toml"),  # absent: defaults, never ~/.kanban
        "KANBAN_WORKTREE_ROOT": str(out / "worktrees"),
        "KANBAN_SCRATCH_ROOT": str(out / "scratch"),
        "KANBAN_CODEX_HOME": str(out / "codex-home"),
        "KANBAN_HERMES_HOME": str(out / "hermes-home"),
        "CODEX_HOME": str(out / "codex-home"),
        "KANBAN_RETRY_DELAY": "2",
    }
    for variable, relative in (
        ("KANBAN_HERMES_BIN", "hermes/bin/hermes"),
        ("KANBAN_CODEX_BIN", "node_modules/.bin/codex"),
    ):
        found = _tool(variable, relative)
        if found is None:
            raise DemoError(
                f"{Path(relative).name} was not found: run `make demo` (it installs the "
                f"agents in .tools/), or set {variable} to its path"
            )
        environ[variable] = found
    return environ


def make_project(demo: Demo) -> str:
    demo.repo.mkdir()
    demo.git("init", "-q", "-b", "main")
    for key, value in (
        ("user.name", "kanban demo"),
        ("user.email", "demo@kanban.invalid"),
        ("commit.gpgsign", "false"),
    ):
        demo.git("config", key, value)
    for name, text in PROJECT.items():
        (demo.repo / name).write_text(text)
    demo.git("add", "-A")
    demo.git("commit", "-q", "-m", "textutils 0.1.0")
    return demo.git("rev-parse", "HEAD").strip()


def agent_homes(demo: Demo) -> None:
    """What the demo's homes need besides what `kanban setup` writes (it keeps these)."""
    codex_home = demo.out / "codex-home"
    codex_home.mkdir()
    settings = CODEX_SETTINGS
    if codex_runtime.in_temporary_dir(str(demo.out / "board.db")):
        # The sandbox could write a board under /tmp: take the temporary roots out of it.
        settings += SANDBOX_WITHOUT_TMP
    (codex_home / "config.toml").write_text(settings)
    hermes_home = demo.out / "hermes-home"
    hermes_home.mkdir()
    # Tirith (Hermes' command scanner) would try to download itself at every start.
    (hermes_home / "config.yaml").write_text(
        json.dumps({"security": {"tirith_enabled": False}}, indent=2) + "\n"
    )


def board_tasks(demo: Demo) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*demo.kanban, "list", "--json"],
        env=demo.environ,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=CHILD_TIMEOUT,
    )
    if done.returncode != 0:
        raise DemoError(f"`kanban list --json` failed: {done.stderr.strip()}")
    return sorted(json.loads(done.stdout), key=lambda t: int(t["id"].removeprefix("t_")))


def problems_with(demo: Demo, board: list[dict[str, Any]]) -> list[str]:
    """What is wrong: tasks missing or not done, files missing from their branches."""
    expected = {t.title: t for t in [*TASKS, *SUBTASKS]}
    titles = {t["title"] for t in board}
    problems = [f"no task {title!r} on the board" for title in expected if title not in titles]
    for task in board:
        if task["status"] != "done":
            why = task["failure_reason"] or task["block_reason"] or ""
            problems.append(f"{task['id']} is {task['status']}" + (f": {why}" if why else ""))
        spec = expected.get(task["title"])
        for path, text in spec.files.items() if spec and task["branch"] else ():
            if text not in demo.git("show", f"{task['branch']}:{path}", check=False):
                problems.append(f"{task['id']}: {path} on {task['branch']} lacks {text!r}")
    return problems


def land_everything(demo: Demo) -> list[str]:
    """Land every done task into main (kanban land --all), then run the tests there."""
    demo.step("6. Landing: every task's work into main, through the merge queue")
    landed = demo.run_kanban("land", "--all", capture=False)
    if landed.returncode != 0:
        return [f"`kanban land --all` exited {landed.returncode}"]
    demo.command(f"git -C {demo.show(demo.repo)} log --oneline --first-parent main")
    for line in demo.git("log", "--oneline", "--first-parent", "main").splitlines():
        demo.say(f"  {line}")
    demo.say("\nThe project's tests, on main:")
    return [] if run_tests(demo, demo.repo) else ["the tests fail on main after landing"]


def run_tests(demo: Demo, where: Path) -> bool:
    """The project's tests, run by the demo itself in a checkout."""
    demo.command(f"cd {demo.show(where)} && python -B -m unittest")
    done = subprocess.run(
        [sys.executable, "-B", "-m", "unittest"],
        cwd=where,
        env=demo.environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=CHILD_TIMEOUT,
    )
    lines = done.stderr.strip().splitlines()
    for line in lines[-3:] if done.returncode == 0 else lines:
        if line.strip():
            demo.say(f"  {line}")
    return done.returncode == 0


SHORT_DIFF_LINES = 6


def show_branches(demo: Demo, board: list[dict[str, Any]], base: str) -> None:
    for task in board:
        parent = f", subtask of {task['parent']}" if task["parent"] else ""
        demo.console.print(
            f"\n[bold]{task['id']}[/] {task['title']} ({task['runtime']}{parent}): "
            f"{task['status']}, branch {task['branch']}"
        )
        if not task["branch"]:
            continue
        demo.command(f"git -C {demo.show(demo.repo)} diff --stat main {task['branch']}")
        for line in demo.git("diff", "--stat", base, task["branch"]).rstrip().splitlines():
            demo.say(f"  {line}")
        diff = demo.git("diff", "--no-color", base, task["branch"]).splitlines()
        added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
        for line in added[:SHORT_DIFF_LINES]:
            demo.say(f"  {line}")
        if len(added) > SHORT_DIFF_LINES:
            demo.say(f"  ... and {len(added) - SHORT_DIFF_LINES} more added lines")


def explain(demo: Demo, board: list[dict[str, Any]]) -> None:
    demo.step("7. Logs")
    demo.say(
        "Each run's log (its agent's output): "
        f"{demo.show(demo.out / 'logs')}/BOARD/TASK/run-N.log (BOARD: the board's id)"
    )
    demo.say(f"Each request the model answered: {demo.show(demo.out / 'model-requests.jsonl')}")
    demo.say("To look around the demo's board, from this directory:")
    first = board[0]["id"] if board else "t_1"
    for args in (("logs", first), ("show", first), ("board", "--all")):
        demo.say(f"  {demo.hint(*args)}")
    demo.step("8. What was real, and what was scripted")
    batch = demo.show(demo.out / "batch.toml")
    demo.say(
        textwrap.dedent(f"""\
        The model was SCRIPTED: testing/scripted_model.py answered Codex with tool calls
        written down in advance in testing/demo.py. There was no model, no account, and
        nothing left this machine. Everything else was real: `codex exec` and Hermes (on its
        Codex app-server runtime) worked in their own git worktrees, reported through kanban's
        MCP tool server, and the dispatcher committed, merged and settled their work on the
        board, recording what each run used.

        To run the same against a real model, with your own homes, install the kanban
        command for daily use first (`pipx install .` from this checkout: see the README):
          codex login                 # sign in to Codex (or use an API key)
          kanban setup codex          # checks ~/.codex/config.toml (writes nothing of kanban's)
          kanban setup hermes         # a Hermes home of kanban's own, ~/.kanban/hermes
          kanban doctor               # checks all of it
          kanban create "Add a --verbose flag" --repo ~/src/app --runtime codex
          kanban dispatch             # or a batch: kanban run {batch}
          kanban diff t_1             # review; kanban reopen t_1 --comment "..." to send back
          kanban land --all           # into main, checked, never losing a concurrent update
          kanban usage --since today  # what it cost; kanban serve for the board in a browser""")
    )


def run(demo: Demo) -> bool:
    """The whole demo; True if every task is done with its files on its branch."""
    out = demo.out
    demo.console.print(
        "[bold]kanban demo[/]: real Codex and Hermes workers, a scripted model, "
        f"everything in {demo.show(out)}/"
    )
    prepare_output(out)
    demo.environ = environment(out)
    demo.kanban = kanban_command()

    demo.step("1. A throwaway project, a board, and agent homes of the demo's own")
    demo.say(f"(`kanban` below is {shlex.join(demo.program())}, with the demo's board and homes)")
    base = make_project(demo)
    agent_homes(demo)
    (out / "batch.toml").write_text(batch_toml())
    demo.say(f"repository {demo.show(demo.repo)}: {', '.join(PROJECT)} (main at {base[:8]})")
    demo.say(f"board {demo.show(out / 'board.db')}, worktrees under {demo.show(out / 'worktrees')}")
    demo.say(
        f"{demo.show(out / 'codex-home')}: plugins, apps and analytics off (no account, no network)"
    )
    demo.say(f"{demo.show(out / 'hermes-home')}: security.tirith_enabled false (no download)")

    with (
        open(out / "model-requests.jsonl", "w") as log,
        scripted_model.serve(script(), log=log) as server,
    ):
        demo.step(f"2. A scripted model on {server.base_url}, and the agents pointed at it")
        for runtime in ("codex", "hermes"):
            done = demo.run_kanban(
                "setup",
                runtime,
                f"--{runtime}-home",
                str(out / f"{runtime}-home"),
                "--model-provider-url",
                server.base_url,
                "--model",
                scripted_model.MODEL_NAME,
            )
            if done.returncode != 0:
                raise DemoError(f"`kanban setup {runtime}` failed (exit {done.returncode})")

        demo.step("3. The batch: two tasks in parallel, one after both, one that splits itself")
        for line in batch_toml().splitlines():
            if line.startswith(("[tasks.", "title", "runtime", "after")):
                demo.say(f"  {line}")
        ran = demo.run_kanban(
            "run", str(out / "batch.toml"), "--max-workers", "4", capture=False, timeout=RUN_TIMEOUT
        )

    demo.step("4. The board")
    demo.run_kanban("board", "--all", capture=False)
    board = board_tasks(demo)
    problems = problems_with(demo, board)
    if ran.returncode != 0:
        problems.insert(0, f"`kanban run` exited {ran.returncode}")

    demo.step("5. Each task's branch, against the base (main)")
    show_branches(demo, board, base)
    if not problems:
        problems += land_everything(demo)
    explain(demo, board)
    for problem in problems:
        demo.console.print(f"[bold red]problem:[/] {problem}")
    return not problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testing.demo",
        description="Run a small batch with real Codex and Hermes workers against a scripted "
        "model, in a throwaway repository; no account needed.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(os.environ.get("KANBAN_DEMO_OUTPUT") or "demo-output"),
        help="directory for everything the demo makes, wiped first (default: ./demo-output, "
        "or $KANBAN_DEMO_OUTPUT)",
    )
    args = parser.parse_args(argv)
    # soft_wrap: long commands stay one line, as the user would type them.
    console = Console(highlight=False, soft_wrap=True)
    started = time.monotonic()
    try:
        ok = run(Demo(Path(os.path.abspath(args.output)), console))
    except DemoError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except subprocess.TimeoutExpired as exc:
        sys.stderr.write(
            f"Error: `{shlex.join(map(str, exc.cmd))}` took longer than "
            f"{exc.timeout:g} s; its logs are in {args.output}/logs\n"
        )
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    elapsed = time.monotonic() - started
    if ok:
        console.print(f"\n[bold green]Demo finished in {elapsed:.0f} s: every task is done.[/]")
        return 0
    console.print(f"\n[bold red]The demo failed after {elapsed:.0f} s[/]: see the problems above.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
