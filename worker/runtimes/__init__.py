"""Runtimes: how a task becomes a process. `get(name)` returns one; `NAMES` lists them."""

from __future__ import annotations

import importlib

from board import errors
from worker.runtimes import base

# name -> "module:class", imported only when used (the MCP server never needs them).
_REGISTRY = {
    "hermes": "worker.runtimes.hermes:HermesRuntime",
    "codex": "worker.runtimes.codex:CodexRuntime",
    "claude": "worker.runtimes.claude:ClaudeRuntime",
    "command": "worker.runtimes.command:CommandRuntime",
}
NAMES = tuple(_REGISTRY)


def get(name: str) -> base.Runtime:
    if name not in _REGISTRY:
        raise errors.InvalidInput(f"unknown runtime {name!r}; use one of: {', '.join(NAMES)}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
