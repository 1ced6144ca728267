"""Batch files: a TOML description of tasks and their dependencies, for `kanban run`.

Example ``nightly.toml``::

    name = "nightly"                 # optional; defaults to the file's name
    budget = "5M,$20"                # optional; what all its tasks may use together

    [defaults]                       # optional; applies to every task
    repo = "."                       # relative to this file; or a URL, as `create --repo`
    runtime = "command"
    max_attempts = 2

    [tasks.lint]
    title = "Lint"
    command = "ruff check ."

    [tasks.test]
    title = "Unit tests"
    command = ["pytest", "-q"]
    after = ["lint"]                 # keys of this batch

    [tasks.e2e]
    title = "End-to-end tests"
    command = "make e2e"
    setup = "make deps"              # instead of the repository's .kanban.toml setup
    check = "make verify"            # a gated check instead of its [check]; false: none

    [tasks.review]
    title = "Review today's changes"
    runtime = "hermes"
    body = "Read the diff of the last day and list risky changes."
    after = ["test"]

A malformed file is refused before anything is created, with the line and the reason.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from board import batches, errors, records, spending, tasks
from worker import runtimes
from worker.runtimes import command as command_runtime

if TYPE_CHECKING:
    from orchestrator import remotes

TASK_KEYS = {
    "title",
    "body",
    "repo",
    "base",
    "runtime",
    "command",
    "after",
    "priority",
    "max_attempts",
    "timeout",
    "setup",  # overrides of the repository's .kanban.toml (orchestrator.workspace.overrides)
    "check",
    "budget",  # what one task's runs may use ("200k", "$5", "200k,$5")
}
DEFAULT_KEYS = TASK_KEYS - {"title", "after"}
KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BatchError(errors.InvalidInput):
    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}; nothing was submitted")


def _line_of(text: str, key: str | None, field: str | None = None) -> int | None:
    """The line of ``[tasks.KEY]`` (or of `field` inside it, or of a top-level `field`)."""
    lines = text.splitlines()
    start = 0
    if key is not None:
        header = re.compile(rf"^\s*\[\s*tasks\s*\.\s*[\"']?{re.escape(key)}[\"']?\s*\]")
        for number, line in enumerate(lines):
            if header.match(line):
                start = number
                break
        else:
            return None
        if field is None:
            return start + 1
    pattern = re.compile(rf"^\s*{re.escape(field or '')}\s*=")
    for number in range(start, len(lines)):
        if number > start and key is not None and lines[number].lstrip().startswith("["):
            break
        if pattern.match(lines[number]):
            return number + 1
    return start + 1 if key is not None else None


class Loaded(NamedTuple):
    name: str
    entries: list[batches.Entry]
    budget: records.Budget  # what all its tasks may use together


def load(path: str | Path) -> Loaded:
    """Parse and check a batch file; returns its name, entries and budget, or raises
    BatchError."""
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchError(path, None, f"cannot read the file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise BatchError(path, None, "the file is not UTF-8 text") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise BatchError(
            path, int(match.group(1)) if match else None, f"not valid TOML: {exc}"
        ) from exc
    unknown = set(data) - {"name", "budget", "defaults", "tasks"}
    if unknown:
        field = sorted(unknown)[0]
        raise BatchError(
            path,
            _line_of(text, None, field) or _table_line(text, field),
            f"unknown top-level key {field!r}; use name, budget, [defaults] and [tasks.KEY]",
        )
    budget = tasks.NO_BUDGET
    if "budget" in data:
        try:
            budget = spending.parse_budget(_budget_text(data["budget"]))
        except errors.KanbanError as exc:
            raise BatchError(path, _line_of(text, None, "budget"), str(exc)) from exc
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise BatchError(path, _line_of(text, None, "name"), "name must be non-empty text")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BatchError(path, _line_of(text, None, "defaults"), "[defaults] must be a table")
    bad = set(defaults) - DEFAULT_KEYS
    if bad:
        raise BatchError(
            path,
            _table_line(text, "defaults"),
            f"[defaults] cannot set {', '.join(sorted(bad))}; "
            f"it may set {', '.join(sorted(DEFAULT_KEYS))}",
        )
    table = data.get("tasks")
    if not isinstance(table, dict) or not table:
        raise BatchError(path, None, "the batch has no tasks: add [tasks.KEY] tables")
    entries = []
    resolved: dict[tuple[str, str | None], remotes.Repository] = {}
    for key, spec in table.items():
        if not isinstance(spec, dict):
            raise BatchError(path, _line_of(text, None, key), f"tasks.{key} must be a table")
        line = _line_of(text, key)
        if not KEY.match(key):
            raise BatchError(path, line, f"task key {key!r} may use letters, digits, - and _")
        merged = {**defaults, **spec}
        try:
            entries.append(_entry(path, key, merged, table, resolved))
        except _Problem as exc:
            where = _line_of(text, key, exc.field) if exc.field in spec else line
            raise BatchError(path, where, f"task {key!r}: {exc}") from exc
        except errors.KanbanError as exc:
            raise BatchError(path, line, f"task {key!r}: {exc}") from exc
    try:
        batches.order(entries)
    except errors.KanbanError as exc:
        raise BatchError(path, None, str(exc)) from exc
    return Loaded(name.strip(), entries, budget)


def _budget_text(value: Any) -> str:
    """A budget as written in TOML: ``"200k,$5"``, or a bare number of tokens."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise errors.InvalidInput(f'budget {value!r}: write it as text, e.g. "200k" or "$5"')
    return str(value)


