"""What a batch run produced: per-task outcome, attempts, duration, branch and summary."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

from board import batches, ids, states
from board.connection import rows


def finished(db: sqlite_utils.Database, batch_id: str) -> bool:
    """Every task of the batch has ended, or nothing on the board can move any more.

    The second case covers a task blocked on a question, or waiting behind a failed blocker:
    a one-shot run must end and say so instead of waiting forever.
    """
    open_tasks = db.conn.execute(
        f"SELECT count(*) FROM tasks WHERE batch_id = ? AND status IN "
        f"{states.sql_list(states.OPEN)}",
        (batch_id,),
    ).fetchone()[0]
    if open_tasks == 0:
        return True
    movable = db.conn.execute(
        "SELECT count(*) FROM tasks WHERE status IN ('ready', 'running')"
    ).fetchone()[0]
    unended = db.conn.execute("SELECT count(*) FROM runs WHERE ended_at IS NULL").fetchone()[0]
    return movable == 0 and unended == 0


def counts(db: sqlite_utils.Database, batch_id: str) -> dict[str, int]:
    return {
        row["status"]: row["n"]
        for row in rows(
            db.conn,
            "SELECT status, count(*) AS n FROM tasks WHERE batch_id = ? GROUP BY status",
            (batch_id,),
        )
    }


def build(db: sqlite_utils.Database, batch_id: str) -> dict[str, Any]:
    entries = []
    for task in batches.tasks_of(db, batch_id):
        history = rows(
            db.conn,
            "SELECT started_at, ended_at FROM runs WHERE task_id = ? ORDER BY id",
            (task["id"],),
        )
        start = history[0]["started_at"] if history else None
        end = task["ended_at"] or (history[-1]["ended_at"] if history else None)
        duration = None if start is None else round((end or time.time()) - start, 3)
        entries.append(
            {
                "id": ids.format(task["id"]),
                "key": task["batch_key"],
                "title": task["title"],
                "parent": ids.format(task["parent_id"]) if task["parent_id"] else None,
                "status": task["status"],
                "attempts": task["attempts"],
                "runs": len(history),
                "duration_s": duration,
                "branch": task["branch"],
                "summary": task["summary"],
                "reason": task["failure_reason"] or task["block_reason"],
            }
        )
    ok = bool(entries) and all(e["status"] == states.Status.DONE for e in entries)
    return {"batch": batch_id, "ok": ok, "counts": counts(db, batch_id), "tasks": entries}


def markdown(report: dict[str, Any], name: str) -> str:
    verdict = "all tasks done" if report["ok"] else "NOT all tasks done"
    lines = [
        f"# kanban batch {report['batch']} ({name}): {verdict}",
        "",
        "| task | key | status | attempts | duration | branch | summary |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in report["tasks"]:
        text = (e["summary"] or e["reason"] or "").replace("\n", " ").replace("|", "\\|")[:300]
        duration = f"{e['duration_s']:.1f}s" if e["duration_s"] is not None else ""
        lines.append(
            f"| {e['id']} {e['title']} | {e['key'] or ''} | {e['status']} | "
            f"{e['attempts']} | {duration} | {e['branch'] or ''} | {text} |"
        )
    return "\n".join(lines) + "\n"
