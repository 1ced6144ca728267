"""What a batch run produced: per-task outcome, attempts, duration, branch and summary."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

from board import batches, ids, runs, spending, states, views


def finished(db: sqlite_utils.Database, batch_id: str) -> bool:
    """Every task of the batch has ended, or nothing of the batch can move any more.

    The second case covers a task blocked on a question, or waiting behind a failed blocker:
    a one-shot run must end and say so instead of waiting forever. Only the batch counts:
    `kanban run` starts nothing else, so other ready work on the board must not keep it up.
    """
    by_status = batches.counts(db, batch_id)
    if not any(n for status, n in by_status.items() if status in states.OPEN):
        return True
    return batches.active_counts(db, batch_id) == (0, 0)


def counts(db: sqlite_utils.Database, batch_id: str) -> dict[str, int]:
    return batches.counts(db, batch_id)


def build(
    db: sqlite_utils.Database, batch_id: str, *, landed: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The report; `landed`: what `kanban run --land` did (each task's landing result)."""
    entries = []
    for task in batches.tasks_of(db, batch_id):
        history = runs.for_task(db, task.id)
        start = history[0].started_at if history else None
        end = task.ended_at or (history[-1].ended_at if history else None)
        duration = None if start is None else round((end or time.time()) - start, 3)
        used = spending.of_task(db, task.id)
        entries.append(
            {
                "id": task.label,
                "key": task.batch_key,
                "title": task.title,
                "parent": ids.format(task.parent_id) if task.parent_id else None,
                "status": task.status,
                "attempts": task.attempts,
                "runs": len(history),
                "duration_s": duration,
                "branch": task.branch,
                "summary": task.summary,
                "reason": task.failure_reason or task.block_reason,
                "landed": task.landed_sha,
                "usage": views.usage_object(used),
            }
        )
    ok = bool(entries) and all(e["status"] == states.Status.DONE for e in entries)
    report: dict[str, Any] = {
        "batch": batch_id,
        "ok": ok,
        "counts": counts(db, batch_id),
        "usage": views.usage_object(spending.of_batch(db, batch_id)),
        "tasks": entries,
    }
    if landed is not None:
        report["landing"] = landed
        report["ok"] = ok and all(r["status"] in ("landed", "already_landed") for r in landed)
    return report


def _used(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    text = f"{usage['tokens']:,} tokens"
    return text if usage["cost_usd"] is None else f"{text}, ${usage['cost_usd']:,.2f}"


def markdown(report: dict[str, Any], name: str) -> str:
    landing = report.get("landing")
    if landing is None:
        verdict = "all tasks done" if report["ok"] else "NOT all tasks done"
    else:
        verdict = "all tasks done and landed" if report["ok"] else "NOT all tasks done and landed"
    lines = [
        f"# kanban batch {report['batch']} ({name}): {verdict}",
        "",
        "| task | key | status | attempts | duration | used | branch | summary |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in report["tasks"]:
        text = (e["summary"] or e["reason"] or "").replace("\n", " ").replace("|", "\\|")[:300]
        duration = f"{e['duration_s']:.1f}s" if e["duration_s"] is not None else ""
        lines.append(
            f"| {e['id']} {e['title']} | {e['key'] or ''} | {e['status']} | "
            f"{e['attempts']} | {duration} | {_used(e['usage'])} | {e['branch'] or ''} | {text} |"
        )
    if report.get("usage"):
        lines += ["", f"Used in all: {_used(report['usage'])}."]
    if landing:
        lines += ["", "| landing | status | detail |", "|---|---|---|"]
        lines += [
            f"| {r['task']} | {r['status']} | {str(r['detail']).replace('|', '/')[:300]} |"
            for r in landing
        ]
    return "\n".join(lines) + "\n"
