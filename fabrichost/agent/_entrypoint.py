"""What a code package supervisor works with: entry points, launch spec, hooks, SF query shapes.

The statistics follow SF's ``CodePackageEntryPointStatistics`` field for field, with SF's
spelling, so the HTTP API serialises them as they are. The accounting is SF 6.4's
(``RunStats::UpdateProcessActivationStats`` / ``UpdateProcessExitStats``, ``CodePackage.cpp``):

* every start attempt: ``ActivationCount += 1`` and ``LastActivationTime`` ("the last time SF
  attempted to run the entry point"), so GetDueTime's ``ActivationCount == 0`` test means
  "first start" only;
* a start that works: ``ContinuousActivationFailureCount = 0``;
* a start that fails (missing program, bad working folder): ``ActivationFailureCount += 1``,
  ``ContinuousActivationFailureCount += 1``;
* an exit with code 0, or one we caused (stop, restart): ``ContinuousExitFailureCount = 0``;
* any other exit: ``ExitFailureCount += 1``, ``ContinuousExitFailureCount += 1``;
* the main entry point running for ``reset_after`` seconds: ``ContinuousExitFailureCount = 0``.

The 6.4 REST JSON swaps ``LastActivationTime`` and ``LastExitTime``; that quirk is not copied.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fabrichost.errors import ProcessError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from fabrichost.agent._proctree import ChildProcess

__all__ = (
    "EntryPoint",
    "EntryPointInfo",
    "EntryPointStatistics",
    "EntryPointStatus",
    "LaunchSpec",
    "SupervisorHooks",
    "resolve_program",
)


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """One ``ExeHost``: the program, its arguments (already split) and its working folder.

    A relative ``program`` is taken relative to ``working_dir``.
    """

    program: Path | str
    arguments: tuple[str, ...]
    working_dir: Path


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to run one code package.

    ``env`` is the complete environment of the child (the agent's own plus ``Fabric_*``).
    ``log_dir`` None sends stdout and stderr to /dev/null (no ConsoleRedirection).
    ``leftover_marker`` names a variable the hooks give each main process a unique value of:
    when a main process exits, whatever still carries its value is killed (``_proctree``).
    """

    code_package_name: str
    service_package_name: str
    setup: EntryPoint | None
    main: EntryPoint
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    console_retention: int = 2
    console_max_bytes: int = 20480 * 1024
    leftover_marker: str | None = None


class SupervisorHooks(Protocol):
    """What the supervisor tells its owner; all run on the event loop, exceptions are logged.

    Subclass it to inherit the no-op defaults, or pass any object with these methods.
    """

    def prepare_main(self) -> tuple[tuple[int, ...], Mapping[str, str]]:
        """Fds to pass to and extra env for the next main process; called before each spawn.

        The supervisor does not close these fds: the owner closes its copies in
        :meth:`on_main_started`, or before the next ``prepare_main`` if the spawn failed.
        """
        return (), {}

    async def before_main(self) -> None:
        """Awaited before each start of the main entry point (e.g. a fork server starts)."""
        return None

    async def launch_main(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int],
        stdout: int,
        stderr: int,
        leftover_marker: str | None,
    ) -> ChildProcess | None:
        """Start the main process some other way than a spawn (a fork server); None: spawn
        it. Raise ``ProcessError`` for a start that failed, as a spawn does. The supervisor
        awaits it; a stop that comes meanwhile stops what it started."""
        return None

    def on_main_started(self, pid: int) -> None:
        """A new main process is running."""
        return None

    def on_main_exited(self, pid: int, returncode: int) -> None:
        """The main process was reaped; ``returncode`` < 0 means killed by that signal."""
        return None

    def on_setup_failed(self, returncode: int) -> None:
        """The setup entry point exited non-zero; it will be retried after a backoff."""
        return None


class EntryPointStatus(enum.Enum):
    """SF's ``EntryPointStatus``: where an entry point is in its life."""

    INVALID = "Invalid"
    PENDING = "Pending"  # waiting: for its backoff, or for the setup entry point to finish
    STARTING = "Starting"
    STARTED = "Started"  # its process is running
    STOPPING = "Stopping"
    STOPPED = "Stopped"  # not started yet, ran to completion (setup), or stopped for good


