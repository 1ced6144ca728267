"""Running and watching workers: dispatch, logs, watch, gc."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from board import dispatchers, errors, identity, ids, records, runs, spending, states, tasks, views
from orchestrator import config
from orchestrator.cli import context
from worker import usage
from worker.runtimes import base


def settings_from(ctx: click.Context, **overrides) -> config.Settings:
    return config.resolve(config.load().with_overrides(**overrides))


@click.command()
@click.option(
    "--max-workers",
    type=click.IntRange(1, 256),
    envvar="KANBAN_MAX_WORKERS",
    help="Workers running at once (default 4).",
)
@click.option(
    "--until-idle",
    is_flag=True,
    help="Exit 0 once nothing is ready, running, or waiting for a retry.",
)
@click.option(
    "--stall-timeout",
    type=context.Finite(min=0, min_open=True),
    envvar="KANBAN_STALL_TIMEOUT",
    help="Kill a worker with no heartbeat and no output for this long (s).",
)
@click.option(
    "--retry-delay",
    type=context.Finite(min=0, min_open=True),
    envvar="KANBAN_RETRY_DELAY",
    help="First retry's delay (s); doubles each time.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.pass_context
def dispatch(ctx, max_workers, until_idle, stall_timeout, retry_delay, quiet):
    """Run the dispatcher in the foreground: start workers for ready tasks and supervise them.

    Settings come from ~/.kanban/config.toml, then environment variables, then these options.
    Ctrl-C once: start no new workers and wait for the running ones; twice: stop them.

    \b
    Examples:
      kanban dispatch --max-workers 8
      kanban dispatch --until-idle          # for scripts: returns when all work is done
    """
    import anyio

    from orchestrator import dispatcher

    settings = settings_from(
        ctx, max_workers=max_workers, stall_timeout=stall_timeout, retry_delay=retry_delay
    )
    db_path = context.board_path(ctx)

    def say(message: str) -> None:
        if not quiet:
            click.echo(f"{time.strftime('%H:%M:%S')} {message}", err=True)

    runner = dispatcher.Dispatcher(settings, db_path, until_idle=until_idle, on_event=say)
    ctx.exit(anyio.run(runner.run))


def _run_for(db, task_id: int, run_id: int | None) -> records.Run:
    history = runs.for_task(db, task_id)
    if run_id is not None:
        chosen = [r for r in history if r.id == run_id]
        if not chosen:
            raise errors.InvalidInput(f"run {run_id} is not a run of {ids.format(task_id)}")
        return chosen[0]
    if not history:
        raise errors.InvalidInput(f"{ids.format(task_id)} has not run yet; no log to show")
    return history[-1]


@click.command()
@click.argument("task")
@click.option("--run", "run_id", help="Which run (default: the latest).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing as the log grows.")
@click.option("--raw", is_flag=True, help="The file as it is, not rendered by its runtime.")
@click.pass_context
def logs(ctx, task, run_id, follow, raw):
    """Show a run's log (stdout and stderr of its worker), as its runtime renders it.

    Each line is shown the way the task's runtime reads it (Codex's JSON events as what the
    agent did, for instance); lines it finds nothing in are left out. --raw prints the file
    exactly as the worker wrote it.

    \b
    Examples:
      kanban logs t_3 --follow
      kanban logs t_3 --run 2 --raw > run-2.log
    """
    db = context.existing_board(ctx)
    task_id = context.task_id(task)
    run = _run_for(db, task_id, ids.parse_run(run_id) if run_id is not None else None)
    if not run.log_path:
        raise errors.InvalidInput(f"run {run.id} has no log (it never started a process)")
    path = Path(run.log_path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise errors.InvalidInput(f"cannot read the log {path}: {exc.strerror}") from exc
    with handle:
        if raw:
            out = sys.stdout.buffer

            def show(chunk: bytes) -> None:
                out.write(chunk)
                out.flush()

        else:
            lines = LogLines()
            render_line = _renderer(tasks.get(db, task_id).runtime)

            def show(chunk: bytes) -> None:
                for line in lines.split(chunk, final=not chunk):
                    shown = render_line(line)
                    if shown is not None:
                        click.echo(shown)

        while True:
            chunk = handle.read(LOG_CHUNK)
            if chunk:
                show(chunk)
                continue
            if not follow or runs.get(db, run.id).ended_at is not None:
                # Written since the last read, before the run ended; then a last partial line.
                while chunk := handle.read(LOG_CHUNK):
                    show(chunk)
                show(b"")
                return
            time.sleep(0.2)


LOG_CHUNK = 65536
ACTIVITY_TAIL = 65536  # bytes of a running task's log read when `watch` first sees it


class LogLines:
    """Complete lines of a growing log, from chunks of it: a partial last line waits for the
    rest (or for the end: `final`). Decoded as UTF-8 per line, so a character split between
    two chunks stays whole."""

    def __init__(self, *, skip_first: bool = False) -> None:
        self._partial = b""
        self._skip_first = skip_first  # the log was entered mid-line: its first is a fragment

    def split(self, chunk: bytes, *, final: bool = False) -> list[str]:
        pieces = (self._partial + chunk).split(b"\n")
        self._partial = pieces.pop()
        if self._skip_first and pieces:
            pieces.pop(0)
            self._skip_first = False
        if final and self._partial and not self._skip_first:
            pieces.append(self._partial)
            self._partial = b""
        return [piece.decode("utf-8", "replace").rstrip("\r") for piece in pieces]


def _renderer(runtime_name: str) -> Callable[[str], str | None]:
    """The runtime's `render`, made safe for a terminal; a line as it is for an unknown one."""
    from orchestrator import render
    from worker import runtimes

    try:
        runtime_render = runtimes.get(runtime_name).render
    except errors.KanbanError:
        return render.log_line

    def render_line(line: str) -> str | None:
        shown = runtime_render(line)
        return None if shown is None else render.log_line(shown)

    return render_line


