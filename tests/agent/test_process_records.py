"""Process records are grouped: every record made in one loop turn is one commit, written at the
end of that turn, in order, and before anything reads them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fabrichost.agent._persist import Persistence
from fabrichost.store import Store

if TYPE_CHECKING:
    from pathlib import Path


def _key(i: int) -> tuple[str, str, str, str, str]:
    return ("_Node_0", "fabric:/App", "Pkg", "", f"Code{i}")


def test_records_of_one_loop_turn_are_committed_together_at_its_end(tmp_path: Path) -> None:
    persist = Persistence(Store.open(tmp_path / "state.db"))
    reader = Store.open(tmp_path / "state.db")  # another connection: sees only what committed

    async def turn() -> tuple[int, int]:
        for i in range(3):
            persist.process_started(_key(i), 1000 + i, 1.0, tmp_path / f"{i}.lock", 1)
        persist.process_exited(_key(1))  # in order: Code1 started, then exited
        during = len(reader.processes())
        await asyncio.sleep(0)  # the turn ends: the flush runs
        return during, len(reader.processes())

    during, after = asyncio.run(turn())
    assert during == 0
    assert after == 2
    assert [row.code_package for row in reader.processes()] == ["Code0", "Code2"]
    persist.close()
    reader.close()


def test_a_read_or_a_close_commits_what_is_queued(tmp_path: Path) -> None:
    persist = Persistence(Store.open(tmp_path / "state.db"))

    async def turn() -> list[str]:
        persist.process_started(_key(0), 1000, 1.0, tmp_path / "0.lock", 1)
        return [row.code_package for row in persist.process_rows()]  # before the turn ends

    assert asyncio.run(turn()) == ["Code0"]

    async def queue_then_close() -> None:
        persist.process_started(_key(7), 1007, 1.0, tmp_path / "7.lock", 1)
        persist.close()  # the agent's shutdown, in the same turn

    asyncio.run(queue_then_close())
    reader = Store.open(tmp_path / "state.db")
    assert [row.code_package for row in reader.processes()] == ["Code0", "Code7"]
    reader.close()


def test_without_an_event_loop_a_record_is_written_at_once(tmp_path: Path) -> None:
    persist = Persistence(Store.open(tmp_path / "state.db"))
    reader = Store.open(tmp_path / "state.db")
    persist.process_started(_key(0), 1000, 1.0, tmp_path / "0.lock", 1)
    assert len(reader.processes()) == 1
    persist.close()
    reader.close()
