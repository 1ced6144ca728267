"""What the agents used: `kanban usage`, and how a usage reads in every command's output."""

from __future__ import annotations

import datetime
import time
from typing import Any

import click

from board import errors, spending
from orchestrator.cli import context


def usage_line(used: dict[str, Any]) -> str:
    """``12,345 tokens (10,000 in of which 2,000 cached, 2,345 out) $0.04``."""
    parts = [f"{used['input_tokens']:,} in"]
    if used["cached_input_tokens"]:
        parts[0] += f" of which {used['cached_input_tokens']:,} cached"
    parts.append(f"{used['output_tokens']:,} out")
    if used["reasoning_tokens"]:
        parts[-1] += f" ({used['reasoning_tokens']:,} reasoning)"
    text = f"{used['tokens']:,} tokens ({', '.join(parts)})"
    if used.get("model"):
        text += f" on {used['model']}"
    if used["cost_usd"] is not None:
        text += f", ${used['cost_usd']:,.4f}"
    return text


def _since(text: str | None) -> float | None:
    """``2026-12-01``, ``today``, ``7d`` (days ago), or ``24h`` (hours ago)."""
    if text is None:
        return None
    value = text.strip().lower()
    now = time.time()
    try:
        if value == "today":
            return spending.start_of_day(now)
        if value[-1:] in ("d", "h") and value[:-1].isdigit():
            return now - int(value[:-1]) * (86400 if value[-1] == "d" else 3600)
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None:
        raise errors.InvalidInput(
            f"--since {text!r}: give a date (2026-12-01), a time (2026-12-01T09:00), "
            "today, 7d or 24h"
        )
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a local date or time
    return moment.timestamp()


@click.command()
@click.option("--since", "since", help="Runs started since: 2026-12-01, today, 7d, 24h.")
@click.option(
    "--by",
    type=click.Choice(list(spending.GROUPINGS)),
    default="task",
    show_default=True,
    help="One line per task, batch, runtime, model or day.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def usage(ctx, since, by, as_json):
    """What the agents used: tokens and cost, per task, batch, runtime, model or day.

    Costs are the agents' own where they report one (Claude Code), else computed from
    [prices] in the config for the run's model; runs with tokens but no price are counted
    as `unpriced`.

    \b
    Examples:
      kanban usage --since today
      kanban usage --by model --since 7d --json
    """
    start = _since(since)
    db = context.existing_board(ctx)
    found = spending.report(db, start=start, by=by)
    total = {
        key: sum(row[key] for row in found)
        for key in (
            "runs",
            "tokens",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "unpriced",
        )
    }
    costs = [row["cost_usd"] for row in found if row["cost_usd"] is not None]
    total["cost_usd"] = sum(costs) if costs else None
    if as_json:
        context.print_json({"by": by, "since": start, "rows": found, "total": total})
        return
    from rich.table import Table

    from orchestrator import render

    table = Table(box=None, pad_edge=False)
    for name in (by, "runs", "tokens", "in", "cached", "out", "cost"):
        table.add_column(name, justify="left" if name == by else "right")

    def cost(row: dict[str, Any]) -> str:
        text = "" if row["cost_usd"] is None else f"${row['cost_usd']:,.4f}"
        return text + (f" (+{row['unpriced']} unpriced)" if row["unpriced"] else "")

    for row in [*found, {"key": "total", **total}]:
        table.add_row(
            render.plain(str(row["key"] if row["key"] is not None else "-")),
            f"{row['runs']:,}",
            f"{row['tokens']:,}",
            f"{row['input_tokens']:,}",
            f"{row['cached_input_tokens']:,}",
            f"{row['output_tokens']:,}",
            cost(row),
        )
    context.console().print(table)


COMMANDS = [usage]
