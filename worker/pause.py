"""Pause points: named steps where a test can stop a process, to crash it at that exact moment.

A crash window (the dispatcher killed between spawning a shim and recording it, a shim killed
while its agent runs...) is tested at the window itself, not by a sleep that hopes for the
timing. Arm points with two environment variables, which every process kanban starts inherits:

- ``KANBAN_PAUSE``: a comma-separated list of point names (see `POINTS`);
- ``KANBAN_PAUSE_DIR``: a directory.

A process reaching an armed point creates ``<dir>/<name>.<pid>.<n>`` (n counts its arrivals) and
waits until that file is removed. The test waits for the file, then kills the process (or
removes the file to let it go on). Unarmed, a point costs one environment lookup.
"""

from __future__ import annotations

import itertools
import os
import time

# Every point, where it is, and the window it opens (tests name them; docs/lifecycle.md too).
POINTS = {
    "dispatcher.spawned": "the shim started, before the dispatcher recorded it (runs.attach)",
    "dispatcher.before-settle": "the run's processes are gone and its work committed, "
    "before the run is settled",
    "dispatcher.set-up": "a new worktree's setup commands ran, before it is marked ready",
    "dispatcher.over-budget": "a run crossed its budget and its task is blocked, before its "
    "agent is stopped",
    "land.merged": "kanban land merged (and checked) a task onto its base, before moving it",
    "dispatcher.merging": "a resumed parent's worktree has some of its children merged",
    "shim.agent-started": "the agent started, before the shim recorded its pid",
    "shim.agent-exited": "the agent exited, before the shim recorded its exit",
}

_arrivals = itertools.count(1)


def point(name: str) -> None:
    """Stop here while a test holds this point (no-op unless armed)."""
    armed = os.environ.get("KANBAN_PAUSE")
    if not armed or name not in armed.split(","):
        return
    directory = os.environ.get("KANBAN_PAUSE_DIR")
    if not directory:
        return
    marker = os.path.join(directory, f"{name}.{os.getpid()}.{next(_arrivals)}")
    # Created atomically and complete: the test may act the moment it appears.
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    while os.path.exists(marker):
        time.sleep(0.01)
