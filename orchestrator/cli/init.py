"""`kanban init`: a commented ``.kanban.toml`` for a repository, never over an existing one."""

from __future__ import annotations

import os
from pathlib import Path

import click

from board import errors
from orchestrator import git, scaffold, workspace
from orchestrator.cli import context

NOT_YET = (
    "kanban reads and checks this file now; copy, link, setup, teardown, ports, env and the "
    "check gate take effect in a coming release."
)


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
        "Review it and commit it: tasks read it from their base commit. `kanban doctor` checks "
        f"it. {NOT_YET}"
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


COMMANDS = [init]
