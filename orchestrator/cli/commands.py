"""Which command modules make up `kanban`: one module per command group."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from orchestrator.cli import batch, dispatch, schedule, tasks

    modules = [tasks, dispatch, batch, schedule]
    for name in ("setup", "mcp"):  # written in parallel; registered once they exist
        try:
            modules.append(__import__(f"orchestrator.cli.{name}", fromlist=["COMMANDS"]))
        except ModuleNotFoundError:
            pass
    for module in modules:
        for command in module.COMMANDS:
            group.add_command(command)
