"""CodePackageSupervisor with real processes: setup/main cycle, backoff, health, stop, restart.

Every program is a Python script written to tmp_path (mode 0644: the supervisor must make it
executable, as SF does). A main process that must be running before the test acts reports on a
pipe the hooks hand it (``REPORT_FD``), the way the agent hands its channel socket. Every child
carries a marker in its environment; after each test, any marked process still alive is killed
and the test fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import sys
import uuid
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.agent._backoff import HealthState, RestartPolicy
from fabrichost.agent._console import list_log_files
from fabrichost.agent._entrypoint import resolve_program
from fabrichost.agent._process import (
    CodePackageSupervisor,
    EntryPoint,
    EntryPointStatus,
    LaunchSpec,
    SupervisorHooks,
)
from fabrichost.agent._proctree import ChildProcess
from fabrichost.errors import ProcessError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence
    from pathlib import Path

pytestmark = pytest.mark.anyio

FAST = RestartPolicy(base_delay=0.0, max_jitter=0.0)
DEADLINE = 15.0  # generous: only ever reached when something is broken
INCARNATION = "FABRICHOST_TEST_INCARNATION"  # unique per main process (see Reports)

# Prelude of every script: `report(text)` writes a line to the pipe the hooks passed, if any.
PRELUDE = """\
import os, signal, subprocess, sys, time
def report(text):
    os.write(int(os.environ["REPORT_FD"]), (text + "\\n").encode())
def journal(letter):
    with open(os.environ["JOURNAL"], "a") as f:
        f.write(letter)
