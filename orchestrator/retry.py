"""When to try again: exponential backoff with jitter, and which outcomes deserve a retry."""

from __future__ import annotations

import errno
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


def backoff(attempt: int, base: float, cap: float, *, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1`: base * 2**(attempt-1), capped, with equal jitter.

    Jitter keeps many tasks that failed together (a model outage) from retrying in lockstep.
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


# errno values that pass: a full disk or quota, no memory or processes or descriptors left
# for now. A missing binary (ENOENT) or a permission error would fail the same way again.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EAGAIN,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
        errno.EBUSY,
        errno.EINTR,
        errno.ETXTBSY,
    }
)
# The same conditions as git and other tools print them, for errors that wrap their output.
_TRANSIENT_WORDS = (
    "no space left on device",
    "disk quota exceeded",
    "resource temporarily unavailable",
    "cannot allocate memory",
    "too many open files",
)


def transient(exc: BaseException) -> bool:
    """Would starting again later succeed? (A full disk yes; a missing binary no.)"""
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return any(word in str(exc).lower() for word in _TRANSIENT_WORDS)
