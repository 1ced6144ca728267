"""Commands that read and change tasks: create, list, show, board, and the task actions.

Inside a worker (its run's variables set), `complete`, `block`, `comment` and `heartbeat` act
as that run, fenced by its token, and `create` makes a subtask of the worker's task, within
the board's policy (`board.policy`: no more privilege than the worker's own task, the same
repository).
"""

from __future__ import annotations

import click

from board import actors, deps, errors, ids, records, runs, spending, states, tasks, views
from orchestrator.cli import context
from orchestrator.cli.usage import usage_line
from worker import runtimes
from worker.runtimes import command as command_runtime


def _echo_task(obj: dict, as_json: bool) -> None:
    if as_json:
        context.print_json(obj)
    else:
        click.echo(obj["id"])


@click.command()
@click.argument("title")
@click.option("--body", default="", help="What to do, in detail (the agent's instructions).")
@click.option(
    "--repo",
    help="Git repository to work in: a checkout's path, or a remote's URL (https://, ssh://, "
    "file://, user@host:path, a bare repository's path) that every host clones.",
)
@click.option(
    "--base",
    "base",
    help="Ref the task's branch starts from (default: the checkout's HEAD, or the remote's "
    "default branch).",
)
@click.option("--after", multiple=True, help="A task that must be done first (repeatable).")
@click.option("--parent", help="Make this a subtask of PARENT.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option(
    "--runtime",
    type=click.Choice(runtimes.NAMES),
    help="How to run it (default: hermes; `command` with --command).",
)
@click.option(
    "--command",
    "command",
    help="Program and arguments for the `command` runtime "
    "(split like a shell would, never run through one).",
)
@click.option("--max-attempts", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option(
    "--timeout",
    type=context.Finite(min=0, min_open=True),
    help="Wall-clock limit of one attempt, in seconds.",
)
@click.option(
    "--budget",
    help='What all its runs may use: tokens ("200k"), dollars ("$5"), or both ("200k,$5").',
)
@click.option("--json", "as_json", is_flag=True, help="Print the task object.")
@click.pass_context
def create(
    ctx,
    title,
    body,
    repo,
    base,
    after,
    parent,
    priority,
    runtime,
    command,
    max_attempts,
    timeout,
    budget,
    as_json,
):
    """Create a task and print its id.

    Inside a worker it creates a subtask of the worker's task, in the same repository and on a
    runtime with no more privilege than the worker's own (only a `command` task may create
    `command` tasks).

    \b
    Examples:
      kanban create "Add a --verbose flag" --repo . --body "Use click's count option"
      kanban create "Nightly checks" --command "make check" --after t_3
      kanban create "Port the parser" --repo . --budget 2M,$10
      kanban create "Fix the flaky test" --repo git@github.com:me/app.git --base develop
    """
    from orchestrator import remotes

    runtime, options = command_runtime.task_runtime(runtime, command, option="--command")
    actor = context.actor()
    base_ref = base_branch = None
    if repo is not None:
        # A subtask branches from its parent's branch, so only a top-level task pins HEAD; a
        # remote's base is asked of it (each host works in a clone of its own).
        subtask = parent is not None or isinstance(actor, actors.Worker)
        found = remotes.resolve(repo, base, pin=not subtask)
        repo, base_ref, base_branch = found.repo, found.base_ref, found.base_branch
    elif base is not None:
        raise errors.InvalidInput("--base needs --repo")
    spec = tasks.NewTask(
        title=title,
        body=body,
        priority=priority,
        repo=repo,
        base_ref=base_ref,
        base_branch=base_branch,
        runtime=runtime,
        runtime_options=options,
        max_attempts=max_attempts,
        timeout=timeout,
        after=[context.task_id(a) for a in after],
        parent=context.task_id(parent) if parent else None,
        budget=tasks.NO_BUDGET if budget is None else spending.parse_budget(budget),
    )
    db = context.open_board(ctx)
    task_id = tasks.create(db, spec, actor)
    _echo_task(views.task_object(db, task_id), as_json)


@click.command(name="list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help=f"Only these statuses (repeatable): {', '.join(states.Status)}.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx, statuses, as_json):
    """List tasks, highest priority first.

    \b
    Example:
      kanban list --status ready --status running --json
    """
    db = context.existing_board(ctx)
    objects = views.task_objects(db, tasks.list_tasks(db, statuses))
    if as_json:
        context.print_json(objects)
        return
    from rich.table import Table
    from rich.text import Text

    from orchestrator import render

    notice = spending.daily_notice(db)
    if notice:
        click.echo(f"Note: {notice}", err=True)
    table = Table(box=None, header_style="bold")
    used = any(obj["usage"] for obj in objects)
    for column in ("id", "status", "pri", "title", "branch", *(["used"] if used else []), "note"):
        table.add_column(column)
    for obj in objects:
        style = render.STYLE.get(obj["status"], "")
        note = obj["summary"] or obj["why_not_runnable"] or ""
        # Text, not markup: a title like "[/]" is shown as typed, never parsed.
        shown = f"{obj['status']}, landed" if obj["landed"] else obj["status"]
        table.add_row(
            obj["id"],
            f"[{style}]{shown}[/]",
            str(obj["priority"]),
            Text(render.plain(obj["title"])),
            Text(render.plain(obj["branch"])),
            *([_brief(obj["usage"])] if used else []),
            Text(render.plain(note)[:80]),
        )
    context.console().print(table)


@click.command()
@click.argument("task")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx, task, as_json):
    """Show a task with its runs, events, comments and subtasks.

    \b
    Example:
      kanban show t_3
    """
    db = context.existing_board(ctx)
    obj = views.show(db, context.task_id(task))
    if as_json:
        context.print_json(obj)
        return
    from rich.text import Text

    from orchestrator import render

    out = context.console()
    style = render.STYLE.get(obj["status"], "")
    out.print(
        Text.assemble(
            (obj["id"], "bold"), f" {render.plain(obj['title'])}  ", (obj["status"], style)
        )
    )
    for key in (
        "parent",
        "repo",
        "base_branch",
        "branch",
        "worktree",
        "landed",
        "pr_url",
        "conflicts",
        "runtime",
        "summary",
        "block_reason",
        "failure_reason",
        "why_not_runnable",
    ):
        if obj[key]:
            value = obj[key]
            text = render.plain(
                ", ".join(value) if isinstance(value, list) else str(value), lines=True
            )
            out.print(f"  {key.replace('_', ' ')}: {text}", markup=False)
    out.print(f"  attempts: {obj['attempts']}/{obj['max_attempts']}")
    if obj["usage"] or obj["budget"]:
        used = usage_line(obj["usage"]) if obj["usage"] else "nothing recorded"
        budget = obj["budget"] and records.Budget(**obj["budget"])
        limit = f" of a budget of {budget.describe()}" if budget else ""
        out.print(f"  used: {used}{limit}", markup=False)
    for key in ("blockers", "dependents", "children"):
        if obj[key]:
            out.print(f"  {key}: {', '.join(obj[key])}")
    if obj["body"]:
        out.print("\n" + render.plain(obj["body"], lines=True), markup=False)
    if obj["subtasks"]:
        out.print("\n[bold]subtasks[/]")
        for sub in obj["subtasks"]:
            indent = "  " * sub["level"]
            out.print(
                Text.assemble(
                    f"{indent}{sub['id']} ",
                    (sub["status"], render.STYLE.get(sub["status"], "")),
                    f" {render.plain(sub['title'])}",
                )
            )
    if obj["runs"]:
        out.print("\n[bold]runs[/]")
        for run in obj["runs"]:
            exit_text = (
                f"signal {run['signal']}"
                if run["signal"] is not None
                else f"exit {run['exit_code']}"
                if run["exit_code"] is not None
                else ""
            )
            out.print(
                f"  #{run['id']} attempt {run['attempt']} ({run['kind']}) "
                f"{run['outcome'] or 'live'} {exit_text} {render.plain(run['reason'])}"
                f"{'  log: ' + render.plain(run['log_path']) if run['log_path'] else ''}",
                markup=False,
            )
            if run["usage"]:
                out.print(f"      used: {usage_line(run['usage'])}", markup=False)
            if run["ports"]:
                out.print(f"      ports: {', '.join(map(str, run['ports']))}", markup=False)
            if run["check"]:
                check = run["check"]
                out.print(
                    f"      check: {render.plain(check['command'])} {check['detail']} "
                    f"in {check['seconds']:.1f} s",
                    markup=False,
                )
    if obj["comments"]:
        out.print("\n[bold]comments[/]")
        for c in obj["comments"]:
            body = render.plain(c["body"], lines=True)
            out.print(f"  {c['at']} {render.plain(c['author'])}: {body}", markup=False)
    out.print("\n[bold]events[/]")
    for e in obj["events"]:
        change = f"{e['from'] or ''} -> {e['to']}" if e["to"] else ""
        detail = (e["data"] or {}).get("reason") or (e["data"] or {}).get("note") or ""
        line = f"  {e['at']} {e['actor']}: {e['kind']} {change} {detail}"
        out.print(render.plain(line), markup=False)


