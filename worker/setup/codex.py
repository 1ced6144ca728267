"""kanban's managed block in Codex's ``$CODEX_HOME/config.toml``: install, remove, check.

Codex reaches our MCP server only if its config registers it, and it starts MCP servers with a
scrubbed environment, so the block registers the server with every worker variable whitelisted
(``env_vars``) and with its tools pre-approved (``codex exec`` refuses unapproved MCP calls, and
Hermes rejects Codex's approval requests for servers that are not its own). Example::

    from worker.setup import codex
    codex.install()                      # ~/.codex/config.toml, or $CODEX_HOME's
    codex.status().state                 # State.CURRENT
    codex.remove()

Everything outside the two marker lines is kept byte for byte. The block goes just before the
user's first table (at the end of a file without tables) rather than at the very end: keys a
user later appends at the end of the file then still land in their own last table, as they
did before, and never inside ours. Our optional top-level keys (``model``, ``model_provider``)
are only valid there, before any table. Every write is checked: the result must parse, our
tables must hold exactly what we wrote, and everything else must mean what it meant before.

``codex mcp add`` / ``codex mcp remove`` re-serialize the whole ``[mcp_servers]`` section and
drop the comments in it, our marker lines included. Such a damaged block is refused (never
guessed at) until ``install(repair=True)`` removes what is provably ours: the marker lines, the
``[mcp_servers.kanban]`` table that runs ``worker.mcp_server``, and a provider we named.
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
import stat
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from board import errors
from worker import env

SERVER = "kanban"
MODULE = "worker.mcp_server"
# -P: never put the working directory on sys.path. Codex starts the server in the worker's
# worktree; when that worktree is a checkout of kanban itself, `-m` would otherwise import
# the worktree's (agent-edited) `worker` package instead of the installed one.
ARGS = ("-P", "-m", MODULE)
APPROVAL = "approve"
DEFAULT_STARTUP_TIMEOUT_SEC = 30  # importing the MCP SDK alone takes ~0.5 s; leave headroom
DEFAULT_TOOL_TIMEOUT_SEC = 120
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
    MISSING = "missing"  # no block (or no file): run setup
    CURRENT = "current"
    STALE = "stale"  # a block written for another interpreter or another kanban
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
    command: str | None = None  # the interpreter the block registers

    @property
    def ok(self) -> bool:
        return self.state is State.CURRENT


def codex_home(override: str | os.PathLike[str] | None = None) -> Path:
    """`override`, else ``$CODEX_HOME``, else ``~/.codex`` (Codex's own rule)."""
    raw = override if override is not None else os.environ.get("CODEX_HOME") or "~/.codex"
    return Path(os.path.abspath(Path(raw).expanduser()))


def config_path(home: str | os.PathLike[str] | None = None) -> Path:
    return codex_home(home) / "config.toml"


def default_python() -> str:
    # abspath, never resolve(): a venv's python is a symlink to the base interpreter, and
    # following it would lose the venv's site-packages (and with them `worker`).
    return os.path.abspath(sys.executable)


def render_block(
    *,
    python: str,
    startup_timeout_sec: float = DEFAULT_STARTUP_TIMEOUT_SEC,
    tool_timeout_sec: float = DEFAULT_TOOL_TIMEOUT_SEC,
    model_provider: ModelProvider | None = None,
    line_break: bool = False,
) -> str:
    """The block's text, markers included (``line_break``: prefix the line break we own)."""
    doc = tomlkit.document()
    if model_provider is not None:
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
    server = tomlkit.table()
    server.add("command", python)
    server.add("args", list(ARGS))
    env_vars = tomlkit.array()
    env_vars.extend(env.ALL)
    server.add("env_vars", env_vars.multiline(True))
    server.add("default_tools_approval_mode", APPROVAL)
    # Without it Codex does not wait for the server: under load a worker's first model turns
    # went out without the kanban tools, and its reports failed as "unsupported call".
    server.add("required", True)
    server.add("startup_timeout_sec", startup_timeout_sec)
    server.add("tool_timeout_sec", tool_timeout_sec)
    servers = tomlkit.table(is_super_table=True)
    servers.add(SERVER, server)
    doc.add("mcp_servers", servers)
    head = [START, *([LINE_BREAK_NOTE] if line_break else []), *NOTE]
    body = tomlkit.dumps(doc)
    return ("\n" if line_break else "") + "\n".join(head) + "\n" + body + END + "\n"


def install(
    home: str | os.PathLike[str] | None = None,
    *,
    python: str | None = None,
    startup_timeout_sec: float = DEFAULT_STARTUP_TIMEOUT_SEC,
    tool_timeout_sec: float = DEFAULT_TOOL_TIMEOUT_SEC,
    model_provider: ModelProvider | None = None,
    repair: bool = False,
) -> Change:
    """Write (or refresh in place) the managed block; a no-op when it is already current."""
    python = os.path.abspath(python) if python else default_python()
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise SetupError(f"{python} is not an executable file; pass --python an interpreter")
    render = functools.partial(
        render_block,
        python=python,
        startup_timeout_sec=_seconds(startup_timeout_sec),
        tool_timeout_sec=_seconds(tool_timeout_sec),
        model_provider=model_provider,
    )
    path = config_path(home)
    original = doc = _load(path)
    if repair and doc.damage:
        doc = _analyse(path, _repaired(doc), exists=doc.exists)
    _refuse_problems(doc, model_provider)
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
        "making the file invalid (for example when `mcp_servers` or `model_providers` is an "
        "inline table `= { ... }`: write it as [mcp_servers.NAME] tables instead); the file "
        "is left untouched"
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


def status(home: str | os.PathLike[str] | None = None, *, python: str | None = None) -> Status:
    """Is the block present and current (this interpreter, these env_vars)? For `doctor`."""
    python = os.path.abspath(python) if python else default_python()
    path = config_path(home)
    if not path.exists():
        return Status(path, State.MISSING, "no config file", fix="run `kanban setup codex`")
    try:
        doc = _load(path)
    except SetupError as exc:
        return Status(path, State.BROKEN, str(exc), fix="fix the file by hand (see the detail)")
    if doc.damage:
        return Status(path, State.BROKEN, doc.damage, fix="run `kanban setup codex --repair`")
    if doc.absorbed:
        return Status(path, State.BROKEN, doc.absorbed, fix=_MOVE_HINT)
    if doc.conflict:
        return Status(path, State.BROKEN, doc.conflict, fix=_CONFLICT_HINT)
    if doc.region is None:
        return Status(path, State.MISSING, "no kanban block", fix="run `kanban setup codex`")
    table = doc.data.get("mcp_servers", {}).get(SERVER, {})
    command = table.get("command")
    wrong = [] if table else [f"the block has no [mcp_servers.{SERVER}] table"]
    if not _same_interpreter(command, python):
        wrong.append(f"it runs {command}, this kanban runs {python}")
    if list(table.get("args", [])) != list(ARGS):
        wrong.append(f"args are {table.get('args')}, expected {list(ARGS)}")
    if list(table.get("env_vars", [])) != list(env.ALL):
        wrong.append(f"env_vars are {table.get('env_vars')}, expected {list(env.ALL)}")
    if table.get("default_tools_approval_mode") != APPROVAL:
        wrong.append(f"default_tools_approval_mode is not {APPROVAL!r}")
    if table.get("required") is not True:
        wrong.append("required is not true (Codex would not wait for the server to start)")
    if isinstance(command, str) and not os.access(command, os.X_OK):
        wrong.append(f"{command} does not exist or is not executable")
    if wrong:
        return Status(
            path,
            State.STALE,
            "; ".join(wrong),
            fix="run `kanban setup codex` (with --python to pick the interpreter)",
            command=command,
        )
    provider = doc.data.get("model_provider")
    detail = f"{command} {' '.join(ARGS)}" + (f"; model provider {provider}" if provider else "")
    return Status(path, State.CURRENT, detail, command=command)


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
    f"rename or delete your own [mcp_servers.{SERVER}] table (kanban needs that name for its "
    "server), then run `kanban setup codex` again"
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
    if region is None:
        servers = data.get("mcp_servers")
        server = servers.get(SERVER) if isinstance(servers, dict) else None
        if server is None:
            return _Doc(path, exists, text, data, outside=text, outside_data=data)
        if _is_ours(server):
            return _Doc(
                path,
                exists,
                text,
                data,
                damage=f"[mcp_servers.{SERVER}] is there but its marker lines are gone (`codex "
                "mcp add` and `codex mcp remove` rewrite [mcp_servers] without comments)",
            )
        return _Doc(
            path,
            exists,
            text,
            data,
            outside=text,
            outside_data=data,
            conflict=f"{path} already has its own [mcp_servers.{SERVER}] table, outside "
            "kanban's managed block",
        )
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
            "`codex mcp add`/`remove` regroup [mcp_servers] tables and can move yours inside",
        )
    doc = _Doc(path, exists, text, data, region, outside, outside_data)
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
    foreign += [f"mcp_servers.{key}" for key in block.get("mcp_servers", {}) if key != SERVER]
    return foreign


