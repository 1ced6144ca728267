"""Preparing and checking the agents' configuration: `kanban setup codex|hermes`, `kanban doctor`
(which also checks the .kanban.toml of the repository it runs in).

Homes and binaries come from the same settings the dispatcher uses (options, then
``KANBAN_*`` variables, then ``~/.kanban/config.toml``), so what `doctor` checks is what the
workers will get.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile

import click

from board import connection, errors, migrations
from orchestrator import config, git, workspace
from orchestrator.cli import context
from worker.runtimes import base
from worker.runtimes import codex as codex_runtime
from worker.runtimes import hermes as hermes_runtime
from worker.setup import codex, hermes

VERSION_TIMEOUT = 20  # seconds; `hermes --version` imports a lot of Python


def _model_provider(url: str | None, model: str | None) -> codex.ModelProvider | None:
    if (url is None) != (model is None):
        raise click.UsageError("--model-provider-url and --model go together")
    return codex.ModelProvider(url, model) if url and model else None


@click.group()
def setup() -> None:
    """Register kanban with the agents: Codex's config block, a Hermes home for workers.

    \b
    Examples:
      kanban setup codex && kanban setup hermes
      kanban doctor
    """


@setup.command("codex")
@click.option(
    "--codex-home",
    type=click.Path(file_okay=False),
    help="Codex's home. Default: the dispatcher's codex_home, else $CODEX_HOME, else ~/.codex.",
)
@click.option("--remove", is_flag=True, help="Take kanban's block out again.")
@click.option(
    "--repair",
    is_flag=True,
    help="Remove kanban's own leftovers first when its block is damaged (as after "
    "`codex mcp add`), keeping everything else.",
)
@click.option(
    "--model-provider-url",
    metavar="URL",
    help="Point Codex at this Responses-API endpoint (offline or scripted runs).",
)
@click.option("--model", metavar="NAME", help="The model to ask that endpoint for.")
# Options of the stdio server that earlier versions registered: still accepted, so scripts
# keep working, and ignored with a notice.
@click.option("--python", "python", hidden=True)
@click.option("--startup-timeout", hidden=True)
@click.option("--tool-timeout", hidden=True)
def setup_codex(
    codex_home, remove, repair, model_provider_url, model, python, startup_timeout, tool_timeout
):
    """Make $CODEX_HOME/config.toml ready for kanban's workers (idempotent).

    Workers get kanban's MCP server per run, on Codex's command line, so nothing of kanban's
    is needed in the file: without a model provider this writes nothing, and takes out the
    block an older kanban wrote there (whose stdio server broke every plain `codex` once
    kanban's virtualenv was gone). With --model-provider-url and --model it writes a block
    that sets that provider. Everything outside the block is kept byte for byte, the previous
    file is saved as config.toml.kanban-backup, and a file that is not valid TOML is refused.
    Your own [mcp_servers.kanban] table is refused too: that name is kanban's.

    \b
    Examples:
      kanban setup codex
      kanban setup codex --model-provider-url http://127.0.0.1:8000/v1 --model scripted
      kanban setup codex --remove
    """
    provider = _model_provider(model_provider_url, model)
    ignored = [
        name
        for name, value in (
            ("--python", python),
            ("--startup-timeout", startup_timeout),
            ("--tool-timeout", tool_timeout),
        )
        if value is not None
    ]
    if ignored:
        click.echo(
            f"Note: {', '.join(ignored)} ignored: kanban no longer registers an MCP server in "
            "Codex's config (workers get it per run; see docs/config.md).",
            err=True,
        )
    home = codex_home or _runtime_settings().codex_home
    if remove:
        if provider:
            raise click.UsageError("--remove takes no --model-provider-url or --model")
        change = codex.remove(home, repair=repair)
        click.echo(
            f"Removed kanban's block from {change.path}."
            if change.changed
            else f"{change.path} has no kanban block; nothing to do."
        )
    else:
        change = codex.install(home, model_provider=provider, repair=repair)
        if provider is not None:
            click.echo(
                f"Wrote kanban's block (model provider {provider.base_url}) to {change.path}."
                if change.changed
                else f"{change.path} already has the current kanban block; nothing to do."
            )
        elif change.changed:
            click.echo(
                f"Removed kanban's old block from {change.path}: workers get kanban's MCP "
                "server per run, so nothing of kanban's is needed there any more."
            )
        else:
            click.echo(
                f"{change.path} is ready: workers get kanban's MCP server per run, so nothing "
                "of kanban's is needed there; left as it was."
            )
    if change.backup:
        click.echo(f"The previous file is saved as {change.backup}.")


@setup.command("hermes")
@click.option(
    "--hermes-home",
    type=click.Path(file_okay=False),
    help="The workers' own Hermes home. Default: the dispatcher's hermes_home "
    "($KANBAN_HERMES_HOME), else ~/.kanban/hermes. Never your own ~/.hermes.",
)
@click.option(
    "--model-provider-url",
    metavar="URL",
    help="Hermes' own endpoint for offline runs (the model turns go through Codex).",
)
@click.option("--model", metavar="NAME", help="The default model name for that endpoint.")
def setup_hermes(hermes_home, model_provider_url, model):
    """Prepare a Hermes home of kanban's own for the `hermes` runtime (idempotent).

    It selects Hermes' Codex app-server runtime and creates the directory Codex's sandbox
    needs. Your own Hermes home and settings are never read or changed. Workers also need
    `kanban setup codex`: on this runtime Codex talks to the model, and kanban gives it the
    board's tool server for each run.

    \b
    Examples:
      kanban setup hermes
      kanban setup hermes --hermes-home /srv/kanban/hermes
    """
    provider = _model_provider(model_provider_url, model)
    change = hermes.install(hermes_home or _runtime_settings().hermes_home, model_provider=provider)
    click.echo(
        f"Wrote {change.path}." if change.changed else f"{change.path} is current; nothing to do."
    )
    if change.backup:
        click.echo(f"The previous file is saved as {change.backup}.")


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@click.command()
@click.option(
    "--repo",
    help="The repository whose .kanban.toml to check (default: the one this command runs in, "
    "if any), or a remote's URL (or a bare repository's path) to check that it answers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@click.pass_context
def doctor(ctx, repo, as_json):
    """Check everything workers need, and say how to fix what is wrong. Exit 1 on a problem.

    Checks git, the hermes and codex programs (and their versions), that Codex's config leaves
    the name `kanban` free for the workers' per-run MCP server (and kanban's optional block in
    it), that the workers' Codex can reach a model (a login, or a model provider with a URL;
    without either a worker waits until its timeout), the workers' Hermes home and whether its
    model settings can work, the board (opened read-only, with an integrity check) and, in a
    repository, its .kanban.toml. With --repo URL (a remote, as `kanban create --repo` takes
    it), that the remote answers this user the way it must answer a dispatcher: without a
    prompt, within a timeout.

    \b
    Examples:
      kanban doctor
      kanban doctor --repo ~/src/app --json | jq '.[] | select(.ok | not)'
      kanban doctor --repo git@git.internal:team/app.git
    """
    checks = _checks((ctx.find_root().obj or {}).get("db_path"))
    repo_check = _workspace_file(repo) if repo is None else _repository(repo)
    if repo_check is not None:
        checks.append(repo_check)
    if as_json:
        context.print_json([dataclasses.asdict(check) for check in checks])
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            click.echo(f"{'ok ' if check.ok else 'BAD'}  {check.name:<{width}}  {check.detail}")
            if not check.ok and check.fix:
                click.echo(f"     {'':<{width}}  fix: {check.fix}")
    problems = sum(not check.ok for check in checks)
    if problems:
        click.echo(f"Error: {problems} problem(s) found; see the fixes above.", err=True)
        ctx.exit(1)


def _runtime_settings() -> base.Settings:
    return config.load().runtimes


def _checks(db_path: str | None) -> list[Check]:
    try:
        settings = config.load()
        settings_check = None
    except errors.KanbanError as exc:
        settings = config.Settings()
        settings_check = Check("kanban config", False, str(exc), fix="fix the file it names")
    runtimes = settings.runtimes
    checks = [settings_check] if settings_check else []
    checks.append(_program("git", None, None, "install git"))
    checks.append(
        _program(
            "hermes",
            runtimes.hermes_bin,
            "KANBAN_HERMES_BIN",
            hermes_runtime.INSTALL_HINT,
        )
    )
    codex_check = _program(
        "codex", runtimes.codex_bin, "KANBAN_CODEX_BIN", codex_runtime.INSTALL_HINT
    )
    checks.append(codex_check)
    codex_bin = _binary(runtimes.codex_bin, "KANBAN_CODEX_BIN", "codex") if codex_check.ok else None
    block = codex.status(runtimes.codex_home)
    checks.append(Check("codex config", block.ok, f"{block.path}: {block.detail}", block.fix))
    # The `codex` and `hermes` runtimes (the default) both talk to the model through Codex.
    access = codex.model_access(runtimes.codex_home, codex_bin=codex_bin)
    checks.append(Check("codex login", access.ok, access.detail, access.fix))
    checks.append(_hermes_home(runtimes.hermes_home, settings.max_workers, codex_check))
    checks.append(_board(db_path))
    checks.append(_tool_server(db_path))
    return checks


def _hermes_home(home: str | None, max_workers: int, codex_check: Check) -> Check:
    found = hermes.status(home, max_workers=max_workers)
    if found.ok and not codex_check.ok:
        # Its runtime (model.api_mode codex_app_server) starts `codex`; without one Hermes
        # answers "Codex app-server turn failed: [Errno 2] No such file or directory".
        return Check(
            "hermes home",
            False,
            f"{found.detail}; Hermes' Codex runtime needs the codex program, which is not usable",
            fix=codex_check.fix,
        )
    return Check("hermes home", found.ok, found.detail, found.fix)


def _binary(explicit: str | None, env_var: str, name: str) -> str | None:
    try:
        return base.find_binary(explicit, env_var, name, hint="")
    except errors.KanbanError:
        return None


def _tool_server(db_path: str | None) -> Check:
    """Is the board's MCP tool server up? Down is fine: a dispatcher starts it on demand."""
    from board import services
    from orchestrator import toolserver

    try:
        path = connection.resolve(db_path)
        if not path.exists():
            return Check("tool server", True, "none yet (a dispatcher starts it when needed)")
        db = connection.connect(path, create=False)
        try:
            found = services.tool_server(db)
        finally:
            db.conn.close()
    except errors.KanbanError as exc:
        return Check("tool server", True, f"not checked ({exc})")
    if found is None:
        return Check("tool server", True, "none yet (a dispatcher starts it when needed)")
    if toolserver.alive(found):
        return Check("tool server", True, f"{found.url} (pid {found.pid})")
    return Check(
        "tool server",
        True,
        f"not running (was {found.url}); the next dispatcher starts it again on that port",
    )


