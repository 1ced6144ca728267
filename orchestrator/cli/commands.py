"""Which command modules make up `kanban`: one module per command group."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from orchestrator.cli import (
        batch,
        dispatch,
        init,
        land,
        mcp,
        migrate,
        schedule,
        serve,
        setup,
        tasks,
        usage,
    )

    for module in (
        tasks,
        land,
        dispatch,
        batch,
        schedule,
        init,
        setup,
        mcp,
        usage,
        serve,
        migrate,
    ):
        for command in module.COMMANDS:
            group.add_command(command)
