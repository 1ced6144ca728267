"""What the landing tests share: `command` tasks on a branch, agents' programs, git questions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.gitrepo import git

PY = sys.executable

# Writes sys.argv[2] and a line break to the file sys.argv[1].
WRITE = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2] + '\\n')"
# Edits README's first line; when kanban left conflict markers in it, keeps both sides.
EDIT_README = """\
import pathlib, sys
readme = pathlib.Path("README")
text = readme.read_text()
if "<<<<<<< " in text:
    keep = [l for l in text.splitlines() if not l.startswith(("<<<<<<< ", "=======", ">>>>>>> "))]
    readme.write_text("\\n".join(keep) + "\\n")
else:
    readme.write_text(sys.argv[1] + "\\n" + text.split("\\n", 1)[1])
"""


def task(
    kb, repo: Path, title: str, code: str, *args: object, after=(), branch="main", **options
) -> int:
    """A `command` task on `repo`'s `branch`, as `kanban create --repo` makes one (None:
    based on the repository's tip, but on no branch)."""
    return kb.create(
        title,
        code,
        *args,
        repo=repo,
        base_ref=git(repo, "rev-parse", branch or "HEAD"),
        base_branch=branch,
        after=list(after),
        **options,
    )


def set_command(kb, task_id: int, code: str, *args: object) -> None:
    """Give a task's next runs another program (as a different agent would behave)."""
    argv = [PY, "-c", code, *(str(a) for a in args)]
    kb.db.conn.execute(
        "UPDATE tasks SET runtime_options = ? WHERE id = ?",
        (json.dumps({"argv": argv}), task_id),
    )
    kb.db.conn.commit()


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """Whether `commit` is in `of`'s history (``git(..., check=False)`` would hide the answer:
    --is-ancestor says it with its exit code only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    found = subprocess.run(
        ["git", "-C", str(repo), "merge-base", "--is-ancestor", commit, of], env=env, check=False
    )
    assert found.returncode in (0, 1), f"git merge-base failed for {commit} and {of}"
    return found.returncode == 0