@dataclasses.dataclass
class _Followed:
    """A running task's current run, as `Activities` follows it."""

    meter: usage.Meter
    lines: LogLines
    path: Path
    offset: int


class Activities:
    """The last activity of each running task, as its runtime's meter reads it from the log
    of the task's current run: the last `ACTIVITY_TAIL` bytes at first, then what the log
    gains (one meter per run, kept from one frame of `watch` to the next)."""

    def __init__(self, db, settings: base.Settings) -> None:
        self.db = db
        self.settings = settings
        self._followed: dict[int, _Followed] = {}  # by run id

    def of(self, running: list[records.Task]) -> dict[str, str | None]:
        """Task id -> its last activity (None: nothing yet, or no live run)."""
        found: dict[str, str | None] = {}
        for task in running:
            history = runs.for_task(self.db, task.id)
            run = history[-1] if history else None
            live = run is not None and run.ended_at is None and run.log_path
            found[task.label] = self._read(task, run) if run is not None and live else None
        return found

    def _read(self, task: records.Task, run: records.Run) -> str | None:
        from worker import runtimes

        followed = self._followed.get(run.id)
        if followed is None:
            try:
                runtime = runtimes.get(task.runtime)
            except errors.KanbanError:
                return None
            path = Path(run.log_path or "")
            try:
                start = max(0, path.stat().st_size - ACTIVITY_TAIL)
            except OSError:
                start = 0
            followed = _Followed(
                meter=runtime.meter(base.Metered(run.worktree, run.started_at, self.settings)),
                lines=LogLines(skip_first=start > 0),
                path=path,
                offset=start,
            )
            self._followed[run.id] = followed
        try:
            with open(followed.path, "rb") as handle:
                handle.seek(followed.offset)
                chunk = handle.read(ACTIVITY_TAIL)
        except OSError:
            chunk = b""
        followed.offset += len(chunk)
        for line in followed.lines.split(chunk):
            followed.meter.feed(line)
        return followed.meter.activity()