@dataclass(frozen=True, slots=True)
class EntryPointStatistics:
    """SF's ``CodePackageEntryPointStatistics`` (times are UTC ``datetime`` or None)."""

    LastExitCode: int = 0
    LastActivationTime: datetime | None = None
    LastExitTime: datetime | None = None
    LastSuccessfulActivationTime: datetime | None = None
    LastSuccessfulExitTime: datetime | None = None
    ActivationCount: int = 0
    ActivationFailureCount: int = 0
    ContinuousActivationFailureCount: int = 0
    ExitCount: int = 0
    ExitFailureCount: int = 0
    ContinuousExitFailureCount: int = 0

    @property
    def continuous_failures(self) -> int:
        """The failure count SF's backoff uses: continuous exit plus activation failures."""
        return self.ContinuousExitFailureCount + self.ContinuousActivationFailureCount

    @property
    def max_continuous_failures(self) -> int:
        """The count SF's health uses (``GetMaxContinuousFailureCount``)."""
        return max(self.ContinuousExitFailureCount, self.ContinuousActivationFailureCount)

    def activated(self, now: datetime) -> EntryPointStatistics:
        return dataclasses.replace(
            self,
            LastActivationTime=now,
            LastSuccessfulActivationTime=now,
            ActivationCount=self.ActivationCount + 1,
            ContinuousActivationFailureCount=0,
        )

    def activation_failed(self, now: datetime) -> EntryPointStatistics:
        return dataclasses.replace(
            self,
            LastActivationTime=now,
            ActivationCount=self.ActivationCount + 1,
            ActivationFailureCount=self.ActivationFailureCount + 1,
            ContinuousActivationFailureCount=self.ContinuousActivationFailureCount + 1,
        )

    def exited(self, now: datetime, returncode: int, *, success: bool) -> EntryPointStatistics:
        if success:
            return dataclasses.replace(
                self,
                LastExitCode=returncode,
                LastExitTime=now,
                LastSuccessfulExitTime=now,
                ExitCount=self.ExitCount + 1,
                ContinuousExitFailureCount=0,
            )
        return dataclasses.replace(
            self,
            LastExitCode=returncode,
            LastExitTime=now,
            ExitCount=self.ExitCount + 1,
            ExitFailureCount=self.ExitFailureCount + 1,
            ContinuousExitFailureCount=self.ContinuousExitFailureCount + 1,
        )

    def quiet_reset(self) -> EntryPointStatistics:
        return dataclasses.replace(self, ContinuousExitFailureCount=0)


@dataclass(frozen=True, slots=True)
class EntryPointInfo:
    """A snapshot of SF's ``CodePackageEntryPoint`` query result."""

    EntryPointLocation: str
    ProcessId: int | None
    Status: EntryPointStatus
    NextActivationTime: datetime | None
    Statistics: EntryPointStatistics
    InstanceId: int


class EntryPointRecord:
    """The supervisor's mutable state for one entry point (setup or main)."""

    def __init__(self, entry: EntryPoint, *, setup: bool) -> None:
        self.entry = entry
        self.setup = setup
        self.status = EntryPointStatus.STOPPED
        self.stats = EntryPointStatistics()
        self.child: ChildProcess | None = None
        self.instance_id = 0
        self.next_activation: datetime | None = None
        self.started_at: float | None = None  # supervisor clock, while running

    @property
    def label(self) -> str:
        return "SetupEntryPoint" if self.setup else "EntryPoint"

    def info(self) -> EntryPointInfo:
        return EntryPointInfo(
            EntryPointLocation=str(self.entry.program),
            ProcessId=self.child.pid if self.child is not None else None,
            Status=self.status,
            NextActivationTime=self.next_activation,
            Statistics=self.stats,
            InstanceId=self.instance_id,
        )


def resolve_program(entry: EntryPoint) -> str:
    """The absolute program path, made executable if it is not (as SF's Linux activator does).

    Raises:
        ProcessError: naming the path tried, if it does not exist, is not a file, or cannot be
            made executable.
    """
    path = Path(entry.program)
    if not path.is_absolute():
        path = entry.working_dir / path
    try:
        st = path.stat()
    except OSError as exc:
        raise ProcessError(f"program not found: {path} ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ProcessError(f"program is not a file: {path}")
    if not st.st_mode & stat.S_IXUSR:
        # SF: chmod u+x,g+x,o+x when the owner cannot execute it (ProcessActivator.Linux.cpp).
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) | 0o111)
        except OSError as exc:
            raise ProcessError(f"cannot make {path} executable: {exc.strerror}") from exc
    return str(path)
