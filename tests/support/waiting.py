"""Waiting for a condition: poll it with a deadline, never sleep and hope."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DEADLINE = 20.0  # seconds; generous: a loaded CI machine must not fail these


def wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = DEADLINE,
    on_fail: Callable[[], str] = str,
) -> Any:
    """Poll `condition` until it returns something truthy, and return that.

    At the deadline, fail with `what` and the text `on_fail` gives (a log, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{on_fail()}")
        time.sleep(0.02)
