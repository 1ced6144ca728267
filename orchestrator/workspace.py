"""A repository's workspace declaration: its ``.kanban.toml``, parsed and checked.

A repository says what a task's worktree needs beyond a bare checkout, in a file at its root
that the whole team shares (docs/workspace.md)::

    [workspace]
    copy = [".env", "config/*.local.toml"]   # ignored files copied from the main checkout
    link = ["node_modules/.cache"]           # ... or symlinked to it
    setup = ["npm ci"]                       # once per new worktree, before the agent starts
    setup_timeout = 600                      # seconds each setup command may take
    teardown = ["docker compose down"]       # before `kanban gc` removes the worktree
    ports = 3                                # free ports per running task
    env = { NODE_ENV = "development" }

    [check]
    command = "npm test"                     # what "the work is right" means here
    timeout = 600
    gate = true                              # done only when the check passes

A command is a string, run as ``/bin/sh -c STRING`` in the worktree, or a list of strings, run
as that argv without a shell. Commands come only from this file, which is as trusted as the
repository's own Makefile; nothing of a task's text is ever put into one.

The file is read from a commit (`from_ref`: the task's base, so a branch cannot change what
its own setup runs until it is merged) or from a checkout (`from_checkout`: for `kanban
init` and `kanban doctor`). No file means the defaults; a malformed one is refused whole, with
the file, the line and the reason, as batch files are. `select` answers which ignored files
a `copy` or `link` glob selects.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import math
import os
import re
import shlex
import stat
import tomllib
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from board import errors
from orchestrator import git

FILE_NAME = ".kanban.toml"
SHELL = "/bin/sh"
MAX_PORTS = 16
DEFAULT_CHECK_TIMEOUT = 600.0
DEFAULT_SETUP_TIMEOUT = 600.0

WORKSPACE_KEYS = ("copy", "link", "setup", "setup_timeout", "teardown", "ports", "env")
CHECK_KEYS = ("command", "timeout", "gate")
TABLES = {"workspace": WORKSPACE_KEYS, "check": CHECK_KEYS}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# kanban's own variables (a run's identity, its board, its ports) and git's (which would point
# the worktree's git at another repository) are not the repository's to set.
_RESERVED_ENV = ("KANBAN_", "HERMES_KANBAN_", "GIT_")
_GLOB_MAGIC = re.compile(r"[*?\[]")


class WorkspaceError(errors.InvalidInput):
    """A ``.kanban.toml`` that kanban refuses: where it is, the line (when known), and why."""

    def __init__(self, source: str, line: int | None, reason: str, *, ref: str | None = None):
        self.source = source
        self.line = line
        self.reason = reason
        self.ref = ref
        where = f"{source}:{line}" if line else source
        at = f" (as committed at {ref})" if ref else ""
        super().__init__(f"{where}: {reason}{at}")


# --- the model ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
    """One command: a shell line (`line`) or an argv (`args`), run in the worktree."""

    line: str | None = None
    args: tuple[str, ...] = ()

    @property
    def argv(self) -> tuple[str, ...]:
        """What to execute: ``/bin/sh -c LINE`` for a line, the argv itself otherwise."""
        return (SHELL, "-c", self.line) if self.line is not None else self.args

    def __str__(self) -> str:
        return self.line if self.line is not None else shlex.join(self.args)

    def to_json(self) -> str | list[str]:
        return self.line if self.line is not None else list(self.args)


@dataclasses.dataclass(frozen=True)
class Workspace:
    """What a task's worktree gets before its agent starts, and what runs when it goes."""

    copy: tuple[str, ...] = ()  # globs, relative to the repository
    link: tuple[str, ...] = ()
    setup: tuple[Command, ...] = ()
    teardown: tuple[Command, ...] = ()
    ports: int = 0
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    setup_timeout: float = DEFAULT_SETUP_TIMEOUT  # seconds, for each setup command


@dataclasses.dataclass(frozen=True)
class Check:
    """What "the work is right" means in this repository."""

    command: Command
    timeout: float = DEFAULT_CHECK_TIMEOUT
    gate: bool = False  # a task is done only when the check passes


