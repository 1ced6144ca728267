"""Checking a tool call's arguments against its tool's schema, with messages a model can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from board import errors
from worker.mcp_server import specs


def check(spec: specs.ToolSpec, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate `arguments` against `spec`'s schema, with messages a model can act on.

    ``null`` counts as absent; a single string is accepted where a list of strings is expected.
    """
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise errors.InvalidInput(f"{spec.name} takes an object of named arguments")
    args = {k: v for k, v in arguments.items() if v is not None}
    names = ", ".join(spec.properties) or "none"
    for key in args:
        if key not in spec.properties:
            raise errors.InvalidInput(
                f"{spec.name} has no argument {key!r}; its arguments: {names}"
            )
    for key in spec.required:
        if key not in args:
            raise errors.InvalidInput(f"{spec.name} needs the argument {key!r}")
    for key, value in args.items():
        args[key] = _check_value(spec.name, key, spec.properties[key], value, key in TASK_ARGS)
    return args


TASK_ARGS = frozenset({"task_id", "parent", "blocker", "blocked", "after"})


def _check_value(
    tool: str, key: str, schema: Mapping[str, Any], value: Any, task_id: bool = False
) -> Any:
    kind = schema["type"]
    where = f"{tool}: {key!r}"
    if kind == "string":
        if task_id and isinstance(value, int) and not isinstance(value, bool):
            return value  # a bare task number; ids.parse accepts it
        if not isinstance(value, str):
            raise errors.InvalidInput(f"{where} must be a string, not {type(value).__name__}")
        if "enum" in schema and value not in schema["enum"]:
            raise errors.InvalidInput(
                f"{where} must be one of: {', '.join(schema['enum'])} (got {value!r})"
            )
        return value
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise errors.InvalidInput(f"{where} must be a whole number, not {value!r}")
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise errors.InvalidInput(f"{where} must be between {low} and {high} (got {value})")
        return value
    if kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise errors.InvalidInput(f"{where} must be a number, not {value!r}")
        if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
            raise errors.InvalidInput(f"{where} must be greater than {schema['exclusiveMinimum']}")
        return value
    if kind == "array":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise errors.InvalidInput(f'{where} must be a list of strings, e.g. ["t_12"]')
        return [
            _check_value(tool, f"{key}[{i}]", schema["items"], v, task_id)
            for i, v in enumerate(value)
        ]
    raise AssertionError(f"unsupported schema type {kind}")  # pragma: no cover - our own schemas
