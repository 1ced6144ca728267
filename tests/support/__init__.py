"""Helpers the tests share, one concept a module, imported like any module.

`gitrepo` (git and real repositories), `waiting` (polling a condition with a deadline), `cli`
(the real `kanban` executable), `processes` (whether a process has ended; ending a tree of
them), `board_kit` (tasks made, claimed and acted on through the board's functions), `world`
(a board and `kanban dispatch` subprocesses) and `agents` (the world of the end-to-end tests:
real Codex and Hermes on a scripted model). Here too: `REPO_ROOT`, the repository's root.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