_OWNED = ("model", "model_provider", "model_providers", "mcp_servers")


def _is_ours(server: Any) -> bool:
    args = server.get("args") if isinstance(server, dict) else None
    return isinstance(args, list) and args[-2:] == ["-m", MODULE]


def _same_interpreter(registered: Any, python: str) -> bool:
    # python, python3 and python3.11 of one venv are one interpreter; another venv's python
    # is the same file too once symlinks are followed, hence the same-directory condition.
    if not isinstance(registered, str):
        return False
    if registered == python:
        return True
    try:
        return os.path.dirname(registered) == os.path.dirname(python) and os.path.samefile(
            registered, python
        )
    except OSError:
        return False


def _refuse_problems(doc: _Doc, model_provider: ModelProvider | None) -> None:
    if doc.damage:
        raise SetupError(_damage_message(doc.path, doc.damage))
    if doc.absorbed:
        raise SetupError(doc.absorbed)
    if doc.conflict:
        raise SetupError(
            f"{doc.conflict}: two tables with one name are invalid TOML; {_CONFLICT_HINT}"
        )
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
        f"[mcp_servers.{SERVER}] table running {MODULE}, a provider named {PROVIDER_NAME!r}) "
        "and write a fresh block; everything else is kept"
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


def _seconds(value: float) -> float:
    return int(value) if float(value).is_integer() else float(value)


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
