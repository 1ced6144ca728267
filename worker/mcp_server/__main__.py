"""``python -m worker.mcp_server [--db PATH]``: what Codex starts (see `worker.setup.codex`)."""

from __future__ import annotations

import argparse
import sys

from worker import env
from worker.mcp_server import server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.mcp_server",
        description="Serve the kanban tools over MCP (stdio). Worker mode when "
        f"{env.TASK} is set, orchestrator mode otherwise.",
    )
    parser.add_argument("--db", help="Board file. Default: $KANBAN_DB, else ~/.kanban/board.db.")
    return server.run(parser.parse_args(argv).db)


if __name__ == "__main__":
    sys.exit(main())
