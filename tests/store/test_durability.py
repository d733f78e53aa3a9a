"""Durability with real processes: SIGKILL at random moments, and two processes on one file.

A child process writes in a loop and prints each acknowledged write (after the call returned,
that is after its commit) to stdout. The parent kills it with SIGKILL at a random moment,
reopens the file and checks that every acknowledged write is there, that no transaction is
there in part, and that the file passes ``PRAGMA integrity_check``. The RNG is seeded, so a
failing round can be replayed.
"""

from __future__ import annotations

import random
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

from fabrichost.store import Store

from .helpers import app_type

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ROUNDS = 20
SEED = 20240611

# Each loop: draw a generation; add an instance carrying it; then, in one transaction, an
# application, its service, two partitions and a replica. Every line is printed only after
# the write returned. The first round's child also creates the file (and may die doing so).
# Each acknowledgement is one write(2) of a whole line: print() with several arguments is
# several writes when PYTHONUNBUFFERED is set (as in CI), and a SIGKILL between them would
# leave a torn line such as "I" that names no write at all.
WRITER = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path
    from fabrichost.store import (ApplicationRow, ApplicationTypeRow, InstanceRow, InstanceStatus,
        PartitionRow, ReplicaRow, ServiceRow, Store, StoreConflict)

    def ack(*words):
        os.write(1, (" ".join(map(str, words)) + "\\n").encode())

    path, prefix = Path(sys.argv[1]), sys.argv[2]
    store = Store.open(path)
    try:
        store.add_application_type(ApplicationTypeRow("T", "1", "d", "/img"))
    except StoreConflict:
        pass
    ack("open")
    i = 0
    while True:
        key = f"{prefix}-{i}"
        gen = store.next_generation()
        ack("G", gen)
        store.add_instance(InstanceRow(key, "F", "fabric:/A", "fabric:/A/S",
            InstanceStatus.RUNNING, "null", None, None, gen, float(i), float(i), key))
        ack("I", key)
        app, svc = f"fabric:/{key}", f"fabric:/{key}/S"
        with store.transaction():
            store.add_application(ApplicationRow(app, "T", "1", f"T_{key}", "{}", 1.0))
            store.add_service(ServiceRow(svc, app, "{}", 1.0), [
                PartitionRow(f"{key}/p0", svc, 0, "Named", "a"),
                PartitionRow(f"{key}/p1", svc, 1, "Named", "b")])
            store.put_replica(ReplicaRow(gen, f"{key}/p1", "_Node_0", "Primary", "", gen))
        ack("A", app)
        i += 1
    """
)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Children a test starts; any still running at the end is killed and reaped."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _readline(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output from the child within {timeout}s"
    return proc.stdout.readline()


def _kill_at_random(proc: subprocess.Popen[str], rng: random.Random) -> list[str]:
    """Let the child acknowledge a random number of writes, kill it, return every ack."""
    assert proc.stdout is not None
    acked: list[str] = []
    wanted = rng.choice([0, rng.randint(1, 10), rng.randint(10, 120)])
    while len(acked) < wanted:
        line = _readline(proc)
        if not line:
            break
        acked.append(line)
    time.sleep(rng.uniform(0, 0.005 if wanted else 0.15))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # What the child printed before it died was acknowledged too.
    acked.extend(proc.stdout.read().splitlines(keepends=True))
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    return [line.strip() for line in acked if line.strip()]


def _check_round(path: Path, acked: list[str]) -> int:
    """Every acknowledged write is there and every transaction whole; return acks checked."""
    with Store.open(path) as store:
        assert store.integrity_check() == []
        instances = {row.instance_id: row for row in store.instances()}
        apps = {row.name for row in store.applications()}
        services = {row.name for row in store.services()}
        partitions = {row.id for row in store.partitions()}
        replicas = {row.partition_id for row in store.replicas()}
        generations = [int(line.split()[1]) for line in acked if line.startswith("G ")]
        for line in acked:
            kind, _, value = line.partition(" ")
            if kind == "I":
                assert instances[value].request_id == value
            elif kind == "A":
                assert value in apps
        for app in apps:  # no transaction is visible in part
            key = app.removeprefix("fabric:/")
            assert f"{app}/S" in services
            assert {f"{key}/p0", f"{key}/p1"} <= partitions
            assert f"{key}/p1" in replicas
        if generations:
            assert store.next_generation() > max(generations)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    return sum(1 for line in acked if line[:2] in ("G ", "I ", "A "))


def test_sigkill_at_random_moments_loses_no_acknowledged_write(
    db_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    rng = random.Random(SEED)
    checked = 0
    for round_ in range(ROUNDS):
        proc = _python(WRITER, str(db_path), f"r{round_}")
        processes.append(proc)
        acked = _kill_at_random(proc, rng)
        checked += _check_round(db_path, acked)
    assert checked > ROUNDS  # the rounds did acknowledge writes, not only die at startup


LOCKED_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fabrichost.errors import StoreError
    from fabrichost.store import Store

    store = Store.open(Path(sys.argv[1]), busy_timeout=float(sys.argv[2]))
    print("opened", flush=True)
    try:
        store.set_node("_Node_child", True)
    except StoreError as exc:
        print("failed", exc, flush=True)
    else:
        print("written", flush=True)
    store.close()
    """
)


def test_a_second_process_waits_for_the_write_lock(
    db_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    with Store.open(db_path) as store:
        with store.transaction():
            store.set_node("_Node_parent", True)
            child = _python(LOCKED_WRITER, str(db_path), "10")
            processes.append(child)
            assert _readline(child) == "opened\n"
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 0.3)
            assert not ready, "the child wrote while the parent held the write lock"
        assert _readline(child) == "written\n"
        assert child.wait(timeout=10) == 0
        assert store.nodes() == {"_Node_child": True, "_Node_parent": True}
        assert store.integrity_check() == []


def test_a_write_lock_held_past_the_busy_timeout_is_a_store_error(
    db_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    with Store.open(db_path) as store, store.transaction():
        store.set_node("_Node_parent", True)
        child = _python(LOCKED_WRITER, str(db_path), "0.2")
        processes.append(child)
        assert _readline(child) == "opened\n"
        line = _readline(child)
        assert line.startswith("failed set_node")
        assert "database is locked" in line
        assert str(db_path) in line
    assert child.wait(timeout=10) == 0


CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fabrichost.store import InstanceRow, InstanceStatus, Store

    with Store.open(Path(sys.argv[1]), busy_timeout=10) as store:
        for i in range(200):
            gen = store.next_generation()
            store.add_instance(InstanceRow(f"{sys.argv[2]}-{i}", "F", "a", "s",
                InstanceStatus.PENDING, "null", None, None, gen, 0.0, 0.0))
    """
)


def test_two_processes_writing_at_once_share_one_generation_sequence(
    db_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    with Store.open(db_path) as store:
        store.add_application_type(app_type())  # the file exists before the writers race
    children = [_python(CONCURRENT_WRITER, str(db_path), name) for name in ("a", "b")]
    processes.extend(children)
    for child in children:
        assert child.wait(timeout=20) == 0, child.stderr.read() if child.stderr else ""
    with Store.open(db_path) as store:
        rows = store.instances()
        assert len(rows) == 400
        assert sorted(row.generation for row in rows) == list(range(1, 401))
        assert store.integrity_check() == []