def _own(actor: actors.Actor, given: str | None) -> int:
    if given is not None:
        return context.task_id(given)
    if isinstance(actor, actors.Worker):
        return actor.task_id
    raise click.UsageError("give the task id (outside a worker there is no default task)")


@click.command()
@click.argument("task")
@click.argument("text")
@click.pass_context
def comment(ctx, task, text):
    """Add a comment to a task. Example: kanban comment t_3 "Use the v2 API"."""
    tasks.comment(context.existing_board(ctx), context.task_id(task), text, actor=context.actor())


@click.command()
@click.argument("blocker")
@click.argument("blocked")
@click.pass_context
def link(ctx, blocker, blocked):
    """BLOCKER must be done before BLOCKED runs. Example: kanban link t_1 t_2."""
    deps.link(
        context.existing_board(ctx),
        context.task_id(blocker),
        context.task_id(blocked),
        actor=context.actor(),
    )


@click.command()
@click.argument("blocker")
@click.argument("blocked")
@click.pass_context
def unlink(ctx, blocker, blocked):
    """Remove the dependency BLOCKER -> BLOCKED. Example: kanban unlink t_1 t_2."""
    deps.unlink(
        context.existing_board(ctx),
        context.task_id(blocker),
        context.task_id(blocked),
        actor=context.actor(),
    )


