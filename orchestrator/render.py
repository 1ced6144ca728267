"""Drawing the board in a terminal (rich): `kanban board` and the live `kanban watch`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from board import states

COLUMNS = tuple(states.Status)  # in the lifecycle's order
STYLE = {
    states.Status.TODO: "dim",
    states.Status.READY: "cyan",
    states.Status.RUNNING: "bold yellow",
    states.Status.WAITING: "magenta",
    states.Status.BLOCKED: "bold red",
    states.Status.DONE: "green",
    states.Status.FAILED: "red",
    states.Status.CANCELLED: "dim",
}
ENDED_SHOWN = 8  # most recent ended tasks per column unless --all
NO_BREAK = "\u00a0"

# What a terminal would obey rather than show: C0 controls (ESC starts colour, cursor and
# title sequences), DEL, C1 controls (CSI, OSC...) and the bidirectional overrides and
# isolates that reorder what follows (U+202E shows `exe.txt` as `txt.exe`).
_CONTROLS = dict.fromkeys(
    [
        *range(0x00, 0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)
_ONE_LINE = str.maketrans({**_CONTROLS, 0x09: " ", 0x0A: " ", 0x0D: " "})
_LINES = str.maketrans({k: v for k, v in _CONTROLS.items() if k not in (0x09, 0x0A)})


# Terminal sequences as a whole (CSI: colours, cursor; OSC: titles, links), so that a log's
# colours vanish instead of leaving "[31m" behind once `plain` drops their ESC.
_SEQUENCES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")


def plain(text: str | None, *, lines: bool = False) -> str:
    """`text` (a title, a summary, a body from people or models) safe to print to a terminal.

    Control characters and bidi overrides are dropped; newlines and tabs become spaces unless
    `lines` (bodies, comments). The one sanitiser of every command that prints board text.
    """
    if not text:
        return ""
    return text.translate(_LINES if lines else _ONE_LINE)


def log_line(text: str) -> str:
    """One line of a run's log, safe to print: terminal sequences and controls dropped."""
    return plain(_SEQUENCES.sub("", text))


def usage_text(used: Mapping[str, Any] | None) -> str:
    """A task's usage in a few characters: ``12.3k tok $0.04`` ("" when nothing recorded)."""
    if not used:
        return ""
    tokens = int(used.get("tokens") or 0)
    if tokens >= 999_950:
        text = f"{tokens / 1_000_000:.1f}M tok"
    elif tokens >= 1000:
        text = f"{tokens / 1000:.1f}k tok"
    else:
        text = f"{tokens} tok"
    cost = used.get("cost_usd")
    if isinstance(cost, int | float):
        text += f" ${cost:.2f}" if cost >= 0.01 or cost == 0 else " <$0.01"
    return text


def _card(task: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> Text:
    text = Text()
    # Indented under its parent when the parent is drawn just above it (same column).
    depth = 0
    parent = task["parent"]
    while parent and parent in by_id and by_id[parent]["status"] == task["status"] and depth < 5:
        depth += 1
        parent = by_id[parent]["parent"]
    text.append("  " * depth + ("└ " if depth else ""))
    text.append(task["id"], style="bold")
    text.append(f" {plain(task['title'])[:40]}")
    if task["parent"] and not depth:
        text.append(f" (subtask of {plain(task['parent'])})", style="dim")
    if task.get("landed"):
        text.append(" landed", style="green")
    if used := usage_text(task.get("usage")):
        # On a line of its own, in one piece (no-break spaces) however narrow the column.
        unbroken = used.replace(" ", NO_BREAK)
        text.append(f"\n{'  ' * depth}  {unbroken}", style="dim")
    if task["status"] == "running" and task.get("branch"):
        text.append(f"\n{'  ' * depth}  {plain(task['branch'])}", style="dim")
    return text


def _ordered(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Subtasks right under their parent when both are in the same column."""
    ids = {t["id"] for t in tasks}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for task in tasks:
        if task["parent"] in ids:
            children.setdefault(task["parent"], []).append(task)
        else:
            roots.append(task)
    out: list[dict[str, Any]] = []

    def walk(task: dict[str, Any]) -> None:
        out.append(task)
        for child in children.get(task["id"], []):
            walk(child)

    for root in roots:
        walk(root)
    return out


def board(
    tasks: list[dict[str, Any]],
    *,
    show_all: bool = False,
    notice: str | None = None,
    activity: Mapping[str, str | None] | None = None,
) -> Group:
    """The board: a column per status, each task a card (with its usage, when recorded).

    `notice` is printed above it (why nothing new starts, say). With `activity` (task id ->
    its last activity, None: none yet), as `kanban watch` gives it, every running task also
    gets a line of its own below the board, cut to the terminal's width.
    """
    by_id = {t["id"]: t for t in tasks}
    table = Table(expand=True, show_lines=False, header_style="bold", pad_edge=False)
    cells = []
    for status in COLUMNS:
        column = [t for t in tasks if t["status"] == status]
        hidden = 0
        if status in states.ENDED and not show_all and len(column) > ENDED_SHOWN:
            hidden = len(column) - ENDED_SHOWN
            column = sorted(column, key=lambda t: t["updated_at"] or "")[-ENDED_SHOWN:]
        table.add_column(f"{status} ({len(column) + hidden})", style=STYLE[status], ratio=1)
        cards: list[Text] = [_card(t, by_id) for t in _ordered(column)]
        if hidden:
            cards.append(Text(f"… {hidden} more (--all)", style="dim"))
        cells.append(Group(*cards) if cards else Text(""))
    table.add_row(*cells)
    parts: list[Any] = []
    if notice:
        parts.append(Text(plain(notice), style="bold yellow"))
    parts.append(table)
    if activity is not None:
        running = [t for t in tasks if t["status"] == states.Status.RUNNING]
        if running:
            parts.append(_activities(running, activity))
    return Group(*parts)


def _activities(running: list[dict[str, Any]], activity: Mapping[str, str | None]) -> Table:
    """One line per running task: id, usage, last activity; never wrapped, cut with `…`."""
    table = Table(box=None, show_header=False, expand=True, pad_edge=False)
    table.add_column("task", style=STYLE[states.Status.RUNNING], no_wrap=True)
    table.add_column("usage", style="dim", no_wrap=True)
    table.add_column("activity", ratio=1, no_wrap=True, overflow="ellipsis")
    for task in running:
        last = activity.get(task["id"])
        table.add_row(
            task["id"],
            usage_text(task.get("usage")),
            Text(log_line(last)) if last else Text("no activity yet", style="dim"),
        )
    return table


def progress_line(counts: dict[str, int]) -> Text:
    text = Text()
    for status in COLUMNS:
        if counts.get(status):
            text.append(f"{status} {counts[status]}  ", style=STYLE[status])
    return text
