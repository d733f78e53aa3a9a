"""Supervising one code package: its setup and main entry points as real OS processes.

Usage, on the agent's event loop::

    spec = LaunchSpec("Code", "SvcPkg", setup=None,
                      main=EntryPoint(Path("/pkg/Code/run.sh"), ("--port", "8080"), work_dir),
                      env=env, log_dir=app_log_dir)
    supervisor = CodePackageSupervisor(spec, policy=RestartPolicy(), hooks=my_hooks)
    await supervisor.start()                 # returns at once; the cycle runs in its own task
    pid = await supervisor.wait_started(timeout=10)
    await supervisor.restart()               # Restart-ServiceFabricDeployedCodePackage
    await supervisor.stop(grace=5.0)         # SIGINT, grace, SIGKILL of the whole tree

Theory of operation (Service Fabric 6.4, ``CodePackage.cpp``). One task runs the cycle: start the
SetupEntryPoint and wait for it; exit 0 starts the EntryPoint, anything else starts the setup
again. Any exit of the EntryPoint, even 0, starts the cycle again from the setup. Before every
start the entry point waits ``policy.delay(its continuous failures)`` (SF computes the due time
per entry point, from its own statistics), so after a crash of the main entry point the setup runs
again at once and the backoff is spent before the main one. A start that fails (missing program)
counts as an activation failure and is retried with the same backoff; nothing escapes the task.
:meth:`restart` skips the backoff; :meth:`stop` ends the cycle for good.

Exits come from the kernel (see ``_proctree``); a crash is seen, reaped, and the next start
begun within one event-loop turn when the backoff is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fabrichost.agent._console import ConsoleRedirector, console_prefix, open_console
from fabrichost.agent._entrypoint import (
    EntryPoint,
    EntryPointInfo,
    EntryPointRecord,
    EntryPointStatistics,
    EntryPointStatus,
    LaunchSpec,
    SupervisorHooks,
    resolve_program,
)
from fabrichost.agent._proctree import ChildProcess
from fabrichost.errors import FabricHostError, ProcessError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fabrichost.agent._backoff import HealthState, RestartPolicy

__all__ = (
    "CodePackageSupervisor",
    "EntryPoint",
    "EntryPointInfo",
    "EntryPointStatistics",
    "EntryPointStatus",
    "LaunchSpec",
    "SupervisorHooks",
)

log = logging.getLogger(__name__)

# SF: a node-wide sequence seeded with DateTime::Now().Ticks, so ids never repeat across runs.
_instance_ids = itertools.count(time.time_ns() // 100)
_DRAIN_TIMEOUT = 1.0  # console pipes still held open by something we could not kill
# A start that failed (missing program) is retried no faster than this even with a zero
# backoff: a failing spawn takes microseconds, and retrying it in a loop would starve the agent.
_ACTIVATION_RETRY_FLOOR = 0.05


class _NoHooks(SupervisorHooks):
    pass


def _console_of(spec: LaunchSpec, *, setup: bool) -> tuple[int, int, list[ConsoleRedirector]]:
    """Pipes for an entry point's stdout and stderr, drained into its rotated console files."""
    assert spec.log_dir is not None
    prefix = console_prefix(spec.code_package_name, spec.service_package_name, setup=setup)
    try:
        return open_console(
            spec.log_dir,
            prefix,
            max_bytes=spec.console_max_bytes,
            retention=spec.console_retention,
        )
    except OSError as exc:  # e.g. out of file descriptors: a failure to retry, not a crash
        raise ProcessError(f"cannot open the console files in {spec.log_dir}: {exc}") from exc


async def _start(hooks: SupervisorHooks | None, argv: list[str], **how: Any) -> ChildProcess:
    """As ``hooks`` start the main process (a fork server), else spawned (a setup: None)."""
    child = None if hooks is None else await hooks.launch_main(argv, **how)
    return child if child is not None else ChildProcess.spawn(argv, **how)


