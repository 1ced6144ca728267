"""Review and land: diff, reopen, land (the merge queue into a task's base branch)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from board import batches, errors, records, tasks
from orchestrator.cli import context


def _task_with_branch(db, value: str) -> records.Task:
    task = tasks.get(db, context.task_id(value))
    if not task.repo or not task.branch:
        raise errors.InvalidInput(
            f"{task.label} has no branch yet (no repository, or it has not started): nothing "
            "to show"
        )
    return task


@click.command()
@click.argument("task")
@click.option("--patch", is_flag=True, help="The full diff, not only the files changed.")
@click.option("--into", help="Compare with this branch instead of the task's base branch.")
@click.pass_context
def diff(ctx, task, patch, into):
    """Show what TASK would land: its branch against its base branch as it is now.

    The changes on the task's branch since it forked from the base (``git diff
    BASE...BRANCH``): files and line counts by default, the whole diff with --patch. In colour
    on a terminal. For a task of a remote repository, this host's clone of it is fetched first
    (and made, if this host has none): the task's branch as pushed (or as this host has it,
    when it holds more) against the remote's base branch.

    \b
    Examples:
      kanban diff t_3
      kanban diff t_3 --patch | less -R
    """
    from orchestrator import git, landing

    db = context.existing_board(ctx)
    chosen = _task_with_branch(db, task)
    found = landing.compared(chosen, into=into)
    color = "--color=always" if sys.stdout.isatty() else "--color=never"
    what = ["--patch-with-stat"] if patch else ["--stat"]
    result = git.run(found.repo, "diff", color, *what, f"{found.base}...{found.branch}", "--")
    click.echo(result.out or f"{chosen.label}: no changes against {found.base_name}")


@click.command()
@click.argument("task")
@click.option("--comment", required=True, help="What to change (goes into the next prompt).")
@click.pass_context
def reopen(ctx, task, comment):
    """Send a done task back to its agent with a review comment, on the same branch.

    It gets a fresh set of attempts; the comment is in its next prompt. Dependents that have
    not started wait for it again. A landed task is not reopened: create a new task.

    \b
    Example:
      kanban reopen t_3 --comment "Handle an empty list too, and add a test for it"
    """
    db = context.existing_board(ctx)
    status = tasks.reopen(db, context.task_id(task), comment, actor=context.actor())
    click.echo(f"{task}: {status}")


@click.command()
@click.argument("task_ids", nargs=-1, metavar="TASK...")
@click.option("--all", "land_all", is_flag=True, help="Every done task not landed yet.")
@click.option("--batch", "batch_name", help="With --all: only this batch's tasks.")
@click.option(
    "--strategy",
    type=click.Choice(["merge", "squash", "rebase"]),
    default="merge",
    show_default=True,
    help="How each branch goes onto its base.",
)
@click.option("--into", help="Land into this branch instead of each task's base branch.")
@click.option("--no-check", is_flag=True, help="Do not run the repository's check.")
@click.option(
    "--no-reopen", is_flag=True, help="Leave a task that conflicts or fails its check done."
)
@click.option(
    "--push",
    is_flag=True,
    help="Push each moved base branch to its remote (a remote repository's is pushed as it lands).",
)
@click.option("--pr", is_flag=True, help="Push each task's branch and open a pull request.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def land(
    ctx, task_ids, land_all, batch_name, strategy, into, no_check, no_reopen, push, pr, as_json
):
    """Land done tasks into their base branch through a verified merge queue.

    In dependency order, each task's branch is merged onto its base branch as it is now, in a
    scratch worktree; the repository's check (.kanban.toml [check]) runs on the result; only
    if it passes does the base branch move (a compare-and-swap: a base moved meanwhile is
    merged again, never overwritten). A conflict or a failed check moves nothing and reopens
    the task with it in its next prompt; the queue goes on with tasks that do not depend on
    it. A base branch checked out with local changes is never moved. Exit 0 when every task
    landed.

    A task whose repository is a remote lands from this host's clone of it, and its base
    branch is pushed to the remote as it lands (so --push has nothing more to do); --pr
    pushes its branch there and opens the pull request from the clone.

    \b
    Examples:
      kanban land t_3 t_4
      kanban land --all --batch nightly --push
      kanban land t_5 --pr
    """
    from orchestrator import landing
    from orchestrator.cli import dispatch

    if context.worker_from_env() is not None:
        raise errors.NotForWorkers(
            "landing", os.environ.get("HERMES_KANBAN_TASK", "?"), "complete your task instead"
        )
    if land_all == bool(task_ids):
        raise errors.InvalidInput("name the tasks to land, or use --all (not both)")
    if batch_name and not land_all:
        raise errors.InvalidInput("--batch goes with --all")
    if pr and push:
        raise errors.InvalidInput("--pr opens pull requests instead of moving the base: not both")
    db = context.existing_board(ctx)
    if land_all:
        batch_id = batches.find(db, batch_name) if batch_name else None
        chosen = [
            t.id
            for t in tasks.list_tasks(db, ["done"], batch_id=batch_id)
            if not t.landed_sha
            and t.repo
            and t.branch
            and (t.base_branch or into)
            and not (t.parent_id and not t.base_branch)  # subtasks land with their parent
        ]
    else:
        chosen = [context.task_id(t) for t in task_ids]
    settings = dispatch.settings_from(ctx)
    say = (lambda _: None) if as_json else click.echo
    if pr:
        results = [_open_pr(db, task_id, into, settings.clones_root) for task_id in chosen]
        for line in results:
            say(line["text"])
        if as_json:
            context.print_json(results)
        ctx.exit(0 if all(r["ok"] for r in results) else 1)
    options = landing.Options(
        strategy=landing.Strategy(strategy), check=not no_check, reopen=not no_reopen, into=into
    )
    results = landing.land(
        db,
        chosen,
        options=options,
        worktree_root=settings.worktree_root,
        say=say,
        clones_root=settings.clones_root,
    )
    pushed = _push(db, results) if push else []
    if as_json:
        context.print_json({"tasks": [r.to_json() for r in results], "pushed": pushed})
    else:
        for line in pushed:
            click.echo(line["text"])
        landed = sum(r.ok for r in results)
        click.echo(f"{landed} of {len(results)} landed" if results else "nothing to land")
    ok = all(r.ok for r in results) and all(p["ok"] for p in pushed)
    ctx.exit(0 if ok else 1)


def _remote(repo: str, branch: str) -> str | None:
    """The remote `branch` pushes to: its upstream's, else ``origin``, else the only one."""
    from orchestrator import git

    top = git.open_repo(repo).path
    configured = git.run(top, "config", "--get", f"branch.{branch}.remote", ok=(0, 1)).out.strip()
    if configured and configured != ".":
        return configured
    remotes = git.run(top, "remote").out.split()
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def _push(db, results) -> list[dict]:
    """Push each base branch that moved, once, to its remote (a remote repository's was
    pushed as it landed)."""
    from orchestrator import git, remotes

    done: list[dict] = []
    seen = set()
    for result in results:
        if result.status != "landed":
            continue
        task = tasks.get(db, context.task_id(result.task))
        branch = result.into
        key = (task.repo, branch)
        if key in seen or not task.repo or not branch:
            continue
        seen.add(key)
        if remotes.url_of(task.repo) is not None:
            done.append({"ok": True, "text": f"push: {branch} to {task.repo}: done as it landed"})
            continue
        remote = _remote(task.repo, branch)
        if remote is None:
            done.append(
                {
                    "ok": False,
                    "text": f"push: {task.repo} has no remote to push {branch} to: add one "
                    "(git remote add origin URL)",
                }
            )
            continue
        top = git.open_repo(task.repo).path
        pushed = git.run(top, "push", "-q", remote, f"refs/heads/{branch}", ok=git.ANY_STATUS)
        done.append(
            {
                "ok": pushed.status == 0,
                "text": f"push: {branch} to {remote}: "
                + ("done" if pushed.status == 0 else pushed.message()),
            }
        )
    return done


