"""What a run used: tokens, cost, model; and the meter that reads them from an agent's output.

Every agent runtime reports usage in its own machine-readable output (Codex's ``--json``
events, Claude Code's ``stream-json``, the session records Codex writes for Hermes' app-server
runtime). A runtime's `Meter` reads that output as it is written, line by line from the run's
log, and keeps the run's **cumulative** totals: feeding a whole log again from its first line
gives the same totals (a dispatcher that restarts re-reads a running worker's log from the
start). The dispatcher feeds the log as it grows, records the totals on the run and stops a
run that crosses its budget.

`render` turns one raw line of a run's log into what a person reads (``kanban logs``,
``watch``, the web board): the log file keeps the agent's own output, so nothing is lost and
the rendering can improve without touching old logs.
"""

from __future__ import annotations

from typing import Protocol

from board.records import Usage

__all__ = ["Meter", "NoMeter", "Usage", "plain"]


class Meter(Protocol):
    """Reads one run's output; `usage` is the run's totals so far."""

    def feed(self, line: str) -> None:
        """One line of the run's log (without its newline), in order."""

    def usage(self) -> Usage:
        """The totals so far (may read records the agent keeps beside its output)."""

    def activity(self) -> str | None:
        """The last thing the agent did, as one short readable line (None: nothing yet)."""


class NoMeter:
    """For runtimes that report no usage (`command`): nothing used, last line as activity."""

    def __init__(self) -> None:
        self._last: str | None = None

    def feed(self, line: str) -> None:
        if line.strip():
            self._last = line.strip()[:200]

    def usage(self) -> Usage:
        return Usage()

    def activity(self) -> str | None:
        return self._last


def plain(line: str) -> str | None:
    """`render` for output that is already text: every line as it is."""
    return line
