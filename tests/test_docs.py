"""The docs change with the code: every command and every MCP tool is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

from orchestrator.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent


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