def _open_pr(db, task_id: int, into: str | None, clones_root: Path) -> dict:
    """Push the task's branch and open a pull request with gh (when it is installed): from
    its checkout, or from this host's clone of its remote."""
    from orchestrator import git, landing, remotes

    task = tasks.get(db, task_id)
    base = into or task.base_branch
    if task.status != "done" or not task.repo or not task.branch or not base:
        return {
            "ok": False,
            "task": task.label,
            "text": f"{task.label}: not a done task on a branch",
        }
    if task.pr_url:
        return {
            "ok": True,
            "task": task.label,
            "url": task.pr_url,
            "text": f"{task.label}: already has a pull request: {task.pr_url}",
        }
    if remotes.url_of(task.repo) is not None:
        remote = task.repo
        try:
            top = landing.push_branch(task, clones_root=clones_root)
        except errors.KanbanError as exc:
            return {"ok": False, "task": task.label, "text": f"{task.label}: push failed: {exc}"}
    else:
        found = _remote(task.repo, base)
        if found is None:
            return {
                "ok": False,
                "task": task.label,
                "text": f"{task.label}: {task.repo} has no remote: add one "
                "(git remote add origin URL)",
            }
        remote = found
        top = git.open_repo(task.repo).path
        pushed = git.run(top, "push", "-q", remote, f"refs/heads/{task.branch}", ok=git.ANY_STATUS)
        if pushed.status != 0:
            return {
                "ok": False,
                "task": task.label,
                "text": f"{task.label}: push failed: {pushed.message()}",
            }
    gh = shutil.which("gh")
    if gh is None:
        return {
            "ok": False,
            "task": task.label,
            "text": f"{task.label}: pushed {task.branch} to {remote}; gh (GitHub's CLI) is not "
            "installed, so no pull request was opened: install gh and run this again, or open "
            "one from the branch by hand",
        }
    body = f"{task.summary or ''}\n\nKanban task {task.label}: {task.title}"
    created = subprocess.run(
        [
            gh,
            "pr",
            "create",
            "--base",
            base,
            "--head",
            task.branch,
            "--title",
            " ".join(task.title.split()),
            "--body",
            body,
        ],
        cwd=top,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        return {
            "ok": False,
            "task": task.label,
            "text": f"{task.label}: gh pr create failed: {created.stderr.strip()[-500:]}",
        }
    url = created.stdout.strip().splitlines()[-1] if created.stdout.strip() else None
    tasks.record_landed(db, task.id, sha=None, pr_url=url)
    return {"ok": True, "task": task.label, "url": url, "text": f"{task.label}: {url}"}


COMMANDS = [diff, reopen, land]