def _program(name: str, explicit: str | None, env_var: str | None, hint: str) -> Check:
    if env_var is None:
        path = shutil.which(name)
        if path is None:
            return Check(name, False, f"{name} is not on PATH", fix=hint)
    else:
        try:
            path = base.find_binary(explicit, env_var, name, hint=hint)
        except errors.KanbanError:
            wanted = explicit or os.environ.get(env_var) or name
            return Check(name, False, f"{wanted!r} not found", fix=f"{hint}, or set {env_var}")
    # `hermes --version` writes logs and an update stamp into its home: give it a throwaway
    # one, so checking never touches the user's ~/.hermes (or creates ours).
    with tempfile.TemporaryDirectory(prefix="kanban-doctor-") as scratch:
        return _version(name, path, hint, {**os.environ, "HERMES_HOME": scratch})


def _version(name: str, path: str, hint: str, environ: dict[str, str]) -> Check:
    try:
        done = subprocess.run(
            [path, "--version"],
            env=environ,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, False, f"{path} does not run: {exc}", fix=f"reinstall it ({hint})")
    lines = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        return Check(
            name,
            False,
            f"`{path} --version` failed (exit {done.returncode})",
            fix=f"reinstall it ({hint})",
        )
    return Check(name, True, f"{lines[0]} ({path})")