class CodePackageSupervisor:
    """Runs one code package's entry points as OS processes, restarting them as SF does.

    Args:
        spec: what to run.
        policy: backoff, failure-count reset and health thresholds.
        hooks: the owner's callbacks; default no-ops.
        rng: random source of the backoff jitter (seed it in tests).
        clock: monotonic seconds, used for the quiet interval after which the continuous
            failure count resets (inject a fake one in tests).

    All methods must be called on the event loop that called :meth:`start`.
    """

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        policy: RestartPolicy,
        hooks: SupervisorHooks | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.policy = policy
        self._hooks: SupervisorHooks = hooks if hooks is not None else _NoHooks()
        #: Why the last start of an entry point failed (None once one succeeds).
        self.last_activation_error: str | None = None
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._main = EntryPointRecord(spec.main, setup=False)
        self._setup = EntryPointRecord(spec.setup, setup=True) if spec.setup else None
        self._task: asyncio.Task[None] | None = None
        self._stopper: asyncio.Task[None] | None = None
        self._stop_grace = 0.0  # stop()'s, for a process whose start it came in the middle of
        self._stopping = False
        self._skip_backoff = False
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._current: ChildProcess | None = None
        self._redirectors: list[ConsoleRedirector] = []

    def __repr__(self) -> str:
        return (
            f"<CodePackageSupervisor {self.spec.service_package_name}/"
            f"{self.spec.code_package_name} {self._main.status.value} pid={self.pid}>"
        )

    # -- read-only state -----------------------------------------------------------------------

    @property
    def status(self) -> EntryPointStatus:
        """Status of the main entry point."""
        return self._main.status

    @property
    def setup_status(self) -> EntryPointStatus | None:
        return self._setup.status if self._setup is not None else None

    @property
    def pid(self) -> int | None:
        """Pid of the running main process, else None."""
        child = self._main.child
        return child.pid if child is not None else None

    @property
    def instance_id(self) -> int:
        """Instance id of the latest main process (0 before the first); never reused."""
        return self._main.instance_id

    @property
    def statistics(self) -> EntryPointStatistics:
        """Counters of the main entry point."""
        self._apply_quiet_reset()
        return self._main.stats

    @property
    def setup_statistics(self) -> EntryPointStatistics | None:
        return self._setup.stats if self._setup is not None else None

    @property
    def main_entry_point(self) -> EntryPointInfo:
        self._apply_quiet_reset()
        return self._main.info()

    @property
    def setup_entry_point(self) -> EntryPointInfo | None:
        return self._setup.info() if self._setup is not None else None

    @property
    def health(self) -> HealthState:
        """OK, Warning or Error from the larger continuous-failure count of the entry points."""
        self._apply_quiet_reset()
        return self.policy.health(max(r.stats.max_continuous_failures for r in self._records()))

    @property
    def next_activation_time(self) -> datetime | None:
        """When the pending backoff ends (UTC), or None when nothing is waiting."""
        times = [r.next_activation for r in self._records() if r.next_activation is not None]
        return min(times) if times else None

    async def wait_until(
        self,
        predicate: Callable[[CodePackageSupervisor], bool],
        timeout: float | None = None,  # noqa: ASYNC109  (the agent's API: a deadline per wait)
    ) -> None:
        """Wait until ``predicate(self)`` is true, re-checked on every state change.

        Raises:
            TimeoutError: after ``timeout`` seconds (None: no limit).
            ProcessError: the supervisor stopped for good and the predicate is still false.
        """
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self._stopper is not None and self._stopper.done():
                    raise ProcessError(f"{self!r} is stopped")
                await self._changed.wait()

    async def wait_started(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait until a main process is running and return its pid.

        Raises:
            TimeoutError: after ``timeout`` seconds (None: no limit).
            ProcessError: the supervisor is stopping or stopped.
        """

        def running(sup: CodePackageSupervisor) -> bool:
            if sup._stopping:
                raise ProcessError(f"{sup!r} is stopping")
            return sup.pid is not None

        await self.wait_until(running, timeout)
        assert self._main.child is not None
        return self._main.child.pid

    # -- control -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin the cycle in a task this supervisor owns; returns without waiting for setup.

        Calling it again while running does nothing.

        Raises:
            ProcessError: the supervisor was stopped (make a new one).
        """
        if self._stopping:
            raise ProcessError(f"{self!r} was stopped and cannot start again")
        if self._task is not None:
            return
        for record in self._records():
            record.status = EntryPointStatus.PENDING
        name = f"supervise {self.spec.service_package_name}/{self.spec.code_package_name}"
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)
        self._notify()

    async def restart(self, instance_id: int | None = None) -> bool:
        """Kill the current process tree now and start again (setup first) without backoff.

        Args:
            instance_id: if given and not 0, restart only if it is the current main
                instance id (SF's ``CodePackageInstanceId``).

        Returns:
            False if nothing was done (not started, stopping, or another instance). Returns
            once the killed process is reaped, without waiting for the new one.
        """
        if self._task is None or self._stopping:
            return False
        if instance_id and instance_id != self._main.instance_id:
            return False
        self._skip_backoff = True
        self._wake.set()
        child = self._current
        if child is not None and child.returncode is None:
            child.deactivating = True
            await child.kill()
        return True

    async def stop(self, grace: float = 5.0) -> None:
        """Stop for good: SIGINT to the process group, ``grace`` seconds, then SIGKILL the tree.

        Returns when the process is reaped, its group and descendants are dead and the console
        files are flushed. Idempotent: later calls wait for the first one (their ``grace`` is
        ignored). Cancelling the caller does not cancel the stop.
        """
        if self._stopper is None:
            self._stopping = True
            self._stop_grace = grace
            self._wake.set()
            self._stopper = asyncio.get_running_loop().create_task(self._shutdown(grace))
        await asyncio.shield(self._stopper)

    # -- the cycle -----------------------------------------------------------------------------

    def _records(self) -> list[EntryPointRecord]:
        return [self._main] if self._setup is None else [self._setup, self._main]

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                if self._setup is not None and await self._activate(self._setup) != 0:
                    continue
                await self._activate(self._main)
        except Exception:
            log.exception("supervisor of %s failed; its processes are killed", self.spec.main)
        finally:
            # Normally nothing is left here; on cancellation or a bug, kill without awaiting.
            if self._current is not None:
                self._current.kill_now()
            if not self._stopping:
                for record in self._records():
                    record.status = EntryPointStatus.STOPPED
            self._notify()

    async def _activate(self, record: EntryPointRecord) -> int | None:
        """Back off, start the entry point and wait for it; its return code, None if no start."""
        await self._backoff(record)
        if not record.setup and not self._stopping:
            try:
                await self._hooks.before_main()
            except Exception:
                log.exception("before_main hook failed")
        if self._stopping:
            return None
        child = await self._spawn(record)
        if child is None:
            return None
        if self._stopping and not child.deactivating:
            # stop() came while the start was awaited and found no process to stop: stop it here.
            child.deactivating = True
            await child.terminate(self._stop_grace)
        returncode = await child.exited
        self._on_exit(record, child, returncode)
        return returncode

    async def _backoff(self, record: EntryPointRecord) -> None:
        if self._stopping or self._skip_backoff or record.stats.ActivationCount == 0:
            return
        delay = self.policy.delay(record.stats.continuous_failures, self._rng)
        if record.stats.ContinuousActivationFailureCount:
            delay = max(delay, _ACTIVATION_RETRY_FLOOR)
        if not record.setup:
            # SPEC §3: any exit restarts after base * int(1.5^failures), which is the base even
            # with no failures: a main entry point that keeps exiting 0 must not spin.
            delay = max(delay, self.policy.base_delay)
        if delay <= 0:
            return
        record.status = EntryPointStatus.PENDING
        record.next_activation = datetime.now(UTC) + timedelta(seconds=delay)
        self._notify()
        self._wake.clear()
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()  # stop() and restart() cut the wait short
        except TimeoutError:
            pass
        finally:
            record.next_activation = None

    async def _spawn(self, record: EntryPointRecord) -> ChildProcess | None:
        record.status = EntryPointStatus.STARTING
        now = datetime.now(UTC)
        try:
            child = await self._launch(record)
        except ProcessError as exc:
            log.warning("cannot start %s of %s: %s", record.label, self.spec.code_package_name, exc)
            self.last_activation_error = str(exc)
            record.stats = record.stats.activation_failed(now)
            record.status = EntryPointStatus.PENDING
            self._skip_backoff = False
            self._notify()
            return None
        self.last_activation_error = None
        record.child = self._current = child
        record.instance_id = next(_instance_ids)
        record.started_at = self._clock()
        record.stats = record.stats.activated(now)
        record.status = EntryPointStatus.STARTED
        if not record.setup:
            self._skip_backoff = False
            self._call_hook(self._hooks.on_main_started, child.pid)
        self._notify()
        return child

    async def _launch(self, record: EntryPointRecord) -> ChildProcess:
        env: Mapping[str, str] = self.spec.env
        pass_fds: tuple[int, ...] = ()
        if not record.setup:
            try:
                pass_fds, extra_env = self._hooks.prepare_main()
            except FabricHostError as exc:  # the hook refused, saying why: not a crash
                raise ProcessError(str(exc)) from exc
            except Exception as exc:
                log.exception("prepare_main hook failed")
                raise ProcessError(f"prepare_main hook failed: {exc!r}") from exc
            env = {**env, **extra_env}
        start = functools.partial(
            _start,
            None if record.setup else self._hooks,
            [resolve_program(record.entry), *record.entry.arguments],
            cwd=str(record.entry.working_dir),
            env=env,
            pass_fds=pass_fds,
            leftover_marker=None if record.setup else self.spec.leftover_marker,
        )
        if self.spec.log_dir is None:
            return await start(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out_w, err_w, redirectors = _console_of(self.spec, setup=record.setup)
        self._redirectors = [r for r in self._redirectors if not r.closed] + redirectors
        try:
            return await start(stdout=out_w, stderr=err_w)
        except ProcessError:
            for redirector in redirectors:
                redirector.close()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)

    def _on_exit(self, record: EntryPointRecord, child: ChildProcess, returncode: int) -> None:
        if not record.setup:
            self._apply_quiet_reset()  # a long quiet run resets the count before this exit counts
        record.child = None
        self._current = None
        record.started_at = None
        success = returncode == 0 or child.deactivating
        record.stats = record.stats.exited(datetime.now(UTC), returncode, success=success)
        if self._stopping:
            record.status = EntryPointStatus.STOPPING
        elif record.setup and returncode == 0:
            record.status = EntryPointStatus.STOPPED  # ran to completion
        else:
            record.status = EntryPointStatus.PENDING
        level = logging.INFO if success else logging.WARNING
        log.log(
            level,
            "%s of %s (pid %d) exited with %d",
            record.label,
            self.spec.code_package_name,
            child.pid,
            returncode,
        )
        if not record.setup:
            self._call_hook(self._hooks.on_main_exited, child.pid, returncode)
        elif not success:
            self._call_hook(self._hooks.on_setup_failed, returncode)
        self._notify()

    def _apply_quiet_reset(self) -> None:
        main = self._main
        if (
            main.status is EntryPointStatus.STARTED
            and main.started_at is not None
            and main.stats.ContinuousExitFailureCount
            and self._clock() - main.started_at >= self.policy.reset_after
        ):
            main.stats = main.stats.quiet_reset()

    def _call_hook(self, hook: Callable[..., object], *args: object) -> None:
        try:
            hook(*args)
        except Exception:
            log.exception("supervisor hook %s failed", getattr(hook, "__name__", hook))

    # -- stopping ------------------------------------------------------------------------------

    async def _shutdown(self, grace: float) -> None:
        try:
            for record in self._records():
                running = record.child is not None
                record.status = EntryPointStatus.STOPPING if running else EntryPointStatus.STOPPED
            self._notify()
            child = self._current
            if child is not None and child.returncode is None:
                child.deactivating = True
                await child.terminate(grace)
            if self._task is not None:
                await asyncio.wait([self._task])  # never raises, even if the task was cancelled
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DRAIN_TIMEOUT):
                    for redirector in self._redirectors:
                        await redirector.wait_closed()
            # (a pipe still open here is held by something we could not kill: closed below)
        finally:
            if self._current is not None:  # we were cancelled half way: no awaiting any more
                self._current.kill_now()
            for redirector in self._redirectors:
                redirector.close()
            self._redirectors = []
            for record in self._records():
                record.status = EntryPointStatus.STOPPED
            self._notify()