"""


class Reports(SupervisorHooks):
    """Hooks giving each main incarnation its own report pipe, and recording what happened."""

    def __init__(self) -> None:
        self.prepared = 0
        self.started: list[int] = []
        self.exited: list[tuple[int, int]] = []
        self.setup_failures: list[int] = []
        self.pipes: list[int] = []  # read ends, one per started incarnation
        self._pending: tuple[int, int] | None = None
        self.on_exit: Callable[[int, int], None] | None = None

    def prepare_main(self) -> tuple[tuple[int, ...], Mapping[str, str]]:
        self._close_pending()
        self.prepared += 1
        read_fd, write_fd = os.pipe()
        self._pending = (read_fd, write_fd)
        return (write_fd,), {"REPORT_FD": str(write_fd), INCARNATION: uuid.uuid4().hex}

    def on_main_started(self, pid: int) -> None:
        assert self._pending is not None
        read_fd, write_fd = self._pending
        self._pending = None
        os.close(write_fd)
        self.pipes.append(read_fd)
        self.started.append(pid)

    def on_main_exited(self, pid: int, returncode: int) -> None:
        self.exited.append((pid, returncode))
        if self.on_exit is not None:
            self.on_exit(pid, returncode)

    def on_setup_failed(self, returncode: int) -> None:
        self.setup_failures.append(returncode)

    async def read(self, incarnation: int = -1) -> str:
        """The next report of a main incarnation (waits for it, with a deadline)."""
        await wait_readable(self.pipes[incarnation])
        return os.read(self.pipes[incarnation], 65536).decode()

    def _close_pending(self) -> None:
        if self._pending is not None:
            for fd in self._pending:
                os.close(fd)
            self._pending = None

    def close(self) -> None:
        self._close_pending()
        for fd in self.pipes:
            os.close(fd)
        self.pipes.clear()


async def wait_readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        async with asyncio.timeout(DEADLINE):
            await ready
    finally:
        loop.remove_reader(fd)


def gone(pid: int) -> bool:
    """True if ``pid`` is dead (a zombie, orphaned to a PID 1 that never reaps, counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(pid: int) -> None:
    """Wait on a pidfd until ``pid`` is dead."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await wait_readable(fd)
    finally:
        os.close(fd)


async def first_report(sup: CodePackageSupervisor, hooks: Reports) -> str:
    """Wait for the main process to run, then for its first report."""
    await sup.wait_started(DEADLINE)
    return await hooks.read()


class Harness:
    """Builds supervisors for one test and guarantees no process outlives it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.mark = uuid.uuid4().hex
        self.journal = tmp_path / "journal.txt"
        self.journal.touch()
        self.log_dir = tmp_path / "log"
        self.supervisors: list[CodePackageSupervisor] = []
        self.hooks: list[Reports] = []

    def script(self, name: str, body: str) -> Path:
        path = self.tmp_path / name
        path.write_text(f"#!{sys.executable} -S\n{PRELUDE}{body}\n")
        path.chmod(0o644)
        return path

    def entry(self, body: str, name: str = "main.py") -> EntryPoint:
        return EntryPoint(self.script(name, body), (), self.tmp_path)

    def supervisor(
        self,
        main: EntryPoint | str,
        *,
        setup: EntryPoint | str | None = None,
        policy: RestartPolicy = FAST,
        clock: Callable[[], float] | None = None,
        max_bytes: int = 20480 * 1024,
        retention: int = 2,
        env: Mapping[str, str] | None = None,
        hooks: Reports | None = None,
    ) -> tuple[CodePackageSupervisor, Reports]:
        if isinstance(main, str):
            main = self.entry(main)
        if isinstance(setup, str):
            setup = self.entry(setup, "setup.py")
        full_env = {**os.environ, "FABRICHOST_TEST_MARK": self.mark, "JOURNAL": str(self.journal)}
        spec = LaunchSpec(
            "Code",
            "SvcPkg",
            setup,
            main,
            {**full_env, **(env or {})},
            self.log_dir,
            console_retention=retention,
            console_max_bytes=max_bytes,
            leftover_marker=INCARNATION,
        )
        hooks = Reports() if hooks is None else hooks
        extra = {} if clock is None else {"clock": clock}
        sup = CodePackageSupervisor(spec, policy=policy, hooks=hooks, **extra)  # type: ignore[arg-type]
        self.supervisors.append(sup)
        self.hooks.append(hooks)
        return sup, hooks

    def leftovers(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.status() != psutil.STATUS_ZOMBIE and (
                    proc.environ().get("FABRICHOST_TEST_MARK") == self.mark
                ):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    async def close(self) -> None:
        try:
            for sup in self.supervisors:
                async with asyncio.timeout(DEADLINE):
                    await sup.stop(grace=0.5)
        finally:
            for hooks in self.hooks:
                hooks.close()
            left = self.leftovers()
            for proc in left:
                proc.kill()
            assert not left, f"processes left behind: {left}"


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        await h.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SLEEP_FOREVER = "report('ready')\ntime.sleep(600)"


# -- the setup / main cycle --------------------------------------------------------------------


async def test_setup_runs_before_main_and_again_before_every_restart(harness: Harness) -> None:
    sup, _ = harness.supervisor(main="journal('M')", setup="journal('S')")
    await sup.start()
    await sup.wait_until(lambda s: s.statistics.ExitCount >= 3, DEADLINE)
    await sup.stop()
    text = harness.journal.read_text()
    assert text.startswith("SMSMSM")
    assert "SS" not in text
    assert "MM" not in text
    setup = sup.setup_statistics
    assert setup is not None
    # The stop may interrupt one more setup run, which is not a failure.
    assert setup.ActivationCount - sup.statistics.ActivationCount in (0, 1)
    assert setup.ExitFailureCount == 0


async def test_start_returns_before_setup_finishes(harness: Harness) -> None:
    sup, hooks = harness.supervisor(main=SLEEP_FOREVER, setup="time.sleep(600)")
    await sup.start()
    assert sup.status is EntryPointStatus.PENDING
    await sup.wait_until(lambda s: s.setup_status is EntryPointStatus.STARTED, DEADLINE)
    assert sup.pid is None
    assert hooks.prepared == 0


async def test_failing_setup_is_retried_with_backoff_and_main_never_starts(
    harness: Harness,
) -> None:
    policy = RestartPolicy(base_delay=0.02, max_jitter=0.0)
    sup, hooks = harness.supervisor(main="journal('M')", setup="sys.exit(2)", policy=policy)
    await sup.start()
    await sup.wait_until(lambda s: s.next_activation_time is not None, DEADLINE)
    assert sup.setup_status is EntryPointStatus.PENDING
    await sup.wait_until(lambda s: len(hooks.setup_failures) >= 3, DEADLINE)
    await sup.stop()
    assert harness.journal.read_text() == ""
    assert hooks.setup_failures[:3] == [2, 2, 2]
    assert sup.statistics.ActivationCount == 0
    setup = sup.setup_statistics
    assert setup is not None
    assert setup.ExitFailureCount >= 3
    assert setup.LastExitCode == 2
    assert sup.health is HealthState.ERROR


@pytest.mark.parametrize("code", [0, 1])
async def test_main_is_restarted_after_any_exit(harness: Harness, code: int) -> None:
    sup, hooks = harness.supervisor(main=f"sys.exit({code})")
    await sup.start()
    await sup.wait_until(lambda s: s.statistics.ActivationCount >= 3, DEADLINE)
    stats, health = sup.statistics, sup.health  # before stop() ends one more run
    await sup.stop()
    assert [rc for _, rc in hooks.exited[:2]] == [code, code]  # the stop may end a third run
    if code == 0:
        assert stats.ExitFailureCount == 0
        assert stats.LastSuccessfulExitTime is not None
        assert health is HealthState.OK
    else:
        assert stats.ExitFailureCount >= 2
        assert stats.LastSuccessfulExitTime is None


async def test_failures_take_health_from_ok_to_warning_to_error(harness: Harness) -> None:
    sup, hooks = harness.supervisor(main="sys.exit(7)")
    seen: list[tuple[int, HealthState]] = []
    hooks.on_exit = lambda pid, rc: seen.append(
        (sup.statistics.ContinuousExitFailureCount, sup.health)
    )
    assert sup.health is HealthState.OK
    await sup.start()
    await sup.wait_until(lambda s: s.statistics.ExitCount >= 3, DEADLINE)
    stats = sup.statistics
    await sup.stop()
    assert seen[:3] == [(1, HealthState.WARNING), (2, HealthState.WARNING), (3, HealthState.ERROR)]
    assert stats.ExitCount == stats.ExitFailureCount == stats.ContinuousExitFailureCount
    assert stats.ActivationCount - stats.ExitCount in (0, 1)  # the next run may have begun
    assert stats.ActivationFailureCount == stats.ContinuousActivationFailureCount == 0
    assert stats.LastExitCode == 7
    assert stats.LastActivationTime is not None
    assert stats.LastExitTime is not None


async def test_failure_count_resets_after_a_quiet_interval(harness: Harness) -> None:
    clock = FakeClock()
    policy = RestartPolicy(base_delay=0.0, reset_after=100.0)
    # The first two incarnations crash, later ones stay up.
    main = """
count = len(open(os.environ["JOURNAL"]).read())
journal("M")
if count < 2:
    sys.exit(1)
report("ready")
time.sleep(600)
"""
    sup, hooks = harness.supervisor(main=main, policy=policy, clock=clock)
    await sup.start()
    await sup.wait_until(
        lambda s: s.statistics.ActivationCount == 3 and s.pid is not None, DEADLINE
    )
    assert await first_report(sup, hooks) == "ready\n"
    assert (sup.statistics.ContinuousExitFailureCount, sup.health) == (2, HealthState.WARNING)
    clock.now += 99.0
    assert (sup.statistics.ContinuousExitFailureCount, sup.health) == (2, HealthState.WARNING)
    clock.now += 1.0
    assert (sup.statistics.ContinuousExitFailureCount, sup.health) == (0, HealthState.OK)
    assert sup.statistics.ExitFailureCount == 2  # the totals stay
    # A crash after the quiet interval counts as the first of a new series.
    pid = await sup.wait_started(DEADLINE)
    os.kill(pid, signal.SIGKILL)
    await sup.wait_until(lambda s: s.statistics.ExitCount == 3, DEADLINE)
    assert sup.statistics.ContinuousExitFailureCount == 1
    assert sup.statistics.LastExitCode == -signal.SIGKILL


async def test_backoff_is_spent_before_main_and_instance_ids_grow(harness: Harness) -> None:
    policy = RestartPolicy(base_delay=0.02, max_jitter=0.0)
    sup, _ = harness.supervisor(
        main="journal('M'); sys.exit(1)", setup="journal('S')", policy=policy
    )
    ids: list[int] = []
    await sup.start()
    while len(ids) < 3:
        await sup.wait_until(lambda s: s.instance_id not in (0, *ids), DEADLINE)
        ids.append(sup.instance_id)
    await sup.wait_until(
        lambda s: s.status is EntryPointStatus.PENDING and s.next_activation_time is not None,
        DEADLINE,
    )
    await sup.stop()
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    main = sup.main_entry_point
    assert main.InstanceId == sup.instance_id
    assert main.ProcessId is None
    assert main.Status is EntryPointStatus.STOPPED
    assert main.EntryPointLocation.endswith("main.py")


# -- stopping ----------------------------------------------------------------------------------


async def test_stop_sends_sigint_first(harness: Harness) -> None:
    main = """
def bye(signum, frame):
    report("got SIGINT")
    sys.exit(0)
signal.signal(signal.SIGINT, bye)
report("ready")
time.sleep(600)
"""
    sup, hooks = harness.supervisor(main=main)
    await sup.start()
    assert await first_report(sup, hooks) == "ready\n"
    pid = sup.pid
    assert pid is not None
    await sup.stop(grace=DEADLINE)
    assert os.read(hooks.pipes[-1], 100) == b"got SIGINT\n"
    assert hooks.exited == [(pid, 0)]
    assert sup.status is EntryPointStatus.STOPPED
    assert sup.pid is None
    assert sup.statistics.ExitFailureCount == 0


async def test_stop_kills_a_process_that_ignores_sigint(harness: Harness) -> None:
    main = "signal.signal(signal.SIGINT, signal.SIG_IGN)\n" + SLEEP_FOREVER
    sup, hooks = harness.supervisor(main=main)
    await sup.start()
    assert await first_report(sup, hooks) == "ready\n"
    await sup.stop(grace=0.2)
    assert hooks.exited[-1][1] == -signal.SIGKILL
    assert sup.statistics.ContinuousExitFailureCount == 0  # we stopped it: not a failure
    assert sup.health is HealthState.OK


GRANDCHILDREN = """
signal.signal(signal.SIGINT, signal.SIG_IGN if os.environ.get("STUBBORN") else signal.SIG_DFL)
code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"
same_group = subprocess.Popen([sys.executable, "-S", "-c", code])
own_session = subprocess.Popen([sys.executable, "-S", "-c", code], start_new_session=True)
report(f"{same_group.pid} {own_session.pid}")
time.sleep(600)
"""


async def test_stop_kills_grandchildren_in_the_group_and_in_their_own_session(
    harness: Harness,
) -> None:
    sup, hooks = harness.supervisor(main=GRANDCHILDREN, env={"STUBBORN": "1"})
    await sup.start()
    grandchildren = [int(p) for p in (await first_report(sup, hooks)).split()]
    pid = sup.pid
    assert pid is not None
    await sup.stop(grace=0.2)
    assert all(gone(p) for p in [pid, *grandchildren])


async def test_stop_kills_stray_group_members_when_main_obeys_sigint(harness: Harness) -> None:
    sup, hooks = harness.supervisor(main=GRANDCHILDREN)
    await sup.start()
    same_group, own_session = (int(p) for p in (await first_report(sup, hooks)).split())
    await sup.stop(grace=DEADLINE)
    assert hooks.exited[-1][1] == -signal.SIGINT
    assert gone(same_group)
    # One that left the session is out of reach once its parent exited cleanly: documented.
    os.kill(own_session, signal.SIGKILL)
    await wait_gone(own_session)


async def test_a_crashed_main_leaves_no_stray_group_members(harness: Harness) -> None:
    main = """
code = "import time; time.sleep(600)"
child = subprocess.Popen([sys.executable, "-S", "-c", code])
report(str(child.pid))
sys.exit(3)
"""
    sup, hooks = harness.supervisor(main=main)
    await sup.start()
    await sup.wait_until(lambda s: len(hooks.pipes) >= 1, DEADLINE)
    stray = int(await hooks.read(0))
    await wait_gone(stray)
    await sup.wait_until(lambda s: s.statistics.ExitCount >= 2, DEADLINE)


async def test_what_an_exited_main_left_in_a_session_of_its_own_dies_before_the_restart(
    harness: Harness,
) -> None:
    main = """
code = "import time; time.sleep(600)"
child = subprocess.Popen([sys.executable, "-S", "-c", code], start_new_session=True)
report(str(child.pid))
sys.exit(3)
"""
    sup, hooks = harness.supervisor(main=main)
    await sup.start()
    await sup.wait_until(lambda s: len(hooks.pipes) >= 1, DEADLINE)
    stray = int(await hooks.read(0))
    await sup.wait_until(lambda s: len(hooks.started) >= 2, DEADLINE)
    assert gone(stray), "the next incarnation started beside its leftover"
    await sup.stop()


async def test_stop_is_idempotent_and_concurrent_callers_all_wait(harness: Harness) -> None:
    sup, hooks = harness.supervisor(main=SLEEP_FOREVER)
    await sup.start()
    await first_report(sup, hooks)
    await asyncio.gather(sup.stop(grace=0.5), sup.stop(grace=0.5))
    await sup.stop()
    assert sup.status is EntryPointStatus.STOPPED
    with pytest.raises(ProcessError, match="stopping"):
        await sup.wait_started(1.0)
    with pytest.raises(ProcessError, match="stopped"):
        await sup.wait_until(lambda s: s.pid is not None, 1.0)
    with pytest.raises(ProcessError, match="cannot start again"):
        await sup.start()
    assert await sup.restart() is False


async def test_stop_before_start_and_during_backoff(harness: Harness) -> None:
    never, _ = harness.supervisor(main=SLEEP_FOREVER)
    await never.stop()
    assert never.status is EntryPointStatus.STOPPED
    slow = RestartPolicy(base_delay=3600.0)
    sup, _ = harness.supervisor(main="sys.exit(1)", policy=slow)
    await sup.start()
    await sup.wait_until(lambda s: s.next_activation_time is not None, DEADLINE)
    async with asyncio.timeout(DEADLINE):
        await sup.stop()
    assert sup.next_activation_time is None
    assert sup.statistics.ActivationCount == 1


# -- restart -----------------------------------------------------------------------------------


async def test_restart_kills_the_tree_and_starts_again_at_once(harness: Harness) -> None:
    slow = RestartPolicy(base_delay=3600.0)  # a restart that waited for backoff would hang
    sup, hooks = harness.supervisor(
        main=GRANDCHILDREN, setup="journal('S')", policy=slow, env={"STUBBORN": "1"}
    )
    await sup.start()
    grandchildren = [int(p) for p in (await first_report(sup, hooks)).split()]
    first_pid, first_id = sup.pid, sup.instance_id
    assert first_pid is not None
    assert await sup.restart(instance_id=first_id + 1) is False  # not the current instance
    assert await sup.restart(instance_id=first_id) is True
    assert all(gone(p) for p in [first_pid, *grandchildren])
    await sup.wait_until(lambda s: len(hooks.pipes) == 2, DEADLINE)
    await hooks.read()  # the new incarnation's grandchildren, cleaned up by the harness
    assert sup.pid not in (None, first_pid)
    assert sup.instance_id > first_id
    assert harness.journal.read_text() == "SS"
    assert hooks.exited == [(first_pid, -signal.SIGKILL)]
    assert sup.statistics.ExitFailureCount == 0


async def test_restart_cuts_a_backoff_short(harness: Harness) -> None:
    slow = RestartPolicy(base_delay=3600.0)
    main = (
        "count = len(open(os.environ['JOURNAL']).read())\njournal('M')\n"
        "if count == 0:\n    sys.exit(1)\n" + SLEEP_FOREVER
    )
    sup, hooks = harness.supervisor(main=main, policy=slow)
    await sup.start()
    await sup.wait_until(lambda s: s.next_activation_time is not None, DEADLINE)
    assert await sup.restart() is True
    assert await first_report(sup, hooks) == "ready\n"
    assert harness.journal.read_text() == "MM"


# -- what reaches the child --------------------------------------------------------------------


async def test_pass_fds_and_env_reach_each_incarnation(harness: Harness) -> None:
    main = """
report(f"{os.environ['FROM_SPEC']} fd={os.environ['REPORT_FD']} {os.getpid() == os.getpgid(0)}")
journal("M")
if len(open(os.environ["JOURNAL"]).read()) < 2:
    sys.exit(0)
time.sleep(600)
"""
    sup, hooks = harness.supervisor(main=main, env={"FROM_SPEC": "hello"})
    await sup.start()
    await sup.wait_until(lambda s: len(hooks.pipes) == 2, DEADLINE)
    first, second = await hooks.read(0), await hooks.read(1)
    assert first.startswith("hello fd=")
    assert first.endswith(" True\n")
    assert second.startswith("hello fd=")
    assert hooks.prepared == 2
    assert len(hooks.started) == 2


async def test_console_output_lands_in_sf_named_files(harness: Harness) -> None:
    setup = "print('setup says hi'); print('setup warns', file=sys.stderr)"
    main = (
        "print('main out', flush=True)\nprint('main err', file=sys.stderr, flush=True)\n"
        + SLEEP_FOREVER
    )
    sup, hooks = harness.supervisor(main=main, setup=setup)
    await sup.start()
    await first_report(sup, hooks)
    await sup.stop()
    log = harness.log_dir
    assert (log / "Code_SvcPkg_S_0.out").read_text() == "setup says hi\n"
    assert (log / "Code_SvcPkg_S_0.err").read_text() == "setup warns\n"
    assert (log / "Code_SvcPkg_M_0.out").read_text() == "main out\n"
    # (followed by the KeyboardInterrupt traceback of the stop's SIGINT)
    assert (log / "Code_SvcPkg_M_0.err").read_text().startswith("main err\n")
    listed = [f.path.name for f in list_log_files(log, "Code", "SvcPkg")]
    assert sorted(listed) == sorted(p.name for p in log.iterdir())


async def test_console_files_rotate_by_size_and_keep_the_retention_count(
    harness: Harness,
) -> None:
    main = """
for i in range(10):
    sys.stdout.write(f"{i:03d}" + "x" * 1020 + "\\n")  # 1 KiB lines
sys.stdout.flush()
report("ready")
time.sleep(600)
"""
    sup, hooks = harness.supervisor(main=main, max_bytes=4096, retention=2)
    await sup.start()
    await first_report(sup, hooks)
    await sup.stop()
    files = sorted(harness.log_dir.glob("Code_SvcPkg_M_*.out"))
    assert [f.name for f in files] == ["Code_SvcPkg_M_1.out", "Code_SvcPkg_M_2.out"]
    assert [f.stat().st_size for f in files] == [4096, 2048]
    assert files[1].read_text().splitlines()[-1].startswith("009")


async def test_missing_program_is_an_activation_failure_naming_the_path(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    missing = harness.tmp_path / "no" / "such-program"
    policy = RestartPolicy(base_delay=0.01, max_jitter=0.0)
    sup, hooks = harness.supervisor(main=EntryPoint(missing, (), harness.tmp_path), policy=policy)
    with caplog.at_level(logging.WARNING):
        await sup.start()
        await sup.wait_until(lambda s: s.statistics.ActivationFailureCount >= 3, DEADLINE)
    await sup.stop()
    assert str(missing) in caplog.text
    stats = sup.statistics
    assert stats.ActivationCount == stats.ActivationFailureCount
    assert stats.ContinuousActivationFailureCount >= 3
    assert stats.LastSuccessfulActivationTime is None
    assert sup.health is HealthState.ERROR
    assert hooks.started == []


def test_resolve_program_names_the_path_and_makes_scripts_executable(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o640)
    assert resolve_program(EntryPoint("run.sh", (), tmp_path)) == str(script)
    assert script.stat().st_mode & 0o777 == 0o751
    with pytest.raises(ProcessError, match=str(tmp_path / "nope")):
        resolve_program(EntryPoint(tmp_path / "nope", (), tmp_path))
    with pytest.raises(ProcessError, match="not a file"):
        resolve_program(EntryPoint(tmp_path, (), tmp_path))


async def test_a_missing_working_folder_is_an_activation_failure(harness: Harness) -> None:
    entry = EntryPoint(harness.script("main.py", "pass"), (), harness.tmp_path / "gone")
    sup, _ = harness.supervisor(main=entry, policy=RestartPolicy(base_delay=0.01))
    await sup.start()
    await sup.wait_until(lambda s: s.statistics.ActivationFailureCount >= 1, DEADLINE)
    assert sup.health is HealthState.WARNING or sup.health is HealthState.ERROR
    assert stat.S_IMODE((harness.tmp_path / "main.py").stat().st_mode) & 0o111 == 0o111


async def test_hook_failures_are_logged_and_supervision_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    sup, hooks = harness.supervisor(main="sys.exit(1)")

    def broken(pid: int, returncode: int) -> None:
        raise RuntimeError("hook bug")

    hooks.on_exit = broken
    await sup.start()
    await sup.wait_until(lambda s: s.statistics.ExitCount >= 2, DEADLINE)
    assert "hook bug" in caplog.text


class HeldLaunch(Reports):
    """Starts the main process itself, as a fork server does, once the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def launch_main(self, argv: Sequence[str], **how: object) -> ChildProcess | None:
        self.entered.set()
        await self.release.wait()
        return ChildProcess.spawn(argv, **how)  # type: ignore[arg-type]


async def test_a_stop_during_an_awaited_start_stops_what_that_start_made(harness: Harness) -> None:
    hooks = HeldLaunch()
    sup, _ = harness.supervisor(SLEEP_FOREVER, hooks=hooks)
    await sup.start()
    async with asyncio.timeout(DEADLINE):
        await hooks.entered.wait()
    stopping = asyncio.ensure_future(sup.stop(grace=DEADLINE))
    # The stop finds no process yet (the start is awaited) and waits for the cycle to end.
    await sup.wait_until(lambda s: s.status is EntryPointStatus.STOPPED, DEADLINE)
    hooks.release.set()
    async with asyncio.timeout(DEADLINE):
        await stopping
    assert len(hooks.started) == 1
    # SIGINT within the grace: the script's sleep is interrupted, an exit the stop asked for.
    assert hooks.exited == [(hooks.started[0], -signal.SIGINT)]
    assert gone(hooks.started[0])
    assert sup.status is EntryPointStatus.STOPPED
