"""`kanban schedule`: cron schedules that submit a batch file from the running dispatcher."""

from __future__ import annotations

import time
from pathlib import Path

import click

from board import batches, schedules, views
from orchestrator import batch as batch_files
from orchestrator import schedules as firing
from orchestrator.cli import context


@click.group()
def schedule():
    """Cron schedules: a running `kanban dispatch` fires each one exactly once per fire time.

    \b
    Example:
      kanban schedule add nightly --cron "0 3 * * *" nightly.toml
    """


@schedule.command()
@click.argument("name")
@click.argument("batch_file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--cron",
    "cron",
    required=True,
    help='Cron expression of five fields, e.g. "0 3 * * *", or @daily, @hourly...',
)
@click.option(
    "--seconds",
    is_flag=True,
    help="--cron has a sixth field, last: seconds (without this flag six fields are refused).",
)
@click.pass_context
def add(ctx, name, batch_file, cron, seconds):
    """Add a schedule that submits BATCH_FILE at every fire time of --cron.

    The file is read at each fire, so edits apply to the next one. It is checked now, and so
    is the expression: it must fire some day (not "0 0 30 2 *").

    \b
    Examples:
      kanban schedule add nightly --cron "0 3 * * *" nightly.toml
      kanban schedule add poll --seconds --cron "* * * * * */30" poll.toml   # every 30 s
    """
    cron = firing.check_cron(cron, seconds=seconds)
    batch_files.load(batch_file)
    path = str(Path(batch_file).resolve())
    db = context.open_board(ctx)
    schedules.add(db, name, cron, batch_path=path, actor=context.actor())
    nxt = firing.next_after(cron, time.time())
    click.echo(f"schedule {name}: next fire at {views.when(nxt)}")


@schedule.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx, as_json):
    """List schedules with their last and next fire times. Example: kanban schedule list."""
    from orchestrator import render

    items = firing.listing(context.existing_board(ctx))
    if as_json:
        context.print_json(items)
        return
    if not items:
        click.echo("no schedules; add one with `kanban schedule add NAME --cron EXPR FILE`")
    for item in items:
        nxt = f"never: {item['problem']}" if item["problem"] else item["next_fire_at"]
        click.echo(
            render.plain(
                f"{item['name']}  {item['cron']!r}  {item['batch_file']}  "
                f"last: {item['last_fire_at'] or 'never'}  next: {nxt}"
            )
        )


@schedule.command()
@click.argument("name")
@click.pass_context
def remove(ctx, name):
    """Remove a schedule; batches it already submitted stay.

    \b
    Example:
      kanban schedule remove nightly
    """
    schedules.remove(context.existing_board(ctx), name, actor=context.actor())
    click.echo(f"removed schedule {name}")


@schedule.command(name="run-now")
@click.argument("name")
@click.pass_context
def run_now(ctx, name):
    """Submit the schedule's batch now; a running dispatcher runs it.

    \b
    Example:
      kanban schedule run-now nightly
    """
    db = context.existing_board(ctx)
    item = schedules.get(db, name)
    batch_name, entries, budget = batch_files.load(item["batch_path"])
    submitted = batches.submit(
        db, entries, name=f"{name} (run-now)", source=item["batch_path"], budget=budget
    )
    click.echo(f"submitted batch {submitted.batch_id} ({batch_name}): {len(entries)} task(s)")


COMMANDS = [schedule]