def _board(db_path: str | None) -> Check:
    try:
        where = connection.location(db_path)
    except errors.BoardError as exc:
        return Check("board", False, str(exc), fix="pass --db (or set KANBAN_DB to) a file path")
    if connection.is_postgres(where):
        return _postgres_board(where)
    try:
        path = connection.resolve(db_path)
    except errors.BoardError as exc:
        return Check("board", False, str(exc), fix="pass --db (or set KANBAN_DB to) a file path")
    if not path.exists():
        return Check("board", True, f"{path} does not exist yet (created on first use)")
    try:
        verdict, version = connection.inspect(path)
    except errors.BoardError as exc:
        return Check(
            "board",
            False,
            str(exc),
            fix="check the file's permissions, or pass --db the board's path",
        )
    if verdict != ["ok"]:
        return Check(
            "board",
            False,
            f"{path} is damaged: {'; '.join(verdict[:3])}",
            fix="restore the board from a backup (`sqlite3 BOARD .recover` may help)",
        )
    if version > migrations.latest():
        return Check(
            "board",
            False,
            f"{path} has schema {version}, newer than this kanban's {migrations.latest()}",
            fix="upgrade kanban",
        )
    return Check("board", True, f"{path}: integrity ok, schema {version}")


def _postgres_board(url: str) -> Check:
    """A PostgreSQL board: the server answers, the schema is this kanban's."""
    from board import pg_schema, postgres

    shown = postgres.redacted(url)
    try:
        db = connection.connect(url, create=False)
    except errors.BoardNotFound:
        return Check("board", True, f"{shown} has no board yet (created on first use)")
    except errors.BoardError as exc:
        return Check(
            "board",
            False,
            str(exc),
            fix="start the server, or fix the URL (--db or KANBAN_DB); the password may come "
            "from $PGPASSWORD or ~/.pgpass",
        )
    try:
        version = connection.schema_version(db)
        server = db.conn.execute("SHOW server_version").fetchone()[0]
    finally:
        db.conn.close()
    if version > pg_schema.latest():
        return Check(
            "board",
            False,
            f"{shown} has schema {version}, newer than this kanban's {pg_schema.latest()}",
            fix="upgrade kanban",
        )
    return Check("board", True, f"{shown}: PostgreSQL {server}, schema {version}")


