"""Names of the environment variables that identify a worker's run.

The board path is deliberately *not* ``HERMES_KANBAN_DB``: Hermes makes that file's directory
writable inside the Codex sandbox, and the sandboxed shell must never be able to write the
board. Only our MCP server, which runs outside the sandbox, writes it.
"""

from __future__ import annotations

TASK = "HERMES_KANBAN_TASK"
RUN_ID = "HERMES_KANBAN_RUN_ID"
TOKEN = "HERMES_KANBAN_TOKEN"
WORKSPACE = "HERMES_KANBAN_WORKSPACE"
BRANCH = "HERMES_KANBAN_BRANCH"
DB = "KANBAN_DB"
# Why the previous attempt ended (empty on a first attempt), for scripts that want it.
LAST_OUTCOME = "KANBAN_LAST_OUTCOME"

# Every variable a worker's MCP server needs; Codex must whitelist exactly these.
ALL = (TASK, RUN_ID, TOKEN, WORKSPACE, BRANCH, DB)