@click.command()
@click.argument("task")
@click.argument("reason")
@click.pass_context
def block(ctx, task, reason):
    """Block a task with a reason (a question, a missing decision).

    \b
    Example:
      kanban block t_3 "Which database should the cache use?"
    """
    tasks.block(context.existing_board(ctx), context.task_id(task), reason, actor=context.actor())


def _brief(usage: dict | None) -> str:
    if not usage:
        return ""
    return records.Usage(**{k: v for k, v in usage.items() if k != "tokens"}).brief()


_BUDGET_OPTION = click.option(
    "--budget",
    help='Its new budget: tokens ("200k"), dollars ("$5"), both ("200k,$5"), or "none".',
)


def _new_budget(text: str | None) -> records.Budget | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return tasks.NO_BUDGET
    return spending.parse_budget(text)


@click.command()
@click.argument("task")
@click.option("--comment", "answer", help="An answer or instruction added as a comment first.")
@_BUDGET_OPTION
@click.pass_context
def unblock(ctx, task, answer, budget):
    """Return a blocked task to ready. A task blocked by its budget needs a larger --budget.

    
    Examples:
      kanban unblock t_3 --comment "Use Redis"
      kanban unblock t_3 --budget 500k
    """
    status = tasks.unblock(
        context.existing_board(ctx),
        context.task_id(task),
        context.actor(),
        comment=answer,
        budget=_new_budget(budget),
    )
    click.echo(f"{task}: {status}")


