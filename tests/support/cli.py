"""The real `kanban` executable, run as a user or a script runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

KANBAN = str(Path(sys.executable).with_name("kanban"))


def kanban(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`kanban ARGS...` run to its end, its output captured and its stdin closed.

    `env` is its whole environment, as for subprocess.run (None: this process's). With
    `check`, an exit code other than 0 fails the test with kanban's stderr.
    """
    result = subprocess.run(
        [KANBAN, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kanban {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result
