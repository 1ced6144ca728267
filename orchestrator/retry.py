"""When to try again: exponential backoff with jitter, and which outcomes deserve a retry."""

from __future__ import annotations

import random

from board.states import Outcome

# Worth another attempt (if attempts remain). Spawn failures and bad configuration are not:
# they would fail the same way again, so the task fails at once with the reason.
RETRYABLE = frozenset(
    {
        Outcome.CRASHED,
        Outcome.EXITED_WITHOUT_REPORT,
        Outcome.STALLED,
        Outcome.TIMED_OUT,
        Outcome.LOST,
    }
)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1`: base * 2**(attempt-1), capped, with equal jitter.

    Jitter keeps many tasks that failed together (a model outage) from retrying in lockstep.
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