@dataclasses.dataclass(frozen=True)
class RepoConfig:
    """A repository's ``.kanban.toml``; `found` is False when it has none (the defaults)."""

    workspace: Workspace = dataclasses.field(default_factory=Workspace)
    check: Check | None = None
    found: bool = False

    def to_json(self) -> dict[str, Any]:
        space = self.workspace
        return {
            "found": self.found,
            "workspace": {
                "copy": list(space.copy),
                "link": list(space.link),
                "setup": [command.to_json() for command in space.setup],
                "setup_timeout": space.setup_timeout,
                "teardown": [command.to_json() for command in space.teardown],
                "ports": space.ports,
                "env": dict(space.env),
            },
            "check": None
            if self.check is None
            else {
                "command": self.check.command.to_json(),
                "timeout": self.check.timeout,
                "gate": self.check.gate,
            },
        }


# --- reading -----------------------------------------------------------------------------


def from_checkout(top: Path | str) -> RepoConfig:
    """The ``.kanban.toml`` in the working tree at `top` (the defaults when there is none)."""
    path = Path(top) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RepoConfig()
    except IsADirectoryError as exc:
        raise WorkspaceError(str(path), None, "is a directory, not a file") from exc
    except OSError as exc:
        raise WorkspaceError(str(path), None, f"cannot read it ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise WorkspaceError(str(path), None, "is not UTF-8 text") from exc
    return parse(text, str(path))


def from_ref(top: Path | str, ref: str) -> RepoConfig:
    """The ``.kanban.toml`` committed at `ref` in the repository at `top` (defaults if none).

    The working tree is never read: a task's workspace is what its base commit declares.
    """
    top = Path(top)
    ref = git.check_rev(ref)
    source = str(top / FILE_NAME)
    listed = git.run(top, "ls-tree", "-z", "--full-tree", ref, "--", FILE_NAME).out
    if not listed:
        return RepoConfig()
    meta, _, _ = listed.partition("\t")
    mode, kind, oid = meta.split(" ")
    if kind != "blob" or mode == "120000":
        what = {"tree": "a directory", "commit": "a submodule"}.get(kind, "a symbolic link")
        raise WorkspaceError(source, None, f"is {what}, not a file", ref=ref)
    try:
        return _parsed_blob(str(top), oid)
    except WorkspaceError as exc:
        raise WorkspaceError(exc.source, exc.line, exc.reason, ref=ref) from None


@functools.lru_cache(maxsize=64)
def _parsed_blob(top: str, oid: str) -> RepoConfig:
    """A committed file's model, by its blob id: read and parsed once per content (a merge
    queue reads it at every step of a moving base; it rarely changes)."""
    source = str(Path(top) / FILE_NAME)
    text = git.run(Path(top), "cat-file", "blob", oid).out
    if re.search(r"[\udc80-\udcff]", text):  # how the runner decodes bytes that are not UTF-8
        raise WorkspaceError(source, None, "is not UTF-8 text")
    return parse(text, source)


def parse(text: str, source: str, *, ref: str | None = None) -> RepoConfig:
    """Check the text of a ``.kanban.toml`` (named `source` in errors) and build its model."""

    def fail(table: str | None, key: str | None, reason: str) -> WorkspaceError:
        return WorkspaceError(source, _line_of(text, table, key), reason, ref=ref)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise WorkspaceError(source, line, f"not valid TOML: {exc}", ref=ref) from exc
    for name in data:
        if name not in TABLES:
            raise fail(None, name, f"unknown table {name!r}; use [workspace] and [check]")
    tables = {}
    for name, known in TABLES.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise fail(None, name, f"{name} must be a table: [{name}]")
        for key in table:
            if key not in known:
                raise fail(name, key, f"unknown key {key!r} in [{name}]; known: {', '.join(known)}")
        tables[name] = table
    try:
        workspace = _workspace(tables["workspace"])
        check = _check(tables["check"]) if "check" in data else None
    except _Problem as exc:
        raise fail(exc.table, exc.key, exc.reason) from exc
    return RepoConfig(workspace, check, found=True)


# --- a task's own overrides (a batch file's `setup` and `check`) ---------------------------

OVERRIDE_KEYS = ("setup", "check")


class OverrideError(errors.InvalidInput):
    """A bad `setup` or `check` of a task's own; `key` says which."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(f"{key}: {reason}")


def overrides(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A batch task's `setup` and `check`, checked and stored as JSON for the board.

    ``setup`` takes what ``[workspace] setup`` takes. ``check`` is a command (a string or an
    argv: a gated check, ``gate = true``), a table like ``[check]`` (``command``, ``timeout``,
    ``gate``), or ``false`` for no check at all. Raises `OverrideError`.
    """
    found: dict[str, Any] = {}
    try:
        if "setup" in spec:
            found["setup"] = [c.to_json() for c in _commands({"setup": spec["setup"]}, "setup")]
        if "check" in spec:
            value = spec["check"]
            if value is False:
                found["check"] = False
            else:
                table = value if isinstance(value, dict) else {"command": value, "gate": True}
                unknown = set(table) - set(CHECK_KEYS)
                if unknown:
                    raise _Problem("check", None, f"unknown key(s) {', '.join(sorted(unknown))}")
                check = _check(table)
                found["check"] = {
                    "command": check.command.to_json(),
                    "timeout": check.timeout,
                    "gate": check.gate,
                }
    except _Problem as exc:
        raise OverrideError("setup" if exc.key == "setup" else "check", exc.reason) from exc
    return found


def with_overrides(config: RepoConfig, stored: Mapping[str, Any]) -> RepoConfig:
    """`config` with a task's stored `overrides` applied (they replace, never merge)."""
    if not stored:
        return config
    space, check = config.workspace, config.check
    if "setup" in stored:
        space = dataclasses.replace(
            space, setup=tuple(_command(c, "workspace", "setup", "setup") for c in stored["setup"])
        )
    if "check" in stored:
        value = stored["check"]
        check = None if value is False else _check(dict(value))
    return dataclasses.replace(config, workspace=space, check=check)


class _Problem(Exception):
    """A bad value, with the table and key it is under (to point at its line)."""

    def __init__(self, table: str, key: str | None, reason: str) -> None:
        self.table, self.key, self.reason = table, key, reason
        super().__init__(reason)


def _workspace(table: dict[str, Any]) -> Workspace:
    copy, link = (_globs(table, key) for key in ("copy", "link"))
    setup, teardown = (_commands(table, key) for key in ("setup", "teardown"))
    ports = table.get("ports", 0)
    if isinstance(ports, bool) or not isinstance(ports, int) or not 0 <= ports <= MAX_PORTS:
        raise _Problem("workspace", "ports", f"ports must be a whole number from 0 to {MAX_PORTS}")
    env = table.get("env", {})
    if not isinstance(env, dict):
        raise _Problem(
            "workspace", "env", "env must be a table of strings: env = { NAME = 'value' }"
        )
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise _Problem("workspace", "env", f"env name {name!r} must be letters, digits and _")
        if name.upper().startswith(_RESERVED_ENV):
            raise _Problem(
                "workspace",
                "env",
                f"env may not set {name}: names starting with {', '.join(_RESERVED_ENV)} are "
                "kanban's and git's",
            )
        if not isinstance(value, str) or "\0" in value:
            raise _Problem("workspace", "env", f"env {name} must be a string without NUL bytes")
    setup_timeout = _seconds(table, "workspace", "setup_timeout", DEFAULT_SETUP_TIMEOUT)
    return Workspace(
        copy,
        link,
        setup,
        teardown,
        ports,
        types.MappingProxyType(dict(env)),
        setup_timeout=setup_timeout,
    )


def _check(table: dict[str, Any]) -> Check:
    if "command" not in table:
        raise _Problem("check", None, '[check] needs a command: command = "make test"')
    command = _command(table["command"], "check", "command", "command")
    timeout = _seconds(table, "check", "timeout", DEFAULT_CHECK_TIMEOUT)
    gate = table.get("gate", False)
    if not isinstance(gate, bool):
        raise _Problem("check", "gate", "gate must be true or false")
    return Check(command, timeout, gate)


def _seconds(table: dict[str, Any], name: str, key: str, default: float) -> float:
    value = table.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _Problem(name, key, f"{key} must be a positive, finite number of seconds")
    return float(value)


def _command(value: Any, table: str, key: str, what: str) -> Command:
    """A string (a shell line) or a non-empty list of strings (an argv)."""
    if isinstance(value, str):
        if not value.strip() or "\0" in value:
            raise _Problem(table, key, f"{what} must be a non-empty line without NUL bytes")
        return Command(line=value)
    if isinstance(value, list) and value and all(isinstance(arg, str) for arg in value):
        if not value[0] or any("\0" in arg for arg in value):
            raise _Problem(table, key, f"{what} must name a program; no argument may hold a NUL")
        return Command(args=tuple(value))
    raise _Problem(
        table, key, f"{what} must be a string (run with {SHELL} -c) or a list of strings (an argv)"
    )


def _commands(table: dict[str, Any], key: str) -> tuple[Command, ...]:
    """A string (one shell line) or a list of commands, each a string or a list of strings."""
    value = table.get(key, [])
    if isinstance(value, str):
        return (_command(value, "workspace", key, key),)
    if not isinstance(value, list):
        raise _Problem("workspace", key, f'{key} must be a list of commands: {key} = ["make deps"]')
    return tuple(
        _command(item, "workspace", key, f"{key}[{number}]") for number, item in enumerate(value)
    )


def _globs(table: dict[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Problem("workspace", key, f'{key} must be a list of globs: {key} = [".env"]')
    try:
        return tuple(normalize_glob(item) for item in value)
    except errors.InvalidInput as exc:
        raise _Problem("workspace", key, f"{key}: {exc}") from exc


def normalize_glob(pattern: str) -> str:
    """`pattern` as ``a/b/*.c``, if it stays inside the repository; else InvalidInput."""
    if "\0" in pattern:
        raise errors.InvalidInput(f"{pattern!r} holds a NUL byte")
    if pattern.startswith(("/", "~")):
        raise errors.InvalidInput(f"{pattern!r} must be relative to the repository's root")
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise errors.InvalidInput(f"{pattern!r} may not use '..': it must stay in the repository")
    if ".git" in parts:
        raise errors.InvalidInput(f"{pattern!r} reaches into .git, which is git's own")
    if not parts:
        raise errors.InvalidInput(f"{pattern!r} names the whole repository; name files in it")
    return "/".join(parts)


def _line_of(text: str, table: str | None, key: str | None) -> int | None:
    """The line of `key` in ``[table]`` (or of the table, or of a top-level `key`), if found.

    Best effort for the usual spellings: a ``[table]`` header with ``key = ...`` under it, a
    dotted ``table.key = ...``, a ``[table.key]`` header, or an inline ``table = { ... }``.
    """
    lines = text.splitlines()

    def name(word: str) -> str:
        return rf"[\"']?{re.escape(word)}[\"']?"

    def first(pattern: str, start: int = 0, stop: int | None = None) -> int | None:
        compiled = re.compile(pattern)
        for number in range(start, len(lines) if stop is None else stop):
            if compiled.match(lines[number]):
                return number
        return None

    if table is None:
        assert key is not None
        found = first(rf"^\s*\[\s*{name(key)}\s*[\].]")
        if found is None:
            found = first(rf"^\s*{name(key)}\s*[=.]")
        return None if found is None else found + 1
    header = first(rf"^\s*\[\s*{name(table)}\s*\]")
    if key is not None:
        if header is not None:
            stop = first(r"^\s*\[", header + 1)
            found = first(rf"^\s*{name(key)}\s*[=.]", header + 1, stop)
            if found is not None:
                return found + 1
        # [table.key] or table.key = ... (or a table of its own, table.key.name = ...)
        found = first(rf"^\s*(\[\s*)?{name(table)}\s*\.\s*{name(key)}\s*[=.\]]")
        if found is not None:
            return found + 1
    if header is None:
        header = first(rf"^\s*(\[\s*)?{name(table)}\s*[=.]")
    return None if header is None else header + 1


# --- what a glob selects -----------------------------------------------------------------


def select(top: Path | str, patterns: Sequence[str]) -> tuple[str, ...]:
    """The paths (relative, ``/``-separated, sorted) that `patterns` select in the checkout
    whose root is `top`: those that exist and git ignores. Never a tracked file, never a
    directory that holds one, never anything inside ``.git``, never a path that leads outside
    `top` (through a symbolic link). A selected directory stands for all it holds, so nothing
    inside it is listed again.

    Glob syntax: ``*``, ``?`` and ``[...]`` match within one path component (leading dots
    included), and a ``**`` component matches any number of directories.
    """
    top = Path(top)
    candidates: set[tuple[str, ...]] = set()
    matching = []  # the patterns that match something: git is asked about these only
    for pattern in map(normalize_glob, patterns):
        found = set(_expand(top, (), tuple(pattern.split("/"))))
        if found:
            candidates |= found
            matching.append(pattern)
    if not candidates:
        return ()
    ignored = _ignored(top, matching)
    real_top = os.path.realpath(top)
    chosen = []
    for parts in sorted(candidates):
        if not _is_ignored(parts, ignored):
            continue
        real = os.path.realpath(top.joinpath(*parts))
        if os.path.commonpath([real_top, real]) != real_top or real == real_top:
            continue
        if ".git" in Path(os.path.relpath(real, real_top)).parts:
            continue
        chosen.append(parts)
    outermost: list[tuple[str, ...]] = []
    for parts in chosen:  # sorted, so a directory comes before what it holds
        if not any(parts[: len(kept)] == kept for kept in outermost):
            outermost.append(parts)
    return tuple("/".join(parts) for parts in outermost)


def _expand(
    top: Path, base: tuple[str, ...], segments: tuple[str, ...]
) -> Iterator[tuple[str, ...]]:
    """Every existing path under `top` that `segments` match, as components.

    Only real directories are entered (never a symbolic link, never ``.git``), so a match
    never lies beyond a link; the last component may itself be a link.
    """
    if not segments:
        if base:
            yield base
        return
    head, rest = segments[0], segments[1:]
    directory = top.joinpath(*base)
    if head == "**":
        yield from _expand(top, base, rest)
        for name in _entries(directory, dirs_only=True):
            yield from _expand(top, (*base, name), segments)
        return
    if _GLOB_MAGIC.search(head):
        names = [
            n for n in _entries(directory, dirs_only=bool(rest)) if fnmatch.fnmatchcase(n, head)
        ]
    else:
        names = [head]
    for name in names:
        path = directory / name
        if rest:
            if _real_dir(path):
                yield from _expand(top, (*base, name), rest)
        elif os.path.lexists(path):
            yield (*base, name)


def _entries(directory: Path, *, dirs_only: bool) -> list[str]:
    try:
        with os.scandir(directory) as listing:
            return sorted(
                entry.name
                for entry in listing
                if entry.name != ".git" and (not dirs_only or entry.is_dir(follow_symlinks=False))
            )
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _ignored(top: Path, patterns: Sequence[str]) -> set[str]:
    """What git ignores under the patterns' fixed prefixes: files, and ``dir/`` for a
    directory that holds only ignored (never tracked) files.

    Each pattern matched something, so its fixed prefix leads through real directories (git
    refuses a pathspec beyond a symbolic link).
    """
    prefixes: list[str] = []
    for pattern in patterns:
        fixed = []
        for part in pattern.split("/"):
            if _GLOB_MAGIC.search(part):
                break
            fixed.append(part)
        if not fixed:
            prefixes = []  # the pattern starts with a wildcard: the whole tree
            break
        prefixes.append(":(literal)" + "/".join(fixed))
    out = git.run(
        top,
        "ls-files",
        "-z",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
        "--",
        *prefixes,
    ).out
    return {entry for entry in out.split("\0") if entry}


def _is_ignored(parts: tuple[str, ...], ignored: set[str]) -> bool:
    if "/".join(parts) in ignored:
        return True
    return any("/".join(parts[:n]) + "/" in ignored for n in range(1, len(parts) + 1))