@click.command()
@click.option("--interval", type=context.Finite(0.1, 60), default=1.0, show_default=True)
@click.option("--all", "show_all", is_flag=True, help="Include every ended task.")
@click.pass_context
def watch(ctx, interval, show_all):
    """A live view of the board while a dispatcher runs (Ctrl-C to leave): under the board,
    each running task's usage and last activity (its last command, tool call or message);
    above it, the daily budget's notice when it stops new work.

    \b
    Example:
      kanban watch
    """
    from rich.live import Live

    from orchestrator import render

    db = context.existing_board(ctx)
    try:
        runtime_settings = config.load().runtimes
    except errors.KanbanError:
        runtime_settings = base.Settings()  # `kanban doctor` says what is wrong with the file
    activities = Activities(db, runtime_settings)

    def frame():
        found = tasks.list_tasks(db)
        objects = views.task_objects(db, found)
        running = [t for t in found if t.status == states.Status.RUNNING]
        return render.board(
            objects,
            show_all=show_all,
            notice=spending.daily_notice(db),
            activity=activities.of(running),
        )

    with Live(frame(), console=context.console(), refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(frame())
        except KeyboardInterrupt:
            return


@click.command()
@click.option(
    "--force",
    is_flag=True,
    help="Also remove dirty worktrees, unmerged (or unpushed) branches, and worktrees whose "
    "teardown failed.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def gc(ctx, force, as_json):
    """Remove the worktrees of ended tasks whose content is on their branch.

    Before a worktree goes, the teardown of the .kanban.toml at its task's base runs in it;
    a failing teardown keeps it (unless --force). Branches are deleted only when merged (into
    the repository's HEAD) or landed (kanban land) and unchanged since, unless --force.

    A task whose repository is a remote is collected on each host in that host's own clone,
    for the tasks that ran on this host: after a fetch, its worktree and its branch there go
    once a branch of the remote holds their commit (pushed, or landed); work that is on this
    host only (a push that failed) is kept and reported.

    \b
    Example:
      kanban gc
    """
    from orchestrator import remotes

    db = context.existing_board(ctx)
    by_repo: dict[str, list[records.Task]] = {}
    for task in tasks.list_tasks(db, sorted(states.ENDED)):
        if task.repo and task.worktree and task.branch:
            by_repo.setdefault(task.repo, []).append(task)
    report = {key: [] for key in _GC_KEYS}
    settings = None
    for repo, ended in by_repo.items():
        if remotes.url_of(repo) is not None:
            settings = settings or settings_from(ctx)
            found = _gc_remote(db, repo, ended, settings=settings, force=force)
        elif not Path(repo).is_dir():
            found = {"problems": [f"{repo}: repository is gone"]}
        else:
            pairs = [(task.worktree or "", task.branch or "") for task in ended]
            found = _collect(db, repo, ended, pairs, force=force)
        for key, values in found.items():
            report[key].extend(values)
    if as_json:
        context.print_json(report)
    else:
        for key, values in report.items():
            for value in values:
                click.echo(f"{key.replace('_', ' ')}: {value}")
        if not any(report.values()):
            click.echo("nothing to collect")
    if report["problems"]:
        ctx.exit(1)


_GC_KEYS = ("removed_worktrees", "kept_worktrees", "deleted_branches", "kept_branches", "problems")


def _collect(
    db,
    repo: str,
    ended: list[records.Task],
    pairs: list[tuple[str, str]],
    *,
    force: bool,
    kept_elsewhere: Callable[[str], bool] | None = None,
) -> dict[str, list[str]]:
    """`worktrees.gc` of `pairs` in `repo` (a checkout, or this host's clone of a remote),
    their teardowns run first; its report as text."""
    from orchestrator import worktrees

    teardown = _teardowns(db, repo, ended)
    result = worktrees.gc(
        repo, pairs, force=force, teardown=teardown, kept_elsewhere=kept_elsewhere
    )
    found = {key: [str(x) for x in getattr(result, key)] for key in _GC_KEYS}
    if kept_elsewhere is None:
        # A landed task's branch is done with even when git does not see it merged (squash).
        landed = {t.branch: t.landed_from for t in ended if t.branch and t.landed_from}
        kept = {b for b in result.kept_branches if b in landed}
        for branch in worktrees.delete_landed(repo, {b: landed[b] for b in kept}):
            found["kept_branches"].remove(branch)
            found["deleted_branches"].append(branch)
    return found


def _gc_remote(
    db, url: str, ended: list[records.Task], *, settings: config.Settings, force: bool
) -> dict[str, list[str]]:
    """gc of a remote's tasks on this host: in its clone here (none: nothing of it is here),
    for the tasks that ran on this host and left a branch in it, fetched first.

    A task's worktree here is where git says its branch is checked out in the clone (the one
    on the board may be another host's). A commit is safe to let go of once a branch of the
    remote holds it, or once its task landed from it (its work is in the base).
    """
    from orchestrator import git, remotes, worktrees

    clone = remotes.clone_dir(url, settings.clones_root)
    if not (clone / ".git").is_dir():
        return {}
    here = dispatchers.host()
    found = git.branch_states(clone, [task.branch for task in ended if task.branch])
    mine: list[records.Task] = []
    pairs: list[tuple[str, str]] = []
    for task in ended:
        assert task.branch
        state = found.get(task.branch)
        if state is None:  # no branch here, so no worktree either: nothing of it on this host
            continue
        if not any(run.host == here for run in runs.for_task(db, task.id)):
            continue
        path = state.worktree
        if path is None:  # its branch only: where this host would put its worktree
            _, path = worktrees.placement(
                clone,
                root=settings.worktree_root,
                prefix=settings.branch_prefix,
                board_id=identity.board_id(db),
                task_id=ids.format(task.id),
            )
        mine.append(dataclasses.replace(task, worktree=str(path)))
        pairs.append((str(path), task.branch))
    if not mine:
        return {}
    try:
        remotes.fetch(clone)
    except errors.KanbanError as exc:
        return {
            "kept_worktrees": [p for p, _ in pairs if os.path.lexists(p)],
            "kept_branches": [str(task.branch) for task in mine],
            "problems": [
                f"{url}: cannot fetch it, so nothing of it was collected on this host (whether "
                f"its work is on the remote is unknown): {exc}"
            ],
        }
    landed = {task.landed_from for task in mine if task.landed_from}

    def kept_elsewhere(commit: str) -> bool:
        return commit in landed or remotes.on_remote(clone, commit)

    return _collect(db, str(clone), mine, pairs, force=force, kept_elsewhere=kept_elsewhere)


def _teardowns(db, repo: str, ended: list[records.Task]) -> Callable[[Path, str], bool] | None:
    """What `worktrees.gc` runs before it removes a worktree of `repo`: the teardown of the
    ``.kanban.toml`` at its task's base (None when no task whose worktree is still there has
    one, so gc is what it was without teardowns).

    Each distinct base is read once, and only for worktrees still on disk: what earlier gcs
    collected costs nothing. All are read before any branch is deleted (a subtask's base is
    its parent's branch). A file that cannot be read is a problem only for a worktree that
    is going.
    """
    from orchestrator import preparing, workspace

    spaces: dict[str, workspace.Workspace | errors.KanbanError] = {}
    by_branch: dict[str, tuple[records.Task, workspace.Workspace | errors.KanbanError]] = {}
    for task in ended:
        assert task.worktree and task.branch
        if task.base_ref is None or not os.path.lexists(task.worktree):
            continue
        if task.base_ref not in spaces:
            try:
                spaces[task.base_ref] = workspace.from_ref(repo, task.base_ref).workspace
            except errors.KanbanError as exc:
                spaces[task.base_ref] = exc
        space = spaces[task.base_ref]
        if isinstance(space, errors.KanbanError) or space.teardown:
            by_branch[task.branch] = (task, space)
    if not by_branch:
        return None
    # As for a worker: git's variables (from a hook) and a worker's identity are not passed on.
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GIT_", "HERMES_KANBAN_"))
    }

    def run(path: Path, branch: str) -> bool:
        if branch not in by_branch:
            return False
        task, space = by_branch[branch]
        tid = ids.format(task.id)
        if isinstance(space, errors.KanbanError):
            raise errors.InvalidInput(
                f"{tid}: its teardown cannot be known, as its .kanban.toml cannot be read: {space}"
            )
        log = _teardown_log(db, task.id)
        try:
            preparing.teardown(space, worktree=path, environ=environ, log_path=log)
        except preparing.TeardownFailed as exc:
            output = f" (its output is in {log})" if log else ""
            raise errors.InvalidInput(f"{tid}: {exc}{output}") from exc
        return True

    return run


def _teardown_log(db, task_id: int) -> Path | None:
    """``teardown.log`` in the task's private log directory, beside its runs' logs (None: no
    run of it has a log, or the directory cannot be made)."""
    logged = [run.log_path for run in runs.for_task(db, task_id) if run.log_path]
    if not logged:
        return None
    directory = Path(logged[-1]).parent
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return directory / "teardown.log"


COMMANDS = [dispatch, logs, watch, gc]
