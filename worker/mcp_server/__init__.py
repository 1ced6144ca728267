"""The kanban MCP server: the board's tools for coding agents, over stdio.

Run as ``python -m worker.mcp_server [--db PATH]`` (what Codex starts, with a scrubbed
environment) or ``kanban mcp``. Two modes, chosen by the environment at start-up:

- **worker mode** (``HERMES_KANBAN_TASK`` set): the server speaks for one run of one task.
  Every write goes through the board as `actors.Worker`, so the board fences it by run id and
  token and limits it to the task and its subtasks; ``task_id`` defaults to the worker's task.
  If the run id or token did not reach us (Codex passes MCP servers only whitelisted
  variables), the server still starts and answers every write with what to fix.
- **orchestrator mode** (no ``HERMES_KANBAN_TASK``): an operator with the whole board.

The tools are thin adapters over `board` functions and return `board.views` shapes. Every
expected failure becomes a tool error result whose text a model can act on; nothing but
protocol ever reaches stdout.

One concept a module:

- `identity`: who is asking (the mode, and in worker mode the run), from the environment;
- `specs`: what the nine tools look like (names, descriptions, input schemas, limits);
- `arguments`: checking a call's arguments against its tool's schema;
- `tools`: what each tool does (the handlers over the board) and the one dispatch, `call_tool`;
- `server`: serving them over stdio with the MCP SDK (`serve`, `run`);
- `__main__`: the command line, ``python -m worker.mcp_server``.

Start-up is what a worker's first model request waits for, so this package imports only cheap
things at the top: the MCP SDK when serving starts, and the board's SQLite layer
(sqlite_utils) on the first tool call, in the thread that runs board calls. See
bench/mcp_startup.py for the numbers. The package keeps its old module name so that every Codex
config already written (``python -m worker.mcp_server``) still starts it.
"""
