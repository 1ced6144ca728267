"""Following a live run's log: its usage for the board, its budget, whether it started at all.

The dispatcher keeps one `Reading` per run it supervises. Each tick of the watch reads what
the log gained (`advance`, blocking: called in a worker thread) and feeds complete lines to
the runtime's meter (`worker.usage`). The meter keeps the run's totals, so a dispatcher that
adopts a running worker reads its log from the start and arrives at the same figures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from board.records import Usage
from orchestrator import config
from worker import usage
from worker.runtimes import base

CHUNK = 1 << 22  # read at most this much per tick: a flood of output cannot stall a tick


class Reading:
    def __init__(
        self, runtime: base.Runtime | None, metered: base.Metered, log_path: str | None
    ) -> None:
        self.meter: usage.Meter = usage.NoMeter() if runtime is None else runtime.meter(metered)
        self.log_path = log_path
        self.offset = 0
        self.partial = b""
        self.output_from = 0  # where the agent's output begins (after the setup's)
        self.recorded: tuple[Usage, str | None] | None = None

    def skip_to_end(self) -> None:
        """The log so far is the setup's: the agent's output, all the meter reads, follows."""
        self.output_from = self.offset = _size(self.log_path)

    def advance(self, *, final: bool = False) -> None:
        """Feed the lines the log gained; `final`: the run is over, feed a last partial line."""
        if self.log_path is None:
            return
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self.offset)
                # Over: nothing will be read later. Live: at most a chunk per tick.
                data = handle.read() if final else handle.read(CHUNK)
        except OSError:
            return
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        for line in lines:
            self.meter.feed(line.decode("utf-8", "replace").rstrip("\r"))

    def priced(self, prices: Mapping[str, config.Price]) -> tuple[Usage, str | None]:
        """The run's usage so far with its cost, and the cost's source (`config.priced`)."""
        return config.priced(self.meter.usage(), prices)

    def changed(self, figures: tuple[Usage, str | None]) -> bool:
        """Whether `figures` differ from those last recorded (then remembered as recorded)."""
        if figures == self.recorded:
            return False
        self.recorded = figures
        return True

    def started_up(self, *, agent: bool) -> bool:
        """Did it get going? An agent: its model answered once (every model API reports usage
        with each answer); output alone is no proof (an agent with no login keeps printing its
        retries). Anything else: any output."""
        if agent:
            return not self.meter.usage().empty
        return _size(self.log_path) > self.output_from


def _size(path: str | None) -> int:
    if path is None:
        return 0
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
