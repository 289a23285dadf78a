"""The state back ends that the shared state tests run against: the one place to add one.

``tests/test_state.py`` and ``tests/test_state_queue.py`` run each behaviour test once per
entry of :data:`BACK_ENDS` (their ``backend`` fixture, or a parametrize over the names).
An entry says how to open the back end on a scratch folder of the test's own, and whether
it is ``durable``: whether a store opened again on the same folder sees what the last one
wrote, as a restarted process or a second replica does.

PostgreSQL (a later part of issue 12) adds one entry, ``"postgresql"``: its ``open`` makes
a schema named after the folder in the database ``USAGE_BOT_TEST_POSTGRESQL`` names and
opens the store on it, ``durable=True``; its ``marks`` skip it when that variable is unset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from usage_bot.state import StateStore
from usage_bot.state.memory import MemoryStore
from usage_bot.state.sqlite import SQLiteStore


@dataclass(frozen=True, slots=True)
class BackEnd:
    name: str
    open: Callable[[Path], Awaitable[StateStore]]
    durable: bool
    marks: tuple[pytest.MarkDecorator, ...] = ()

    async def again(self, store: StateStore, folder: Path) -> StateStore:
        """Another handle on the state ``store`` holds, as a second process would open it;
        the same store where there is no such thing (memory: tasks of one process)."""
        return await self.open(folder) if self.durable else store


async def _sqlite(folder: Path) -> StateStore:
    return await SQLiteStore.open(folder / "usage-bot.sqlite3")


async def _memory(folder: Path) -> StateStore:
    return MemoryStore()


BACK_ENDS: dict[str, BackEnd] = {
    "sqlite": BackEnd("sqlite", _sqlite, durable=True),
    "memory": BackEnd("memory", _memory, durable=False),
}


def params() -> list[object]:
    """The back ends as pytest parameters, each with its marks, ids their names."""
    return [pytest.param(b, id=name, marks=b.marks) for name, b in BACK_ENDS.items()]
