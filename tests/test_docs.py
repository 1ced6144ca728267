"""The docs change with the code: every command and every MCP tool is documented."""

from __future__ import annotations

import importlib
import re

import click
from support import REPO_ROOT

from orchestrator.cli import main


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names.extend(_commands(command, f"{prefix}{name} "))
    return names


def test_every_cli_command_is_in_the_cli_reference():
    main._register()
    text = (REPO_ROOT / "docs" / "cli.md").read_text()
    documented = set(re.findall(r"`kanban ([a-z-]+(?: [a-z-]+)?)", text))
    flat = " ".join(sorted(documented))
    missing = [c for c in _commands(main.cli) if c not in documented and c not in flat]
    assert missing == []


def test_every_command_has_a_docstring_with_an_example():
    main._register()
    for name in _commands(main.cli):
        command = main.cli
        for part in name.split():
            command = command.commands[part]  # type: ignore[attr-defined]
        if isinstance(command, click.Group) and command.name != "schedule":
            continue
        assert command.help and "xample" in command.help, name


def test_every_config_key_is_in_the_config_reference():
    from orchestrator import config

    text = (REPO_ROOT / "docs" / "config.md").read_text()
    for keys in (config._DISPATCH_KEYS, config._LIMIT_KEYS, config._RUNTIME_KEYS):
        for key in keys:
            assert re.search(rf"^{key} = ", text, re.MULTILINE), key


def test_every_mcp_tool_is_in_the_tool_reference():
    from worker.mcp_server import identity, specs

    text = (REPO_ROOT / "docs" / "mcp-tools.md").read_text()
    names = [spec.name for spec in specs.tool_specs(identity.from_env({}))]
    assert len(names) == 9
    for name in names:
        assert f"`{name}`" in text, name


def _resolve(dotted: str) -> object:
    """The object a dotted name in the docs stands for (`board.runs.claim`)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise LookupError(dotted)


def _column(table: str, column: int) -> list[str]:
    """The dotted names in backticks in one column of a Markdown table."""
    names = []
    for row in table.splitlines()[2:]:
        cell = row.strip("|").split(" | ")[column]
        names += [n for n in re.findall(r"`([A-Za-z_][\w.]*)`", cell) if "." in n]
    return names


def _unresolved(names: list[str], prefixes: tuple[str, ...]) -> list[str]:
    missing = []
    for name in names:
        for prefix in prefixes:
            try:
                _resolve(prefix + name)
                break
            except (LookupError, AttributeError):
                continue
        else:
            missing.append(name)
    return missing


def test_every_owner_in_the_code_map_exists():
    text = (REPO_ROOT / "docs" / "concepts.md").read_text()
    table = re.search(r"^\| where is\.\.\. \| owner \|\n(?:\|.*\n?)+", text, re.MULTILINE)
    assert table is not None
    names = _column(table.group(0), 1)
    assert len(names) > 30
    assert _unresolved(names, ("",)) == []


def test_every_transition_names_a_function_that_exists():
    text = (REPO_ROOT / "docs" / "lifecycle.md").read_text()
    table = re.search(r"^\| from \| to \| when \| function \|\n(?:\|.*\n?)+", text, re.MULTILINE)
    assert table is not None
    rows = table.group(0).splitlines()[2:]
    assert all(re.findall(r"`[\w.]+`", row.rsplit(" | ", 1)[1]) for row in rows)
    assert _unresolved(_column(table.group(0), 3), ("board.", "")) == []
