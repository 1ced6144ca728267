"""Who is asking: a person or planning agent (operator), a worker's run, or a dispatcher.

Workers are fenced: everything a `Worker` changes is checked against its run's token and the
task's current live run (`fencing.check`). Operators are trusted with the whole board.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Operator:
    name: str = "operator"

    @property
    def label(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class Worker:
    task_id: int
    run_id: int
    token: str = dataclasses.field(repr=False)

    @property
    def label(self) -> str:
        return f"run {self.run_id}"


@dataclasses.dataclass(frozen=True)
class Dispatcher:
    id: int | None = None

    @property
    def label(self) -> str:
        return "dispatcher" if self.id is None else f"dispatcher {self.id}"


Actor = Operator | Worker | Dispatcher
OPERATOR = Operator()
GOVERNOR = Operator("governor")  # budgets and the runaway governor
DISPATCHER = Dispatcher()
