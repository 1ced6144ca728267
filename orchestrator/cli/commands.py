"""Which command modules make up `kanban`: one module per command group."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from orchestrator.cli import setup, tasks

    for command in (*tasks.COMMANDS, *setup.COMMANDS):
        group.add_command(command)
