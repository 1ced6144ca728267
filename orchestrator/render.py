"""Drawing the board in a terminal (rich): `kanban board` and the live `kanban watch`."""

from __future__ import annotations

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


def plain(text: str | None, *, lines: bool = False) -> str:
    """`text` (a title, a summary, a body from people or models) safe to print to a terminal.

    Control characters and bidi overrides are dropped; newlines and tabs become spaces unless
    `lines` (bodies, comments). The one sanitiser of every command that prints board text.
    """
    if not text:
        return ""
    return text.translate(_LINES if lines else _ONE_LINE)


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


def board(tasks: list[dict[str, Any]], *, show_all: bool = False) -> Table:
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
    return table


def progress_line(counts: dict[str, int]) -> Text:
    text = Text()
    for status in COLUMNS:
        if counts.get(status):
            text.append(f"{status} {counts[status]}  ", style=STYLE[status])
    return text
