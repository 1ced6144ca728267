"""A task that cannot start fails alone; the dispatcher and the other tasks carry on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

KANBAN = str(Path(sys.executable).with_name("kanban"))


def test_a_task_whose_directory_cannot_be_made_fails_and_the_others_still_run(tmp_path):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("scratch directories cannot live under a file")
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    env = {**os.environ, "KANBAN_SCRATCH_ROOT": str(not_a_dir / "scratch")}

    def kanban(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KANBAN, *args], capture_output=True, text=True, env=env, timeout=120)

    kanban("create", "No place to run", "--command", "true")
    kanban("create", "Runs in a worktree", "--repo", str(repo), "--command", "true")
    done = kanban("dispatch", "--until-idle", "-q")
    assert done.returncode == 0, done.stderr
    shown = {t["title"]: t for t in json.loads(kanban("list", "--json").stdout)}
    assert shown["No place to run"]["status"] == "failed"
    assert "cannot start" in shown["No place to run"]["failure_reason"]
    assert shown["Runs in a worktree"]["status"] == "done"