def _repository(repo: str) -> Check | None:
    """``--repo``: a remote (it answers), or a checkout (its .kanban.toml)."""
    from orchestrator import remotes

    try:
        url = remotes.classify(repo)
    except errors.KanbanError as exc:
        return Check("remote", False, str(exc), fix=REMOTE_FORMS)
    return _workspace_file(repo) if url is None else _remote(url)


REMOTE_FORMS = (
    "give a remote as kanban create --repo takes it: https://host/path, ssh://[user@]host/path, "
    "user@host:path, file:///path or a bare repository's path"
)


def _remote(url: str) -> Check:
    """The remote answers ``git ls-remote --heads`` as a dispatcher would ask it: with no
    terminal to prompt on, ssh in batch mode, within `remotes.PROBE_TIMEOUT`."""
    from orchestrator import remotes

    try:
        heads = remotes.probe(url)
    except errors.KanbanError as exc:
        return Check("remote", False, str(exc), fix=_remote_fix(str(exc), url))
    if not heads:
        return Check(
            "remote",
            False,
            f"{url} answers but has no branch, and a task starts from one",
            fix=f"push a branch to it first (git push {url} main)",
        )
    shown = ", ".join(heads[:5]) + (", ..." if len(heads) > 5 else "")
    return Check("remote", True, f"{url} answers: {len(heads)} branch(es) ({shown})")


def _remote_fix(message: str, url: str) -> str:
    """What to do about a remote that did not answer, from what git said."""
    said = message.lower()
    if "host key verification failed" in said:
        return (
            "accept the host's key once for this user (connect with `ssh HOST` and check its "
            "fingerprint, or add it to ~/.ssh/known_hosts)"
        )
    if any(
        words in said
        for words in (
            "permission denied",
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "access denied",
            "returned error: 401",
            "returned error: 403",
        )
    ):
        return (
            "give the user kanban runs as access that needs no prompt (kanban never asks for a "
            "password): for ssh, a key that ssh-agent holds or that has no passphrase "
            "(`ssh -o BatchMode=yes HOST` must work); for https, a credential helper (git "
            "config --global credential.helper ...). Never put the password in the URL"
        )
    if any(
        words in said
        for words in (
            "not found",
            "does not appear to be a git repository",
            "no such file",
            "not a git repository",
        )
    ):
        return f"check the URL: no repository answers at {url} (a typo in its path?)"
    if any(
        words in said
        for words in (
            "could not resolve",
            "name or service not known",
            "connection refused",
            "timed out",
            "did not answer",
            "network is unreachable",
            "no route to host",
        )
    ):
        return (
            "check the URL's host and port, and that this machine reaches it (network, VPN, "
            "proxy, firewall)"
        )
    return f"check the URL, and that `git ls-remote -- {url}` works for this user unprompted"


def _workspace_file(repo: str | None) -> Check | None:
    """The repository's .kanban.toml as it is in the working tree; None outside a repository
    (unless --repo named one)."""
    name = workspace.FILE_NAME
    try:
        top = git.inspect(repo or os.curdir, rev=None).top
    except git.NotARepository as exc:
        return None if repo is None else Check(name, False, str(exc))
    except git.GitError as exc:
        return Check(name, False, str(exc), fix="install git")
    try:
        current = workspace.from_checkout(top)
    except errors.KanbanError as exc:
        fix = "fix what it names (docs/workspace.md describes every key)"
        return Check(name, False, str(exc), fix=fix)
    path = top / name
    if not current.found:
        return Check(name, True, f"{top} has none: the defaults (`kanban init` writes one)")
    space, check = current.workspace, current.check
    summary = (
        f"copy {len(space.copy)}, link {len(space.link)}, setup {len(space.setup)}, "
        f"ports {space.ports}, check {f'`{check.command}`' if check else 'none'}"
    )
    try:
        committed = workspace.from_ref(top, "HEAD")
    except errors.KanbanError:
        committed = None
    if committed != current:
        summary += "; not as committed at HEAD: tasks read it from their base commit"
    return Check(name, True, f"{path}: valid ({summary})")


COMMANDS = [setup, doctor]
