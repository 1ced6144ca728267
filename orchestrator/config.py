"""The dispatcher's settings: the one owner of ``~/.kanban/config.toml``.

Precedence: command-line options, then environment variables (``KANBAN_MAX_WORKERS``...),
then the config file (``$KANBAN_CONFIG``, else ``~/.kanban/config.toml``), then defaults.
Errors name the file and the key.

Example ``~/.kanban/config.toml``::

    [dispatch]
    max_workers = 4
    stall_timeout = 600
    worktree_root = "~/kanban-worktrees"
    branch_prefix = "kanban/"
    port_range = "20000-29999"

    [runtimes]
    hermes_bin = "/opt/hermes/bin/hermes"
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from board import errors, records, tasks
from worker.runtimes import base


@dataclasses.dataclass(frozen=True)
class Price:
    """Dollars per million tokens of one model (``[prices."MODEL"]`` in the config)."""

    input: float
    output: float
    cached_input: float | None = None  # default: the input price

    def cost(self, used: records.Usage) -> float:
        cached = self.input if self.cached_input is None else self.cached_input
        fresh = max(used.input_tokens - used.cached_input_tokens, 0)
        return (
            fresh * self.input
            + used.cached_input_tokens * cached
            + used.output_tokens * self.output
        ) / 1_000_000


def priced(used: records.Usage, prices: Mapping[str, Price]) -> tuple[records.Usage, str | None]:
    """`used` with its cost, and where the cost came from: the agent's own figure ("agent"),
    else the price table for its model ("prices"), else none (None)."""
    if used.cost_usd is not None:
        return used, "agent"
    price = prices.get(used.model or "")
    if price is None or used.tokens == 0:
        return used, None
    return dataclasses.replace(used, cost_usd=price.cost(used)), "prices"


@dataclasses.dataclass(frozen=True)
class Settings:
    max_workers: int = 4
    stall_timeout: float = 900.0  # no heartbeat and no output for this long: stalled
    kill_grace: float = 5.0  # SIGTERM, then SIGKILL after this
    report_grace: float = 60.0  # a worker that reported may take this long to exit
    retry_delay: float = 10.0  # first retry after about this long, doubling each time
    retry_max_delay: float = 900.0
    rate_limit_delay: float = 60.0
    poll_interval: float = 5.0  # fallback re-read of the board when no wake-up arrives
    lease: float = 900.0
    worktree_root: Path = Path("~/.kanban/worktrees")
    scratch_root: Path = Path("~/.kanban/scratch")
    logs_dir: Path | None = None  # default: `logs/` beside the board
    branch_prefix: str = "kanban/"
    # Ports handed to running tasks (a repository's ``ports``), and where their holds live.
    port_range: tuple[int, int] = (20000, 29999)
    ports_dir: Path | None = None  # default: `orchestrator.ports.default_dir()`
    # The board's tool server exits after this long without a live run (started on demand).
    tool_server_idle_exit: float = 600.0
    # An agent whose model has not answered once this long after it started is stuck.
    startup_timeout: float = 180.0
    # Where this host keeps its clone of each remote repository (tasks whose --repo is a URL).
    clones_root: Path = Path("~/.kanban/clones")
    # A dispatcher on another host that has not beaten for this long is presumed gone (its
    # runs are adopted once their leases have expired too). Hosts' clocks must agree well
    # within it.
    host_stale_after: float = 60.0
    # Dollars per million tokens, by model: {"gpt-5": Price(...)}; for agents that report
    # tokens but no cost.
    prices: Mapping[str, Price] = dataclasses.field(default_factory=dict)
    limits: tasks.Limits = dataclasses.field(default_factory=tasks.Limits)
    runtimes: base.Settings = dataclasses.field(default_factory=base.Settings)

    def with_overrides(self, **values: Any) -> Settings:
        given = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(self, **given)


_DISPATCH_KEYS: dict[str, type | str] = {
    "max_workers": int,
    "stall_timeout": float,
    "kill_grace": float,
    "report_grace": float,
    "retry_delay": float,
    "retry_max_delay": float,
    "rate_limit_delay": float,
    "poll_interval": float,
    "lease": float,
    "worktree_root": Path,
    "scratch_root": Path,
    "logs_dir": Path,
    "branch_prefix": str,
    "port_range": "port range",
    "ports_dir": Path,
    "tool_server_idle_exit": float,
    "startup_timeout": float,
    "clones_root": Path,
    "host_stale_after": float,
}
_LIMIT_KEYS: dict[str, type | str] = {
    "max_depth": int,
    "max_children": int,
    "runs_per_hour": int,
    "max_created_per_run": int,
    "max_subtree": int,
    "daily_tokens": int,
    "daily_usd": float,
}
_PRICE_KEYS: dict[str, type | str] = {"input": float, "cached_input": float, "output": float}
_RUNTIME_KEYS = {
    "hermes_bin": str,
    "codex_bin": str,
    "claude_bin": str,
    "hermes_home": str,
    "codex_home": str,
}


def config_path() -> Path:
    env = os.environ.get("KANBAN_CONFIG")
    return Path(env).expanduser() if env else Path.home() / ".kanban" / "config.toml"


def _port_range(value: Any, where: str) -> tuple[int, int]:
    """``"20000-29999"`` (or ``[20000, 29999]`` in the file): two ports, low to high."""
    parts = value.split("-") if isinstance(value, str) else value
    try:
        low, high = (int(part) for part in parts)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(
            f'{where}: {value!r} is not a port range; write it as "20000-29999"'
        ) from exc
    if not 1024 <= low <= high <= 65535:
        raise errors.InvalidInput(
            f"{where}: {value!r} must be two ports from 1024 to 65535, the lower first"
        )
    return low, high


def _convert(value: Any, kind: type | str, where: str) -> Any:
    if kind == "port range":
        return _port_range(value, where)
    assert isinstance(kind, type)
    try:
        if kind is int and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise TypeError
        if kind is float and isinstance(value, bool):
            raise TypeError
        converted = kind(value)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"{where}: {value!r} is not a valid {kind.__name__}") from exc
    # TOML and float() accept inf and nan; no setting means "forever" or "not a number".
    if kind is float and not math.isfinite(converted):
        raise errors.InvalidInput(f"{where}: {value!r} is not a finite number of seconds")
    if "\0" in str(converted):  # a path or program with a NUL can never be used
        raise errors.InvalidInput(f"{where}: contains a NUL byte (\\0); remove it")
    return converted


def _section(
    data: Mapping[str, Any], name: str, keys: Mapping[str, type | str], path: Path
) -> dict:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise errors.InvalidInput(f"{path}: [{name}] must be a table")
    unknown = set(section) - set(keys)
    if unknown:
        raise errors.InvalidInput(
            f"{path}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(keys)}"
        )
    return {k: _convert(v, keys[k], f"{path} [{name}] {k}") for k, v in section.items()}


def _from_env() -> tuple[dict, dict]:
    dispatch, runtime = {}, {}
    for key, kind in _DISPATCH_KEYS.items():
        name = f"KANBAN_{key.upper()}"
        if name in os.environ:
            dispatch[key] = _convert(os.environ[name], kind, f"${name}")
    for key in _RUNTIME_KEYS:
        name = f"KANBAN_{key.upper()}"
        if os.environ.get(name):
            runtime[key] = os.environ[name]
    return dispatch, runtime


def load(path: Path | None = None) -> Settings:
    """Settings from the config file and the environment (command-line options come later)."""
    path = path or config_path()
    data: dict[str, Any] = {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise errors.InvalidInput(f"{path} is not valid TOML ({exc}); fix or remove it") from exc
    # [notify] is read by `orchestrator.notify` (the dispatcher's notifier).
    unknown = set(data) - {"dispatch", "limits", "runtimes", "prices", "notify"}
    if unknown:
        raise errors.InvalidInput(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}; "
            "known: [dispatch], [limits], [runtimes], [prices], [notify]"
        )
    dispatch = _section(data, "dispatch", _DISPATCH_KEYS, path)
    limits = _section(data, "limits", _LIMIT_KEYS, path)
    runtime = _section(data, "runtimes", _RUNTIME_KEYS, path)
    env_dispatch, env_runtime = _from_env()
    dispatch.update(env_dispatch)
    runtime.update(env_runtime)
    settings = Settings(
        **dispatch,
        limits=tasks.Limits(**limits),
        runtimes=base.Settings(**runtime),
        prices=_prices(data, path),
    )
    return resolve(settings)


def _prices(data: Mapping[str, Any], path: Path) -> dict[str, Price]:
    """``[prices."gpt-5"] input = 1.25, cached_input = 0.125, output = 10.0`` (per 1M)."""
    table = data.get("prices", {})
    if not isinstance(table, dict):
        raise errors.InvalidInput(f"{path}: [prices] must be a table of models")
    found = {}
    for model, entry in table.items():
        name = f'prices."{model}"'
        fields = _section({name: entry}, name, _PRICE_KEYS, path)
        if not isinstance(entry, dict) or "input" not in fields or "output" not in fields:
            raise errors.InvalidInput(
                f'{path}: [prices."{model}"] needs input and output, in dollars per million '
                "tokens (cached_input is optional)"
            )
        if any(value < 0 for value in fields.values()):
            raise errors.InvalidInput(f'{path}: [prices."{model}"]: prices cannot be negative')
        found[model] = Price(**fields)
    return found


def resolve(settings: Settings) -> Settings:
    """Expand ``~`` in paths and check ranges."""
    if settings.max_workers < 1:
        raise errors.InvalidInput("max_workers must be at least 1")
    limits = settings.limits
    for name in ("runs_per_hour", "max_created_per_run", "max_subtree"):
        if getattr(limits, name) < 1:
            raise errors.InvalidInput(f"[limits] {name} must be at least 1")
    tasks.check_budget(records.Budget(tokens=limits.daily_tokens, usd=limits.daily_usd))
    for name in (
        "stall_timeout",
        "kill_grace",
        "retry_delay",
        "poll_interval",
        "lease",
        "startup_timeout",
        "host_stale_after",
    ):
        if getattr(settings, name) <= 0:
            raise errors.InvalidInput(f"{name} must be a positive number of seconds")
    return dataclasses.replace(
        settings,
        worktree_root=Path(settings.worktree_root).expanduser(),
        scratch_root=Path(settings.scratch_root).expanduser(),
        clones_root=Path(settings.clones_root).expanduser(),
        logs_dir=Path(settings.logs_dir).expanduser() if settings.logs_dir else None,
        ports_dir=Path(settings.ports_dir).expanduser() if settings.ports_dir else None,
    )
