"""`kanban run`: submit a batch, run it to the end, report, and exit 0 only if all is done.

The run's dispatcher starts only the batch's tasks (and the subtasks their workers create):
other work on the board is left to `kanban dispatch`. Ctrl-C once: start nothing new and wait
for the running workers; twice: stop them. An interrupted run exits 130.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from board import batches, dispatchers, states
from orchestrator import batch as batch_files
from orchestrator import report as reports
from orchestrator.cli import context
from orchestrator.cli.dispatch import settings_from


@click.command()
@click.argument("batch_file", type=click.Path(dir_okay=False))
@click.option("--idempotency-key", help="Submitting twice with the same key creates it once.")
@click.option(
    "--no-dispatch",
    is_flag=True,
    help="Submit and wait; a dispatcher already running on the board does the work.",
)
@click.option("--max-workers", type=click.IntRange(1, 256), envvar="KANBAN_MAX_WORKERS")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Also write the report to this file (Markdown).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the report.")
@click.option(
    "--land",
    "land_at_end",
    is_flag=True,
    help="When every task is done, land them into their base branches (kanban land).",
)
@click.pass_context
def run(
    ctx,
    batch_file,
    idempotency_key,
    no_dispatch,
    max_workers,
    as_json,
    report_path,
    quiet,
    land_at_end,
):
    """Submit BATCH_FILE (TOML), run it to the end and print a report.

    Only the batch's tasks (and their subtasks) are started; other ready tasks on the board
    are left alone. Exit code 0 only if every task of the batch is done, 1 otherwise, 130 if
    interrupted: fit for cron. Ctrl-C once: start nothing new and wait for the running workers;
    twice: stop them.

    \b
    Examples:
      kanban run nightly.toml --report nightly.md
      kanban run nightly.toml --idempotency-key "nightly-$(date +%F)"
      kanban run features.toml --land

    With --land, when every task of the batch is done its top-level tasks are landed as
    `kanban land` does (check, compare-and-swap); the report says what landed, and the exit
    code is 0 only if every one did.
    """
    name, entries, budget = batch_files.load(batch_file)
    db = context.open_board(ctx)
    submitted = batches.submit(
        db,
        entries,
        name=name,
        budget=budget,
        idempotency_key=idempotency_key,
        source=str(Path(batch_file).resolve()),
        actor=context.actor(),  # a worker is refused: it creates subtasks instead
    )
    say = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    if submitted.created:
        say(f"submitted batch {submitted.batch_id} ({name}): {len(entries)} task(s)")
    else:
        say(
            f"batch {submitted.batch_id} was already submitted with this idempotency key; "
            "nothing new was created"
        )
    batch_id = submitted.batch_id
    assert batch_id is not None
    show_progress = not quiet and sys.stderr.isatty()
    if no_dispatch:
        interrupted = _wait(db, batch_id, say, show_progress)
    else:
        interrupted = _dispatch(ctx, batch_id, max_workers, say, show_progress)
    landed = None
    if land_at_end and not interrupted:
        landed = _land(ctx, db, batch_id, say)
    result = reports.build(db, batch_id, landed=landed)
    if report_path:
        Path(report_path).write_text(reports.markdown(result, name), encoding="utf-8")
    if as_json:
        context.print_json(result)
    else:
        _print(result)
    if result["ok"]:
        ctx.exit(0)
    if interrupted:
        if not no_dispatch:
            again = f", or this command again with --idempotency-key {idempotency_key}"
            say(
                f"interrupted: the unfinished tasks of batch {batch_id} stay on the board; "
                f"`kanban dispatch` runs them{again if idempotency_key else ''}"
            )
        ctx.exit(130)
    ctx.exit(1)


def _land(ctx, db, batch_id: str, say) -> list[dict] | None:
    """Land the batch's done top-level tasks; None when not every task is done (nothing is
    landed from a batch that did not finish)."""
    from orchestrator import landing

    found = batches.tasks_of(db, batch_id)
    if not found or any(t.status != states.Status.DONE for t in found):
        say("not every task is done: nothing landed")
        return None
    chosen = [t.id for t in found if t.base_branch and t.branch and not t.landed_sha]
    settings = settings_from(ctx)
    results = landing.land(
        db, chosen, options=landing.Options(), worktree_root=settings.worktree_root, say=say
    )
    return [r.to_json() for r in results]


def _progress(show: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=False,
    )


def _update(progress, bar, db, batch_id: str) -> None:
    from orchestrator import render

    counts = reports.counts(db, batch_id)
    ended = sum(counts.get(s, 0) for s in states.ENDED)
    progress.update(
        bar,
        total=sum(counts.values()),
        completed=ended,
        description=render.progress_line(counts).markup or "starting",
    )


def _dispatch(ctx, batch_id: str, max_workers, say, show_progress) -> bool:
    """Run a dispatcher for the batch until it has finished; True if it was interrupted."""
    import anyio

    from orchestrator import dispatcher

    settings = settings_from(ctx, max_workers=max_workers)
    with _progress(show_progress) as progress:

        def event(message: str) -> None:
            if show_progress:  # above the bar, which a plain write would tear
                progress.console.print(message, markup=False, highlight=False)
            else:
                say(message)

        runner = dispatcher.Dispatcher(
            settings,
            context.board_path(ctx),
            until_idle=True,
            on_event=event,
            idle_scope=lambda db: reports.finished(db, batch_id),
            batch_id=batch_id,
        )
        bar = progress.add_task("starting", total=None)

        async def refresh(d: dispatcher.Dispatcher) -> None:
            while True:
                await d.board.call(lambda db: _update(progress, bar, db, batch_id))
                await anyio.sleep(0.25)

        runner.extra_tasks.append(refresh)
        code = anyio.run(runner.run)
        _update(progress, bar, context.open_board(ctx), batch_id)
    # A first signal stops new starts (the dispatcher says so), a second stops the workers.
    return runner.stopping or code == 130


def _wait(db, batch_id: str, say, show_progress) -> bool:
    """Wait for another dispatcher to finish the batch; True if interrupted (Ctrl-C)."""
    from orchestrator import processes

    if not any(processes.alive(d.pid, d.pid_started_at) for d in dispatchers.all_(db)):
        say(
            "no dispatcher is running on this board yet; waiting (start one with `kanban dispatch`)"
        )
    with _progress(show_progress) as progress:
        bar = progress.add_task("waiting", total=None)
        try:
            while True:
                _update(progress, bar, db, batch_id)
                if reports.finished(db, batch_id):
                    return False
                time.sleep(0.25)
        except KeyboardInterrupt:
            say("interrupted: stopped waiting; the board's dispatcher goes on with the batch")
            return True


def _print(result: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    from orchestrator import render

    what = "all tasks done" + (" and landed" if "landing" in result else "")
    table = Table(
        title=f"batch {result['batch']}: " + (what if result["ok"] else f"NOT {what}"),
        header_style="bold",
        title_justify="left",
    )
    for column in ("task", "status", "attempts", "duration", "branch", "summary"):
        table.add_column(column, overflow="fold")
    for e in result["tasks"]:
        style = render.STYLE.get(e["status"], "")
        duration = f"{e['duration_s']:.1f}s" if e["duration_s"] is not None else ""
        text = (e["summary"] or e["reason"] or "").strip().splitlines()
        # Text objects: a title is neither rich markup nor terminal control sequences.
        table.add_row(
            Text(f"{e['id']} {render.plain(e['title'])}"),
            f"[{style}]{e['status']}{', landed' if e['landed'] else ''}[/]",
            str(e["attempts"]),
            duration,
            e["branch"] or "",
            Text(render.plain(text[-1] if text else "")[:120]),
        )
    context.console().print(table)
    for landed in result.get("landing") or []:
        context.console().print(
            Text(f"{landed['task']}: {landed['status']}: {render.plain(landed['detail'])}")
        )


COMMANDS = [run]
