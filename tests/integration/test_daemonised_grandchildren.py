"""A guest's daemonised grandchild goes when its main process goes, however that happens.

Each guest's ``run.sh`` starts ``sleep <Greeting>`` in a session of its own, as a daemon does
(``setsid`` in a subshell that exits at once, so it is an orphan), then becomes ``sleep
1<Greeting>``. ``Greeting`` is an application parameter, unique per test and application, so a
finalizer can kill exactly the grandchildren a test made even when the agent failed to.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.wire import ActivationMode, ServiceDescription, ServiceKind
from tests.integration.conftest import write_guest_package

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

DEADLINE = 60.0  # generous: a shared activation alone waits 10 s before it is deactivated
RUN_SH = (
    "#!/bin/sh\n"
    '(setsid sh -c "exec sleep $GREETING" </dev/null >/dev/null 2>&1 &)\n'
    'exec sleep "1$GREETING"\n'
)


def _sleepers(arg: str) -> list[psutil.Process]:
    """Live ``sleep <arg>`` processes."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cmdline"] == ["sleep", arg] and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"still not {what} after {deadline:.0f} s"
        time.sleep(0.05)


@pytest.fixture
def new_arg() -> Iterator[Callable[[], str]]:
    """Unique sleep arguments; every ``sleep`` with one of them is killed at the end."""
    args: list[str] = []

    def make() -> str:
        args.append(str(random.randrange(10**8, 10**9)))
        return args[-1]

    yield make
    for arg in args:
        for a in (arg, f"1{arg}"):
            for proc in _sleepers(a):
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def _deploy(cluster: Cluster, tmp_path: Path, app: str, arg: str) -> None:
    root = tmp_path / "GuestApp"
    if not root.exists():
        write_guest_package(root, script="")
        (root / "GuestPkg" / "Code" / "run.sh").write_text(RUN_SH)
    cluster.client.deploy(root, app, {"Greeting": arg})


def _web(app: str, mode: ActivationMode = ActivationMode.SHARED_PROCESS) -> ServiceDescription:
    return ServiceDescription(
        name=f"{app}/Web",
        type_name="GuestType",
        kind=ServiceKind.STATELESS,
        instance_count=1,
        activation_mode=mode,
    )


def _grandchild(arg: str) -> psutil.Process:
    """The one running ``sleep <arg>``, once it has started."""
    _wait_for(lambda: len(_sleepers(arg)) == 1, "started")
    (proc,) = _sleepers(arg)
    return proc


def _dead(proc: psutil.Process) -> bool:
    """Dead, a zombie included (reaping it is checked on its own)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _main_pid(cluster: Cluster, app: str) -> int | None:
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", app)
    pid = code_package["MainEntryPoint"]["ProcessId"]
    return int(pid) if pid else None


@pytest.mark.timeout(180)
def test_a_deleted_services_grandchild_is_killed_and_reaped_and_no_other(
    cluster: Cluster, tmp_path: Path, new_arg: Callable[[], str]
) -> None:
    doomed_arg, kept_arg = new_arg(), new_arg()
    _deploy(cluster, tmp_path, "fabric:/G1", doomed_arg)
    _deploy(cluster, tmp_path, "fabric:/G2", kept_arg)
    for app in ("fabric:/G1", "fabric:/G2"):
        cluster.client.create_service(app, _web(app), wait=True, wait_timeout=30)
    doomed, kept = _grandchild(doomed_arg), _grandchild(kept_arg)

    cluster.client.delete_service("fabric:/G1/Web")
    _wait_for(lambda: _dead(doomed), "killed")
    # The agent adopted it, so the agent reaps it: no zombie is left for a PID 1 that may not.
    _wait_for(lambda: not psutil.pid_exists(doomed.pid), "reaped", deadline=10.0)
    assert not _dead(kept), "another application's grandchild was killed"
    assert _main_pid(cluster, "fabric:/G2") is not None


def test_an_exclusive_services_delete_returns_once_its_grandchild_is_dead(
    cluster: Cluster, tmp_path: Path, new_arg: Callable[[], str]
) -> None:
    arg = new_arg()
    _deploy(cluster, tmp_path, "fabric:/G", arg)
    cluster.client.create_service(
        "fabric:/G", _web("fabric:/G", ActivationMode.EXCLUSIVE_PROCESS), wait=True, wait_timeout=30
    )
    grandchild = _grandchild(arg)
    cluster.client.delete_service("fabric:/G/Web")  # returns once the activation is stopped
    assert _dead(grandchild)


def test_a_code_package_restart_kills_the_old_grandchild_first(
    cluster: Cluster, tmp_path: Path, new_arg: Callable[[], str]
) -> None:
    arg = new_arg()
    _deploy(cluster, tmp_path, "fabric:/G", arg)
    cluster.client.create_service("fabric:/G", _web("fabric:/G"), wait=True, wait_timeout=30)
    old = _grandchild(arg)
    old_main = _main_pid(cluster, "fabric:/G")
    cluster.client.restart_code_package("_Node_0", "fabric:/G", "GuestPkg", "Code")
    _wait_for(lambda: _main_pid(cluster, "fabric:/G") not in (None, old_main), "restarted")
    assert _dead(old), "the new incarnation started beside the old one's grandchild"
    new = _grandchild(arg)  # the new incarnation made its own, and holds the slot alone
    assert new.pid != old.pid


def test_a_crashed_main_process_has_its_grandchild_killed_before_it_restarts(
    cluster: Cluster, tmp_path: Path, new_arg: Callable[[], str]
) -> None:
    arg = new_arg()
    _deploy(cluster, tmp_path, "fabric:/G", arg)
    cluster.client.create_service("fabric:/G", _web("fabric:/G"), wait=True, wait_timeout=30)
    old = _grandchild(arg)
    old_main = _main_pid(cluster, "fabric:/G")
    assert old_main is not None
    os.kill(old_main, signal.SIGKILL)
    _wait_for(lambda: _main_pid(cluster, "fabric:/G") not in (None, old_main), "restarted")
    assert _dead(old)


def test_a_node_stop_kills_its_grandchildren(
    cluster: Cluster, tmp_path: Path, new_arg: Callable[[], str]
) -> None:
    arg = new_arg()
    _deploy(cluster, tmp_path, "fabric:/G", arg)
    cluster.client.create_service("fabric:/G", _web("fabric:/G"), wait=True, wait_timeout=30)
    grandchild = _grandchild(arg)
    cluster.client.stop_node("_Node_0")
    _wait_for(lambda: _dead(grandchild), "killed")