@click.command()
@click.argument("task", required=False)
@click.option("--summary", required=True, help="What was done.")
@click.pass_context
def complete(ctx, task, summary):
    """Report a task complete (inside a worker: its own task, by default).

    \b
    Example:
      kanban complete t_3 --summary "Added --verbose; tests pass"
    """
    from worker import conflicts

    actor = context.actor()
    status = conflicts.complete(
        context.existing_board(ctx), _own(actor, task), summary, actor=actor
    )
    if status == "running":  # a worker's own report
        click.echo(
            f"{ids.format(_own(actor, task))}: reported complete; it becomes done (or waits for"
            " its open subtasks) when this run exits and its work is committed"
        )
    else:
        click.echo(f"{ids.format(_own(actor, task))}: {status}")


@click.command()
@click.argument("task")
@click.pass_context
def cancel(ctx, task):
    """Cancel a task and its open subtasks; their running workers are stopped.

    \b
    Example:
      kanban cancel t_3
    """
    changed = tasks.cancel(context.existing_board(ctx), context.task_id(task), context.actor())
    click.echo("cancelled: " + ", ".join(ids.format(t) for t in changed))


@click.command(name="budget")
@click.argument("task")
@click.argument("amount")
@click.pass_context
def budget_(ctx, task, amount):
    """Give TASK a new budget, whatever its status: tokens, dollars, both, or "none".

    A task's budget covers its subtasks' runs too; raise a parent's here when its subtasks
    spent it (they are blocked: `kanban retry` them afterwards).

    
    Examples:
      kanban budget t_3 2M
      kanban budget t_3 200k,$5
      kanban budget t_3 none
    """
    new = _new_budget(amount)
    assert new is not None
    tasks.set_budget(context.existing_board(ctx), context.task_id(task), new, context.actor())
    shown = new.describe() if not new.unbounded else "none"
    click.echo(f"{task}: budget {shown}")


@click.command()
@click.argument("task")
@_BUDGET_OPTION
@click.pass_context
def retry(ctx, task, budget):
    """Give a failed, cancelled or blocked task new attempts (and maybe a new budget).

    
    Examples:
      kanban retry t_3
      kanban retry t_3 --budget 1M        # it was blocked: budget exceeded
    """
    status = tasks.retry(
        context.existing_board(ctx),
        context.task_id(task),
        context.actor(),
        budget=_new_budget(budget),
    )
    click.echo(f"{task}: {status}")


@click.command()
@click.argument("task", required=False)
@click.option("--note", help="What the worker is doing right now.")
@click.pass_context
def heartbeat(ctx, task, note):
    """Tell the dispatcher this worker is alive (inside a worker only).

    \b
    Example:
      kanban heartbeat --note "running the test suite"
    """
    actor = context.worker_from_env()
    if actor is None:
        raise errors.InvalidInput(
            "heartbeat is sent by workers: run it inside a worker (HERMES_KANBAN_TASK set)"
        )
    if task is not None and context.task_id(task) != actor.task_id:
        raise errors.NotYourTask(ids.format(context.task_id(task)), ids.format(actor.task_id))
    runs.heartbeat(context.existing_board(ctx), actor, note)


@click.command(name="board")
@click.option("--json", "as_json", is_flag=True, help="Tasks grouped by status.")
@click.option("--all", "show_all", is_flag=True, help="Include every ended task.")
@click.pass_context
def board_(ctx, as_json, show_all):
    """The board as columns, subtasks under their parent. Example: kanban board."""
    from orchestrator import render

    db = context.existing_board(ctx)
    objects = views.task_objects(db, tasks.list_tasks(db))
    if as_json:
        grouped = {
            status: [o for o in objects if o["status"] == status] for status in states.Status
        }
        context.print_json(grouped)
        return
    context.console().print(render.board(objects, show_all=show_all))


COMMANDS = [
    create,
    list_,
    show,
    board_,
    comment,
    link,
    unlink,
    block,
    unblock,
    complete,
    cancel,
    retry,
    budget_,
    heartbeat,
]