class _Problem(errors.InvalidInput):
    """A bad value, with the key it is under (to point at its line)."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        super().__init__(message)


def _table_line(text: str, name: str) -> int | None:
    for number, line in enumerate(text.splitlines()):
        if re.match(rf"^\s*\[\s*{re.escape(name)}\s*\]", line):
            return number + 1
    return None


def _entry(
    path: Path,
    key: str,
    spec: dict[str, Any],
    table: dict[str, Any],
    resolved: dict[tuple[str, str | None], remotes.Repository],
) -> batches.Entry:
    from orchestrator import remotes, workspace

    unknown = set(spec) - TASK_KEYS
    if unknown:
        raise _Problem(
            sorted(unknown)[0],
            f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TASK_KEYS))}",
        )
    title = spec.get("title", key)
    after = spec.get("after", [])
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise _Problem("after", "after must be a list of task keys")
    for other in after:
        if other not in table:
            raise _Problem("after", f"after names {other!r}, which is not a task of this batch")
    try:
        runtime, options = command_runtime.task_runtime(
            spec.get("runtime"), spec.get("command"), option="`command`"
        )
    except command_runtime.CommandError as exc:
        raise _Problem(exc.field, str(exc)) from exc
    if runtime is not None and runtime not in runtimes.NAMES:
        raise _Problem(
            "runtime", f"runtime {runtime!r} is unknown; use one of {', '.join(runtimes.NAMES)}"
        )
    repo, base_ref, base_branch = None, None, None
    if spec.get("repo") is not None:
        if not isinstance(spec["repo"], str):
            raise _Problem("repo", "repo must be a path or a repository's URL")
        if "\0" in spec["repo"]:
            raise _Problem("repo", "repo contains a NUL byte (\\0), which no path can hold")
        # Asked once per repository and base, however many tasks name them (a remote is
        # asked over the network).
        cache_key = (spec["repo"], spec.get("base"))
        if cache_key not in resolved:
            try:
                resolved[cache_key] = remotes.resolve(
                    spec["repo"], spec.get("base"), relative_to=path.parent
                )
            except errors.KanbanError as exc:
                raise _Problem("repo", str(exc)) from exc
        found = resolved[cache_key]
        repo, base_ref, base_branch = found.repo, found.base_ref, found.base_branch
    elif spec.get("base") is not None:
        raise _Problem("base", "base needs repo")
    for field, kind in (("priority", int), ("max_attempts", int)):
        if field in spec and (isinstance(spec[field], bool) or not isinstance(spec[field], kind)):
            raise _Problem(field, f"{field} must be a whole number")
    timeout = spec.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise _Problem("timeout", "timeout must be a number of seconds")
    if not isinstance(title, str) or not isinstance(spec.get("body", ""), str):
        raise _Problem("title", "title and body must be text")
    try:
        overrides = workspace.overrides(spec)
    except workspace.OverrideError as exc:
        raise _Problem(exc.key, str(exc)) from exc
    if overrides and repo is None:
        raise _Problem(next(iter(overrides)), "setup and check need repo")
    budget = tasks.NO_BUDGET
    if "budget" in spec:
        try:
            budget = spending.parse_budget(_budget_text(spec["budget"]))
        except errors.KanbanError as exc:
            raise _Problem("budget", str(exc)) from exc
    task = tasks.NewTask(
        title=title,
        body=spec.get("body", ""),
        priority=spec.get("priority", 0),
        repo=repo,
        base_ref=base_ref,
        base_branch=base_branch,
        runtime=runtime,
        runtime_options=options,
        max_attempts=spec.get("max_attempts", 3),
        timeout=timeout,
        workspace=overrides or None,
        budget=budget,
    )
    tasks.validate(task)
    return batches.Entry(key, task, tuple(after))
