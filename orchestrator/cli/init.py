"""A repository's workspace by hand: `kanban init` writes a commented ``.kanban.toml`` (never
over an existing one); `kanban check` runs a task's check in its worktree."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import click

from board import errors, tasks
from orchestrator import git, scaffold, workspace
from orchestrator.cli import context


@click.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the proposal and the outcome as JSON.")
def init(path, as_json):
    """Write a commented .kanban.toml for the repository at PATH (default: this one).

    It guesses `setup` and `check` from what the repository holds (package.json and its
    lockfile, pyproject.toml, a Makefile's test target, Cargo.toml, go.mod) and copies the
    ignored env files (.env, .env.local) into new worktrees. When the repository already has a
    .kanban.toml, nothing is written: the proposal is printed instead (exit 0).

    \b
    Examples:
      kanban init
      kanban init ~/src/app --json | jq -r .text
    """
    try:
        top = git.inspect(path, rev=None).top
    except git.NotARepository as exc:
        raise errors.InvalidInput(
            f"{exc.path} is not in a git checkout (or is a bare repository); run `kanban init` "
            "in a repository's checkout, or pass its path"
        ) from exc
    target = top / workspace.FILE_NAME
    proposal = scaffold.propose(top)
    text = proposal.render()
    workspace.parse(text, f"{target} (as proposed)")  # a proposal that does not parse is a bug
    written = _create(target, text)
    if as_json:
        context.print_json(
            {"path": str(target), "written": written, "text": text, **proposal.to_json()}
        )
        return
    if not written:
        click.echo(
            f"{target} exists and was left as it is; this is what `kanban init` would write:",
            err=True,
        )
        click.echo(text, nl=False)
        return
    found = ", ".join(proposal.sources) or "nothing it recognised"
    click.echo(f"Wrote {target}, guessed from {found}.")
    for note in proposal.notes:
        click.echo(f"Note: {note}")
    click.echo(
        "Review it and commit it: tasks read it from their base commit. `kanban doctor` checks it."
    )


def _create(target: Path, text: str) -> bool:
    """Write `text` to a new file at `target`; False (and nothing written) if one exists."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:  # a link, even a dangling one, counts: it is the user's
        return False
    except OSError as exc:
        raise errors.InvalidInput(f"cannot write {target} ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        target.unlink(missing_ok=True)  # never leave half a file behind
        raise errors.InvalidInput(f"cannot write {target} ({exc.strerror})") from exc
    return True


@click.command()
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check(ctx, task, as_json):
    """Run the repository's check in TASK's worktree, as the gate does; exit 1 if it fails.

    The check is `[check] command` of the .kanban.toml committed at the task's base (or the
    task's own `check` from its batch file). It runs in the worktree as it stands, with the
    workspace's env and ports, and the result is added to the task's events.

    \b
    Example:
      kanban check t_3
    """
    from orchestrator import checking, ports
    from orchestrator.cli import dispatch
    from worker import env

    db = context.existing_board(ctx)
    found = tasks.get(db, context.task_id(task))
    if not found.repo:
        raise errors.InvalidInput(
            f"{found.label} has no repository: a check runs in a task's worktree"
        )
    if not found.worktree or not os.path.isdir(found.worktree):
        raise errors.InvalidInput(
            f"{found.label} has no worktree (it has not started, or `kanban gc` removed it)"
        )
    config = checking.config_for(found.repo, found.base_ref, found.workspace)
    if config.check is None:
        raise errors.InvalidInput(
            f"{found.repo}/{workspace.FILE_NAME} declares no check at {found.label}'s base: add "
            '[check] command = "..." to it and commit it (docs/workspace.md)'
        )
    settings = dispatch.settings_from(ctx)
    environ = env.for_check(
        dict(os.environ), task=found.label, workspace=found.worktree, branch=found.branch
    )
    environ.update(config.workspace.env)
    hold = ports.NONE
    if config.workspace.ports:
        hold = ports.reserve(
            config.workspace.ports, directory=settings.ports_dir, span=settings.port_range
        )
    try:
        environ.update(hold.env)
        with tempfile.NamedTemporaryFile(prefix="kanban-check-", suffix=".log") as log:
            if not as_json:
                click.echo(f"{found.label}: {config.check.command} (in {found.worktree})", err=True)
            result = checking.run(
                config.check, worktree=found.worktree, environ=environ, log_path=log.name
            )
            output = Path(log.name).read_text(encoding="utf-8", errors="replace")
    finally:
        hold.release()
    tasks.record(
        db,
        found.id,
        "checked",
        data={"command": result.command, "passed": result.passed, "detail": result.detail},
        actor=context.actor(),
    )
    if as_json:
        context.print_json({"task": found.label, **dataclasses.asdict(result)})
    else:
        click.echo(output.partition("\n")[2], nl=False)  # without kanban's header line
        click.echo(f"{found.label}: check {result.detail} in {result.seconds:.1f} s")
    ctx.exit(0 if result.passed else 1)


COMMANDS = [init, check]
