"""The state directory's lock: probes never make a starting agent think another one serves."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING

import pytest

from fabrichost.daemon import StateDirLock
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event
    from pathlib import Path


def _probe_until(state_dir: Path, probing: Event, stop: Event) -> None:
    probe = StateDirLock(state_dir)
    while not stop.is_set():
        probe.is_held_elsewhere()
        probing.set()


def test_an_agent_takes_the_lock_while_others_probe_it(tmp_path: Path) -> None:
    # `up`, `down` and `status` probe the lock by taking it for an instant; an agent starting
    # at that instant must not conclude that another agent serves the directory.
    context = multiprocessing.get_context("spawn")
    first = StateDirLock(tmp_path)  # the lock file exists: the probers probe it
    first.acquire()
    first.release()
    probing, stop = context.Event(), context.Event()
    probers = [
        context.Process(target=_probe_until, args=(tmp_path, probing, stop)) for _ in range(2)
    ]
    for prober in probers:
        prober.start()
    try:
        assert probing.wait(30), "the probers never probed"
        for _ in range(200):
            lock = StateDirLock(tmp_path)
            lock.acquire()
            lock.release()
    finally:
        stop.set()
        for prober in probers:
            prober.join(30)
            if prober.is_alive():
                prober.kill()
                prober.join(5)


def test_a_lock_held_by_another_agent_is_refused_naming_the_directory(tmp_path: Path) -> None:
    holder = StateDirLock(tmp_path)
    holder.acquire()
    try:
        with pytest.raises(FabricHostError, match="already serves the state directory"):
            StateDirLock(tmp_path).acquire()
    finally:
        holder.release()
