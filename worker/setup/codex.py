"""kanban's managed block in Codex's ``$CODEX_HOME/config.toml``: install, remove, check.

Nothing of kanban's in this file is needed to run a worker. The board's one long-lived MCP
server speaks streamable HTTP on 127.0.0.1, and each worker's Codex gets it *per run*, on its
command line (``codex exec -c mcp_servers.kanban.url=...``; for Hermes, a ``codex`` wrapper
adds the same flags). So the file holds nothing that kanban's absence could break: deleting
kanban (its virtualenv, say) leaves every plain ``codex`` working. Earlier versions registered
a stdio ``[mcp_servers.kanban]`` with ``required = true`` and the absolute path of kanban's
interpreter, which made every ``codex exec`` of the user fail once that interpreter was gone.

What the block still holds is optional: a model provider for offline or scripted runs (the
demo, the tests), written only when one is asked for. Without one, `install` writes no block
and takes out an old one, so on a plain machine ``kanban setup codex`` leaves the file exactly
as it was. Example::

    from worker.setup import codex
    codex.install()                      # ~/.codex/config.toml, or $CODEX_HOME's: no block
    codex.install(model_provider=codex.ModelProvider("http://127.0.0.1:8000/v1", "scripted"))
    codex.conflict()                     # None, or why Codex would refuse the per-run server
    codex.remove()

The name ``kanban`` under ``mcp_servers`` is reserved: Codex refuses a per-run ``url`` for a
name that config.toml already gives a stdio table ("url is not supported for stdio"), even a
disabled one, so any ``[mcp_servers.kanban]`` table blocks the workers. `conflict` names it;
an old block of ours is migrated by `install`, a user's own table must be renamed.

Everything outside the two marker lines is kept byte for byte. The block goes just before the
user's first table (at the end of a file without tables) rather than at the very end: keys a
user later appends at the end of the file then still land in their own last table, as they
did before, and never inside ours. Our top-level keys (``model``, ``model_provider``) are only
valid there, before any table. Every write is checked: the result must parse, our tables must
hold exactly what we wrote, and everything else must mean what it meant before.

``codex mcp add`` / ``codex mcp remove`` re-serialize the whole ``[mcp_servers]`` section and
drop the comments in it, the marker lines of an old block included. Such a damaged block is
refused (never guessed at) until ``install(repair=True)`` removes what is provably ours: the
marker lines, the ``[mcp_servers.kanban]`` table that runs ``worker.mcp_server``, and a
provider we named.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import dataclasses
import enum
import functools
import math
import os
import re
import shlex
import stat
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from board import errors

SERVER = "kanban"  # the name under [mcp_servers] that the per-run entry needs free
# What the stdio server of earlier versions ran: how an old [mcp_servers.kanban] is known.
LEGACY_MODULE = "worker.mcp_server"
PROVIDER_NAME = "kanban managed provider"  # how repair recognizes a provider we wrote

START = "# >>> kanban managed block (kanban setup codex) >>>"
END = "# <<< kanban managed block <<<"
# Present only when the file did not end with a line break and we had to add one before the
# block: removing the block then takes that line break out too.
LINE_BREAK_NOTE = "# (kanban added the line break before this block; removing the block removes it)"
NOTE = (
    "# Written by `kanban setup codex`: edits between these markers are replaced on every run.",
    "# Remove with `kanban setup codex --remove`; keep your own settings outside the markers.",
)
BACKUP_SUFFIX = ".kanban-backup"
NEW_FILE_MODE = 0o600  # the file may hold provider settings and tokens


class SetupError(errors.KanbanError):
    """A setup step cannot proceed; the message names the file and says what to do."""


class State(enum.StrEnum):
    MISSING = "missing"  # nothing set up (kept for the Hermes home; Codex's needs nothing)
    CURRENT = "current"
    STALE = "stale"  # an old block that registers the stdio server: `kanban setup codex`
    BROKEN = "broken"  # a file or block that setup refuses to edit until fixed


@dataclasses.dataclass(frozen=True)
class ModelProvider:
    """A model endpoint for offline or scripted runs (tests, the demo)."""

    base_url: str
    model: str
    provider_id: str = "kanban"


@dataclasses.dataclass(frozen=True)
class Change:
    path: Path
    changed: bool
    backup: Path | None = None  # the previous content, when there was some and it changed


@dataclasses.dataclass(frozen=True)
class Status:
    path: Path
    state: State
    detail: str
    fix: str = ""  # what to run or do; empty when nothing is needed

    @property
    def ok(self) -> bool:
        return self.state is State.CURRENT


def codex_home(override: str | os.PathLike[str] | None = None) -> Path:
    """`override`, else ``$CODEX_HOME``, else ``~/.codex`` (Codex's own rule)."""
    raw = override if override is not None else os.environ.get("CODEX_HOME") or "~/.codex"
    return Path(os.path.abspath(Path(raw).expanduser()))


def config_path(home: str | os.PathLike[str] | None = None) -> Path:
    return codex_home(home) / "config.toml"


def render_block(model_provider: ModelProvider, *, line_break: bool = False) -> str:
    """The block's text, markers included (``line_break``: prefix the line break we own)."""
    doc = tomlkit.document()
    # Top-level keys: valid only because the block sits before every table.
    doc.add("model", model_provider.model)
    doc.add("model_provider", model_provider.provider_id)
    provider = tomlkit.table()
    provider.add("name", PROVIDER_NAME)
    provider.add("base_url", model_provider.base_url)
    provider.add("wire_api", "responses")  # the only wire API Codex 0.169 accepts
    providers = tomlkit.table(is_super_table=True)
    providers.add(model_provider.provider_id, provider)
    doc.add("model_providers", providers)
    head = [START, *([LINE_BREAK_NOTE] if line_break else []), *NOTE]
    body = tomlkit.dumps(doc)
    return ("\n" if line_break else "") + "\n".join(head) + "\n" + body + END + "\n"


def install(
    home: str | os.PathLike[str] | None = None,
    *,
    model_provider: ModelProvider | None = None,
    repair: bool = False,
    python: str | None = None,
) -> Change:
    """Make the block what `model_provider` needs; a no-op when it already is.

    With a provider, the block sets it (written, or refreshed in place). Without one there is
    no block: an old one is taken out and nothing else is written, so a file without a block
    (or no file) is left exactly as it was. An old block's stdio ``[mcp_servers.kanban]`` goes
    either way. `python` is ignored: kept so that older callers still work.
    """
    del python  # no interpreter is registered any more
    path = config_path(home)
    original = doc = _load(path)
    if repair and doc.damage:
        doc = _analyse(path, _repaired(doc), exists=doc.exists)
    _refuse_problems(doc, model_provider)
    if model_provider is None:
        return _commit(path, original, doc.outside)
    render = functools.partial(render_block, model_provider)
    expected = _normalized(_merged(doc.outside_data, tomllib.loads(render())))
    # In place when the block exists; elsewhere only if in place would change a meaning.
    positions = [doc.region[0]] if doc.region else []
    positions.append(_insertion_point(doc.outside))
    for position in positions:
        line_break = position > 0 and doc.outside[position - 1] != "\n"
        block = render(line_break=line_break)
        new_text = doc.outside[:position] + block + doc.outside[position:]
        if _parses(new_text) and _meaning(new_text) == expected:
            return _commit(path, original, new_text)
    raise SetupError(
        f"kanban cannot add its block to {path} without changing what your settings mean or "
        "making the file invalid (for example when `model_providers` is an inline table "
        "`= { ... }`: write it as [model_providers.NAME] tables instead); the file is left "
        "untouched"
    )


def remove(home: str | os.PathLike[str] | None = None, *, repair: bool = False) -> Change:
    """Take the managed block out again; nothing is written when there is none."""
    path = config_path(home)
    if not path.exists():
        return Change(path, changed=False)
    doc = _load(path)
    if doc.damage:
        if not repair:
            raise SetupError(_damage_message(path, doc.damage))
        return _commit(path, doc, _repaired(doc))
    if doc.absorbed:
        raise SetupError(doc.absorbed)
    if doc.region is None:
        return Change(path, changed=False)
    return _commit(path, doc, doc.outside)


def conflict(home: str | os.PathLike[str] | None = None) -> str | None:
    """Why Codex would refuse the per-run ``kanban`` MCP server with this config, or None.

    Any ``[mcp_servers.kanban]`` table does (an old block of ours, one whose markers ``codex
    mcp add`` dropped, or the user's own), and so does a file Codex cannot read at all. The
    message names the file and says what to run or change. For the runtimes, before a start.
    """
    path = config_path(home)
    try:
        doc = _load(path)
    except SetupError as exc:
        return str(exc)
    servers = doc.data.get("mcp_servers")
    if servers is not None and not isinstance(servers, dict):
        return f"{path}: `mcp_servers` is not a table, so Codex cannot read the file; fix it"
    if not servers or SERVER not in servers:
        return None
    if doc.legacy:
        return f"{path}: {_LEGACY}; run `kanban setup codex` to migrate"
    if _is_ours(servers[SERVER]):
        return f"{path}: {_LEFTOVER}; run `kanban setup codex --repair`"
    return f"{path} has its own [mcp_servers.{SERVER}] table; {_CONFLICT_HINT}"


def status(home: str | os.PathLike[str] | None = None) -> Status:
    """Can workers use this Codex config (nothing in the way of the per-run server)? For
    `doctor` and the runtimes; no block at all is fine."""
    path = config_path(home)
    try:
        doc = _load(path)
    except SetupError as exc:
        return Status(path, State.BROKEN, str(exc), fix="fix the file by hand (see the detail)")
    if doc.damage:
        return Status(path, State.BROKEN, doc.damage, fix="run `kanban setup codex --repair`")
    if doc.conflict:
        return Status(path, State.BROKEN, doc.conflict, fix=_CONFLICT_HINT)
    if doc.absorbed:
        return Status(path, State.BROKEN, doc.absorbed, fix=_MOVE_HINT)
    provider = _our_provider(doc)
    if doc.legacy:
        keep = (
            f" --model-provider-url {provider.base_url} --model {provider.model}"
            if provider
            else ""
        )
        return Status(path, State.STALE, _LEGACY, fix=f"run `kanban setup codex{keep}`")
    if not doc.exists:
        return Status(path, State.CURRENT, "no config file; kanban needs nothing in it")
    if provider is None:
        return Status(path, State.CURRENT, "nothing of kanban's; none needed")
    detail = f"kanban's block sets the model provider {provider.base_url} ({provider.model})"
    return Status(path, State.CURRENT, detail)


# Codex's built-in providers that are local servers: no login, no URL to configure.
LOCAL_PROVIDERS = ("ollama", "lmstudio")
LOGIN_STATUS_TIMEOUT = 20  # seconds; `codex login status` takes about 0.1 s


def model_access(
    home: str | os.PathLike[str] | None = None,
    *,
    codex_bin: str | None = None,
    environ: collections.abc.Mapping[str, str] | None = None,
) -> Status:
    """Can a worker's Codex reach a model: a login, or a model provider with a URL of its own?

    With neither, Codex 0.169 never fails: `codex exec` retries OpenAI's API until the
    worker's timeout, and Hermes on Codex's app-server prints nothing for 600 s (see
    `worker.startup`). A home that does not exist stops Codex at once. Codex takes its login
    from ``$CODEX_API_KEY`` (read by ``codex exec``), else from what ``codex login`` stored
    (``auth.json``, or the system keyring with ``cli_auth_credentials_store``): with
    `codex_bin`, ``codex login status`` answers, so the keyring counts too; without it,
    ``auth.json`` is looked for. The model provider is ``model_provider`` (or that of the
    selected ``profile``), the built-in ``openai`` unless set; ``openai_base_url`` points that
    one elsewhere. For `doctor`; `environ` is the workers' environment (default: ours).
    """
    environ = os.environ if environ is None else environ
    home_path = codex_home(home)
    login_fix = (
        f"log in (`CODEX_HOME={shlex.quote(str(home_path))} codex login`, or `codex login "
        "--with-api-key`), or point Codex at a model server of your own (`kanban setup codex "
        "--model-provider-url URL --model NAME`)"
    )
    if not home_path.is_dir():
        return Status(
            home_path,
            State.MISSING,
            f"{home_path} does not exist: Codex stops at once (CODEX_HOME points to it), and "
            "there is no login in it",
            fix=f"`mkdir -p {shlex.quote(str(home_path))}`, then {login_fix}",
        )
    path = home_path / "config.toml"
    try:
        data = _load(path).data
    except SetupError as exc:
        return Status(path, State.BROKEN, f"cannot tell: {exc}", fix="fix the file first")
    provider = _provider(data)
    if provider.id in LOCAL_PROVIDERS:
        return Status(path, State.CURRENT, f"no login needed: Codex's local {provider.id}")
    if provider.id != "openai":
        table = f"[model_providers.{provider.id}]"
        if not provider.declared:
            problem = (
                f"model_provider is {provider.id!r}, and {path} has no {table} table: Codex "
                f'stops at once ("Model provider `{provider.id}` not found")'
            )
            return Status(path, State.BROKEN, problem, fix=f"add {table} with a base_url")
        if provider.base_url is None:
            problem = f"{table} in {path} has no base_url, so Codex sends its requests to OpenAI"
            return Status(
                path, State.BROKEN, problem, fix=f"give {table} a base_url, or {login_fix}"
            )
        if provider.env_key and not environ.get(provider.env_key):
            return Status(
                path,
                State.BROKEN,
                f"{table} takes its key from ${provider.env_key}, which is not set: Codex stops "
                f'at once ("Missing environment variable: `{provider.env_key}`.")',
                fix=f"set {provider.env_key} where the dispatcher runs",
            )
        key = f", its key from ${provider.env_key}" if provider.env_key else ""
        detail = f"no login needed: model provider {provider.id} at {provider.base_url}{key}"
        return Status(path, State.CURRENT, detail)
    if provider.base_url is not None:
        detail = f"no login needed: openai_base_url is {provider.base_url}"
        return Status(path, State.CURRENT, detail)
    if environ.get("CODEX_API_KEY"):
        return Status(path, State.CURRENT, "CODEX_API_KEY is set (`codex exec` logs in with it)")
    login = _login_status(home_path, codex_bin, environ)
    if login is None:  # no program to ask: the file `codex login` writes by default
        auth = home_path / "auth.json"
        login = (True, f"{auth} found") if auth.is_file() else (False, "Not logged in")
    logged_in, said = login
    if logged_in:
        return Status(path, State.CURRENT, f"{said} ({home_path})")
    return Status(
        path,
        State.BROKEN,
        f"Codex is not logged in ({said!r} for {home_path}) and no model provider is "
        "configured: a worker's Codex would retry OpenAI's API until its timeout",
        fix=login_fix,
    )


@dataclasses.dataclass(frozen=True)
class _Provider:
    id: str
    declared: bool  # built in, or a [model_providers.ID] table
    base_url: str | None = None
    env_key: str | None = None


def _provider(data: dict[str, Any]) -> _Provider:
    """The model provider Codex would use with this config.

    ``model_provider`` (that of the selected ``profile`` first), else ``openai``. For the
    built-in ``openai`` (Codex ignores a table of that name) the URL is ``openai_base_url``.
    """
    provider_id = data.get("model_provider")
    profiles = data.get("profiles")
    if isinstance(profiles, dict) and isinstance(data.get("profile"), str):
        selected = profiles.get(data["profile"])
        if isinstance(selected, dict) and isinstance(selected.get("model_provider"), str):
            provider_id = selected["model_provider"]
    if not isinstance(provider_id, str) or provider_id == "openai":
        return _Provider("openai", True, _text(data.get("openai_base_url")))
    providers = data.get("model_providers")
    table = providers.get(provider_id) if isinstance(providers, dict) else None
    if not isinstance(table, dict):
        return _Provider(provider_id, provider_id in LOCAL_PROVIDERS)
    return _Provider(provider_id, True, _text(table.get("base_url")), _text(table.get("env_key")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _login_status(
    home: Path, codex_bin: str | None, environ: collections.abc.Mapping[str, str]
) -> tuple[bool, str] | None:
    """What ``codex login status`` says for `home`: (logged in, its line); None: not asked."""
    if codex_bin is None:
        return None
    try:
        done = subprocess.run(
            [codex_bin, "login", "status"],
            env={**environ, "CODEX_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LOGIN_STATUS_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    said = [
        line.strip()
        for line in (done.stderr + "\n" + done.stdout).splitlines()
        if line.strip() and not line.startswith("WARNING:")
    ]
    # Its first line says it ("Not logged in", "API key configured - sk-...***abcd").
    return done.returncode == 0, said[0] if said else f"exit {done.returncode}"


_UNCHECKED = object()


def write_atomically(
    path: Path, data: bytes, *, mode: int, previous: bytes | object | None = _UNCHECKED
) -> None:
    """Replace `path` atomically (temp file in its directory, fsync, rename, fsync the dir).

    With `previous` given (``None`` meaning "no file"), refuse if the file no longer holds
    it: another program wrote it since we read it, and its change must not be lost.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SetupError(f"cannot write in {path.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if previous is not _UNCHECKED and _read_bytes(path) != previous:
            raise SetupError(
                f"{path} changed while kanban was editing it (another program wrote it); "
                "nothing was written, run the command again"
            )
        os.replace(tmp, path)
    except OSError as exc:
        raise SetupError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # not every file system can fsync a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- reading and analysing the file -------------------------------------------------------

_MOVE_HINT = (
    "in TOML, keys written below a table header belong to that table, so settings placed "
    "right after kanban's end marker belong to kanban's table; move them above the "
    f"`{START}` line (or under a table header of your own) and run the command again"
)
_CONFLICT_HINT = (
    f"rename your own [mcp_servers.{SERVER}] table (or delete it): the name `{SERVER}` is "
    "kanban's, whose workers get its MCP server under that name on Codex's command line, and "
    "Codex refuses that while config.toml has a table of the name"
)
_LEGACY = (
    f"kanban's block still registers the stdio MCP server of an older kanban ([mcp_servers."
    f"{SERVER}] running {LEGACY_MODULE}): Codex refuses the workers' per-run kanban server "
    "while it is there, and every plain `codex` fails once that interpreter is gone"
)
_LEFTOVER = (
    f"an [mcp_servers.{SERVER}] table of an older kanban (running {LEGACY_MODULE}) is there "
    "without its marker lines (`codex mcp add` and `codex mcp remove` rewrite [mcp_servers] "
    "without comments)"
)


@dataclasses.dataclass(frozen=True)
class _Doc:
    path: Path
    exists: bool
    text: str
    data: dict[str, Any]
    region: tuple[int, int] | None = None  # the block's span, markers and our line break
    outside: str = ""  # the text without the block
    outside_data: dict[str, Any] = dataclasses.field(default_factory=dict)
    legacy: bool = False  # the block is an old one, registering the stdio server
    damage: str | None = None  # markers lost or mixed up: `repair=True` can fix it
    absorbed: str | None = None  # user keys that TOML assigns to our table: fixed by hand
    conflict: str | None = None  # the user's own [mcp_servers.kanban]: fixed by hand


class _Damage(Exception):
    pass


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise SetupError(f"{path} is a directory; Codex expects its config file there") from exc
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror}") from exc


def _load(path: Path) -> _Doc:
    raw = _read_bytes(Path(os.path.realpath(path)))
    if raw is None:
        return _analyse(path, "", exists=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SetupError(
            f"{path} is not UTF-8 text ({exc}), so it is not valid TOML; kanban left it "
            "untouched: fix or move the file, then run the command again"
        ) from exc
    return _analyse(path, text, exists=True)


def _analyse(path: Path, text: str, *, exists: bool) -> _Doc:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(
            f"{path} is not valid TOML ({exc}); kanban left it untouched. Fix the file (Codex "
            "cannot read it either) or move it aside, then run the command again"
        ) from exc
    try:
        region = _find_block(text)
    except _Damage as exc:
        return _Doc(path, exists, text, data, damage=str(exc))
    block_data: dict[str, Any] = {}
    outside, outside_data = text, data
    if region is not None:
        begin, end = region
        outside = text[:begin] + text[end:]
        try:
            block_data = tomllib.loads(text[begin:end])
            outside_data = tomllib.loads(outside)
        except tomllib.TOMLDecodeError:
            return _Doc(path, exists, text, data, damage="the text between the markers was edited")
        foreign = _foreign_keys(block_data)
        if foreign:
            return _Doc(
                path,
                exists,
                text,
                data,
                damage=f"the block holds settings kanban did not write ({', '.join(foreign)}); "
                "`codex mcp add`/`remove` regroup [mcp_servers] tables and can move yours "
                "inside",
            )
    legacy = SERVER in block_data.get("mcp_servers", {})
    doc = _Doc(path, exists, text, data, region, outside, outside_data, legacy)
    servers = outside_data.get("mcp_servers")
    server = servers.get(SERVER) if isinstance(servers, dict) else None
    if server is not None:
        if _is_ours(server):
            return dataclasses.replace(doc, damage=_LEFTOVER)
        return dataclasses.replace(
            doc,
            conflict=f"{path} has its own [mcp_servers.{SERVER}] table, outside kanban's "
            "managed block",
        )
    if _normalized(_without(data, block_data)) != _normalized(outside_data):
        return dataclasses.replace(doc, absorbed=f"{path}: {_MOVE_HINT}")
    return doc


def _find_block(text: str) -> tuple[int, int] | None:
    starts = list(re.finditer(rf"^{re.escape(START)}\r?$", text, re.M))
    ends = list(re.finditer(rf"^{re.escape(END)}\r?$", text, re.M))
    if not starts and not ends:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0].start() < starts[0].end():
        raise _Damage(
            f"found {len(starts)} start and {len(ends)} end marker lines of kanban's block "
            "where there should be one of each, in that order (`codex mcp add` and `codex mcp "
            "remove` rewrite [mcp_servers] and drop comments)"
        )
    begin = starts[0].start()
    end = ends[0].end()
    end += 2 if text.startswith("\r\n", end) else 1 if text.startswith("\n", end) else 0
    noted = re.match(rf"\r?\n{re.escape(LINE_BREAK_NOTE)}\r?$", text[starts[0].end() :], re.M)
    # Our line break goes with the block unless a user has since written right after the
    # block without a line break of their own: then it separates their lines and stays.
    owned = text.startswith(("\n", "\r\n"), end) or end == len(text)
    if noted and owned and begin > 0 and text[begin - 1] == "\n":
        begin -= 1
    return begin, end


def _foreign_keys(block: dict[str, Any]) -> list[str]:
    foreign = [key for key in block if key not in _OWNED]
    servers = block.get("mcp_servers", {})
    if isinstance(servers, dict):
        # An old block registered [mcp_servers.kanban]; a new one registers no server.
        foreign += [f"mcp_servers.{key}" for key in servers if key != SERVER]
    else:
        foreign.append("mcp_servers")
    return foreign


_OWNED = ("model", "model_provider", "model_providers", "mcp_servers")


def _is_ours(server: Any) -> bool:
    args = server.get("args") if isinstance(server, dict) else None
    return isinstance(args, list) and args[-2:] == ["-m", LEGACY_MODULE]


def _our_provider(doc: _Doc) -> ModelProvider | None:
    """The provider the block selects, if it sets one."""
    pid = doc.data.get("model_provider")
    providers = doc.data.get("model_providers")
    if doc.region is None or not isinstance(pid, str) or not isinstance(providers, dict):
        return None
    table = providers.get(pid)
    if not isinstance(table, dict) or table.get("name") != PROVIDER_NAME:
        return None
    return ModelProvider(str(table.get("base_url")), str(doc.data.get("model")), pid)


def _refuse_problems(doc: _Doc, model_provider: ModelProvider | None) -> None:
    if doc.damage:
        raise SetupError(_damage_message(doc.path, doc.damage))
    if doc.absorbed:
        raise SetupError(doc.absorbed)
    if doc.conflict:
        raise SetupError(f"{doc.conflict}; {_CONFLICT_HINT}, then run the command again")
    if model_provider is None:
        return
    taken: list[str] = [key for key in ("model", "model_provider") if key in doc.outside_data]
    providers = doc.outside_data.get("model_providers")
    if isinstance(providers, dict) and model_provider.provider_id in providers:
        taken.append(f"[model_providers.{model_provider.provider_id}]")
    if taken:
        raise SetupError(
            f"{doc.path} already sets {', '.join(taken)} outside kanban's block; kanban will "
            "not override your model silently: remove those settings (or run without "
            "--model-provider-url and --model) and run the command again"
        )


def _damage_message(path: Path, damage: str) -> str:
    return (
        f"kanban's block in {path} is damaged: {damage}. Nothing was written. Run `kanban "
        "setup codex --repair` to remove kanban's own leftovers (its marker lines, the "
        f"[mcp_servers.{SERVER}] table running {LEGACY_MODULE}, a provider named "
        f"{PROVIDER_NAME!r}), keeping everything else"
    )


def _repaired(doc: _Doc) -> str:
    """`doc` without anything provably ours, kept as it was otherwise (tomlkit edit)."""
    owned_lines = {START, END, LINE_BREAK_NOTE, *NOTE}
    lines = doc.text.splitlines(keepends=True)
    kept = "".join(line for line in lines if line.rstrip("\r\n") not in owned_lines)
    document = tomlkit.parse(kept)
    expected = copy.deepcopy(doc.data)
    servers = document.get("mcp_servers")
    if servers is not None and SERVER in servers:
        if not _is_ours(servers[SERVER].unwrap()):
            raise SetupError(f"{doc.path} has its own [mcp_servers.{SERVER}]; {_CONFLICT_HINT}")
        del servers[SERVER]
        del expected["mcp_servers"][SERVER]
    providers = document.get("model_providers") or {}
    for pid in [p for p in providers if providers[p].get("name") == PROVIDER_NAME]:
        del providers[pid]
        del expected["model_providers"][pid]
        if document.get("model_provider") == pid:
            for key in ("model_provider", "model"):
                if key in document:
                    del document[key]
                    del expected[key]
    for key in ("mcp_servers", "model_providers"):
        table = document.get(key)
        if isinstance(table, collections.abc.Mapping) and len(table) == 0:
            del document[key]
    repaired = tomlkit.dumps(document)
    if _meaning(repaired) != _normalized(expected):
        raise SetupError(
            f"kanban could not repair its block in {doc.path} automatically; delete the lines "
            f"`{START}` and `{END}` and the [mcp_servers.{SERVER}] table by hand, then run "
            "`kanban setup codex` again"
        )
    return repaired


def _insertion_point(text: str) -> int:
    """Before the first table header and the comment lines glued to it; else the end."""
    for match in re.finditer(r"^[ \t]*\[", text, re.M):
        # A line starting with "[" inside a multi-line string or array is no header: the text
        # before such a line does not parse, the text before the first real header does.
        if _parses(text[: match.start()]):
            position = match.start()
            while position > 0:
                line_start = text.rfind("\n", 0, position - 1) + 1
                line = text[line_start:position]
                if not re.fullmatch(r"[ \t]*#[^\n]*\n", line) or not _parses(text[:line_start]):
                    break
                position = line_start
            return position
    return len(text)


def _commit(path: Path, doc: _Doc, new_text: str) -> Change:
    if new_text == doc.text:
        return Change(path, changed=False)
    _meaning(new_text)  # never write a file Codex could not read
    real = Path(os.path.realpath(path))  # keep a symlinked config (dotfiles) a symlink
    backup = None
    if doc.exists:
        mode = stat.S_IMODE(real.stat().st_mode)
        backup = real.with_name(real.name + BACKUP_SUFFIX)
        write_atomically(backup, doc.text.encode("utf-8"), mode=mode)
    else:
        mode = NEW_FILE_MODE
        try:
            real.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SetupError(f"cannot create {real.parent}: {exc.strerror}") from exc
    previous = doc.text.encode("utf-8") if doc.exists else None
    write_atomically(real, new_text.encode("utf-8"), mode=mode, previous=previous)
    return Change(path, changed=True, backup=backup)


# --- comparing meanings -------------------------------------------------------------------


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


def _meaning(text: str) -> Any:
    try:
        return _normalized(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - guarded by the checks above
        raise SetupError(f"kanban produced invalid TOML ({exc}); nothing was written") from exc


_NAN = object()  # NaN != NaN, yet a user's `x = nan` means the same before and after


def _normalized(value: Any) -> Any:
    """Comparable form: NaN made equal to itself, empty tables dropped (they mean nothing)."""
    if isinstance(value, dict):
        pairs = ((key, _normalized(item)) for key, item in value.items())
        return {key: item for key, item in pairs if item != {}}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return _NAN
    return value


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _without(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if key not in result:
            continue
        if isinstance(value, dict) and isinstance(result[key], dict):
            inner = _without(result[key], value)
            # What is left of a table of ours (keys a user wrote after the block, which TOML
            # put in it) stays, so the comparison with the text outside the block shows them.
            if inner:
                result[key] = inner
            else:
                del result[key]
        else:
            del result[key]
    return result
