"""Service package activations: the processes of one service package on one node.

Theory of operation. An activation is keyed by (application, service package, activation id).
SharedProcess services share the one activation with id ``""``; every ExclusiveProcess replica
gets its own, with a fresh GUID. Activating starts ALL code packages of the package in parallel
(each under a :class:`CodePackageSupervisor`, which runs the setup entry point, then the main one,
and restarts on any exit).

The activation holds the *desired* replicas placed in it. Whenever a code package process
registers a service type over its channel, every desired replica of that type that is not open in
that process is opened there (pipelined requests, so 1,000 replicas cost one round trip of
latency, not 1,000). When the process goes away, its replicas go Down, and they are opened again
when the next incarnation registers the type. Guest executables have no channel: their replica is
Ready while the process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import uuid
from typing import TYPE_CHECKING, Any

from fabrichost.agent._channel import CHANNEL_CLOSED, ChannelLimits, HostChannel, HostError
from fabrichost.agent._entrypoint import EntryPointStatus
from fabrichost.agent._environment import (
    ENDPOINT_HOST,
    ActivationIdentity,
    ApplicationFolders,
    code_package_environment,
)
from fabrichost.agent._fence import INCARNATION_ENV
from fabrichost.agent._forkable import fork_plan
from fabrichost.agent._health import EntityReports
from fabrichost.agent._lock import acquire_nowait
from fabrichost.agent._model import ReplicaRole, ReplicaStatus, ServiceKind
from fabrichost.agent._process import CodePackageSupervisor, EntryPoint, LaunchSpec
from fabrichost.agent._spec import WorkingFolder
from fabrichost.errors import ActivationError, ProcessError, ProtocolError
from fabrichost.protocol import ErrorCode
from fabrichost.wire import endpoints_address, listener_address

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping, Sequence
    from pathlib import Path

    from fabrichost.agent._backoff import RestartPolicy
    from fabrichost.agent._forkable import ForkPlan
    from fabrichost.agent._forkserver import ForkServers
    from fabrichost.agent._model import Replica
    from fabrichost.agent._ports import PortAllocator
    from fabrichost.agent._proctree import ChildProcess
    from fabrichost.agent._spec import CodePackageSpec, ProgramSpec, ServicePackageSpec

log = logging.getLogger(__name__)

LOCK_FD_ENV = "FABRICHOST_LOCK_FD"  # the inherited incarnation lock (see _lock.py)
# Seconds a process has between SIGINT and SIGKILL at least, even when closing its replicas
# used up the deactivation's grace period.
MIN_EXIT_GRACE = 0.5


def _entry_point(program: ProgramSpec, code_package: CodePackageSpec, work: Path) -> EntryPoint:
    folders = {
        WorkingFolder.WORK: work,
        WorkingFolder.CODE_PACKAGE: code_package.folder,
        WorkingFolder.CODE_BASE: program.program.parent,
    }
    return EntryPoint(program.program, program.arguments, folders[program.working_folder])


class CodePackageHost:
    """One code package of an activation: its supervisor, and the channel of its current process."""

    def __init__(
        self,
        activation: ServicePackageActivation,
        spec: CodePackageSpec,
        env: Mapping[str, str],
        policy: RestartPolicy,
    ) -> None:
        if spec.main is None:
            raise ActivationError(
                f"code package {spec.name!r} uses {spec.unsupported}; "
                "fabrichost runs processes (ExeHost) only"
            )
        self.activation = activation
        self.spec = spec
        folders = activation.folders
        launch = LaunchSpec(
            code_package_name=spec.name,
            # SF's console file prefix is <CP>_<SP>; exclusive activations share the log folder,
            # so their files carry the activation id too, or they would rotate each other away.
            service_package_name=activation.package.name
            + (f".{activation.activation_id[:8]}" if activation.activation_id else ""),
            setup=_entry_point(spec.setup, spec, folders.work) if spec.setup else None,
            main=_entry_point(spec.main, spec, folders.work),
            env=env,
            log_dir=folders.log,
            console_retention=spec.console_retention,
            console_max_bytes=spec.console_max_bytes,
            # What a main process leaves behind (a daemonised grandchild holding the lock) is
            # killed when it exits, before anything else happens to the slot.
            leftover_marker=INCARNATION_ENV,
        )
        self.supervisor = CodePackageSupervisor(launch, policy=policy, hooks=self)
        #: How a fork server runs the main entry point (None: it is spawned; ``_forkable``).
        self.fork_plan: ForkPlan | None = None
        if activation.forks is not None and not activation.package.is_guest:
            self.fork_plan = fork_plan(launch.main, env, has_setup=spec.setup is not None)
        self.channel: HostChannel | None = None
        self.lock_path = activation.lock_path(spec.name)
        self._pending_pair: tuple[socket.socket, socket.socket] | None = None
        self._pending_lock: int | None = None

    # -- supervisor hooks (called on the event loop by the supervisor's task) -------------------

    def prepare_main(self) -> tuple[tuple[int, ...], Mapping[str, str]]:
        self._close_pending_pair()
        # Raises while an earlier incarnation may live: the supervisor retries with backoff.
        self._pending_lock = lock_fd = acquire_nowait(self.lock_path)
        env = {LOCK_FD_ENV: str(lock_fd), INCARNATION_ENV: uuid.uuid4().hex}
        if self.activation.package.is_guest:
            return (lock_fd,), env
        agent_end, host_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._pending_pair = (agent_end, host_end)
        env["FABRICHOST_CHANNEL_FD"] = str(host_end.fileno())
        return (lock_fd, host_end.fileno()), env

    async def before_main(self) -> None:
        forks = self.activation.forks
        if forks is not None and self.fork_plan is not None:
            await forks.prepare(self.fork_plan)

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
        forks = self.activation.forks
        if forks is None or self.fork_plan is None:
            return None
        return await forks.launch(
            self.fork_plan,
            cwd=cwd,
            env=env,
            pass_fds=pass_fds,
            stdout=stdout,
            stderr=stderr,
            leftover_marker=leftover_marker,
        )

    def on_main_started(self, pid: int) -> None:
        if self._pending_lock is not None:
            os.close(self._pending_lock)  # the child holds the lock now, for as long as it lives
            self._pending_lock = None
        self.activation.process_changed(self, pid)
        if self.activation.package.is_guest:
            self.activation.guest_started(self, pid)
            return
        assert self._pending_pair is not None
        agent_end, host_end = self._pending_pair
        self._pending_pair = None
        host_end.close()  # the child has its copy; EOF must reach it when we close ours
        self.channel = HostChannel(
            agent_end,
            pid=pid,
            node_name=self.activation.identity.node_name,
            on_register=functools.partial(self.activation.type_registered, self),
            on_notification=self.activation.host_notification,
            config=self.activation.package.settings,
            limits=self.activation.channel_limits,
        )
        self.activation.spawn(self._serve(self.channel))

    def on_main_exited(self, pid: int, returncode: int) -> None:
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.close()
        self.activation.host_lost(self, f"process {pid} exited with code {returncode}")
        self.activation.process_changed(self, None)

    def on_setup_failed(self, returncode: int) -> None:
        log.info("setup entry point of %s exited with %s", self.spec.name, returncode)

    # -----------------------------------------------------------------------------------------

    async def _serve(self, channel: HostChannel) -> None:
        reason = await channel.serve()
        pid = channel.pid
        if self.channel is not channel or self.supervisor.pid != pid:
            return  # the process is gone already (its exit closed the channel)
        if self.supervisor.status is EntryPointStatus.STOPPING:
            return  # stopped (a Ctrl-C, a deactivation): its SIGINT made it close the channel
        closed = reason == CHANNEL_CLOSED
        if not closed:
            log.warning("faulting host %s of %s: %s", pid, self.spec.name, reason)
        # The host broke the protocol or closed its end while the process lives on. A runtime
        # host exits by itself on EOF (a host that is exiting, e.g. killed by a restart, closes
        # it first): give it a moment, then fault it alone by killing it. It is a failure: the
        # supervisor restarts it with backoff and counts it in its health.
        with contextlib.suppress(TimeoutError, ProcessError):
            await self.supervisor.wait_until(lambda s: s.pid != pid, timeout=1.0)
        if closed and self.supervisor.pid == pid:
            log.warning("faulting host %s of %s: %s", pid, self.spec.name, reason)
        if self.supervisor.pid == pid:  # not reaped yet, so the pid is still this process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _close_pending_pair(self) -> None:
        if self._pending_lock is not None:
            os.close(self._pending_lock)
            self._pending_lock = None
        if self._pending_pair is not None:
            for sock in self._pending_pair:
                sock.close()
            self._pending_pair = None

    async def stop(self, grace: float) -> None:
        await self.supervisor.stop(grace)
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self._close_pending_pair()


class ServicePackageActivation:
    """The activation of one service package of one application on one node."""

    def __init__(
        self,
        *,
        identity: ActivationIdentity,
        package: ServicePackageSpec,
        folders: ApplicationFolders,
        ports: PortAllocator,
        policy: RestartPolicy,
        on_replica_change: Callable[[Replica], None],
        on_notification: Callable[[ServicePackageActivation, object], None] | None = None,
        on_process: Callable[[ServicePackageActivation, CodePackageHost, int | None], None]
        | None = None,
        channel_limits: ChannelLimits | None = None,
        forks: ForkServers | None = None,
    ) -> None:
        self.identity = identity
        #: The agent's fork servers (None: every process is spawned).
        self.forks = forks
        #: How its hosts' channels are paced (the agent's settings).
        self.channel_limits = channel_limits or ChannelLimits()
        self.package = package
        self.folders = folders
        self.status = "Activating"
        #: Why activate() failed, for the callers that waited to share this activation.
        self.failure: str | None = None
        #: The desired replicas, in the order they were added (a dict: membership is O(1)).
        self.replicas: dict[Replica, None] = {}
        self._by_key: dict[tuple[str, int], Replica] = {}  # (partition id, replica id) -> it
        self.endpoints: dict[str, int] = {}
        #: What a guest's replicas publish as their address: SF's endpoints JSON, built from the
        #: manifest's endpoints and their ports once they are allocated ("" without endpoints).
        self.guest_address = ""
        self.hosts: dict[str, CodePackageHost] = {}
        self._ports = ports
        self._owned_ports: list[int] = []
        self._policy = policy
        self._on_replica_change = on_replica_change
        self._on_notification = on_notification
        self._on_process = on_process
        self._type_hosts: dict[str, CodePackageHost] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random()  # the jitter of reopen backoffs
        self.deactivation: asyncio.TimerHandle | None = None
        # Set when activate() has finished, however it ended: a deactivation waits for it, so
        # starting and stopping the same activation never interleave.
        self.activated = asyncio.Event()
        # Reports about this deployed service package (``docs/health.md``): they go with it.
        self.health = EntityReports()

    @property
    def activation_id(self) -> str:
        return self.identity.activation_id

    def lock_path(self, code_package: str) -> Path:
        """The incarnation lock of one code package process slot of this activation.

        Shared slots are one per application, package and code package on a node; exclusive
        ones follow the partition they exist for, which keeps its id across agent restarts.
        """
        ident = self.identity
        scope = ident.partition_id if ident.activation_id else "shared"
        name = f"{ident.application_id}.{self.package.name}.{scope}.{code_package}.lock"
        return self.folders.state_dir / "locks" / ident.node_name / name

    def process_changed(self, host: CodePackageHost, pid: int | None) -> None:
        if self._on_process is not None:
            self._on_process(self, host, pid)

    # -- lifecycle ------------------------------------------------------------------------------

    async def activate(self) -> None:
        """Allocate endpoints, create the folders and start every code package in parallel."""
        try:
            self.folders.create()
            for endpoint in self.package.endpoints:
                if endpoint.port is None:
                    port = self._ports.allocate()
                    self._owned_ports.append(port)
                else:
                    port = endpoint.port
                self.endpoints[endpoint.name] = port
            self.guest_address = endpoints_address(
                {
                    e.name: listener_address(
                        ENDPOINT_HOST, self.endpoints[e.name], e.uri_scheme, e.path_suffix
                    )
                    for e in self.package.endpoints
                }
            )
            for spec in self.package.code_packages:
                env = code_package_environment(self.identity, spec, self.folders, self.endpoints)
                self.hosts[spec.name] = CodePackageHost(self, spec, env, self._policy)
            await asyncio.gather(*(h.supervisor.start() for h in self.hosts.values()))
        except OSError as exc:  # e.g. a folder that cannot be created: an activation failure
            self.failure = (
                f"service package {self.package.name} cannot be activated on "
                f"{self.identity.node_name}: {exc}"
            )
            self.activated.set()
            await self.deactivate(grace=0.0)
            raise ActivationError(self.failure) from exc
        except BaseException as exc:
            self.failure = str(exc) or type(exc).__name__
            self.activated.set()
            await self.deactivate(grace=0.0)
            raise
        self.status = "Active"
        self.activated.set()

    async def deactivate(self, grace: float) -> None:
        """Close the replicas, stop every code package (SIGINT, grace, SIGKILL), free the ports."""
        await self.activated.wait()  # a concurrent activate() finishes first
        self.status = "Deactivating"
        if self.deactivation is not None:
            self.deactivation.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if grace > 0:
            # As SF does: replicas are closed over the protocol first (bounded by the grace
            # period), so services shut down cleanly; then the processes are signalled.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await asyncio.gather(
                        *(self._close_open_replicas(h) for h in self.hosts.values())
                    )
        # One grace period for both steps (a hung close must not double it), but a process
        # always gets a moment between SIGINT and SIGKILL.
        exit_grace = max(deadline - loop.time(), min(grace, MIN_EXIT_GRACE))
        await asyncio.gather(*(h.stop(exit_grace) for h in self.hosts.values()))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for port in self._owned_ports:
            self._ports.release(port)
        self._owned_ports.clear()
        self.status = "Deactivated"

    async def _close_open_replicas(self, host: CodePackageHost) -> None:
        channel = host.channel
        if channel is None:
            return
        ready = [
            r
            for r in self.replicas
            if r.code_package_name == host.spec.name and r.status is ReplicaStatus.READY
        ]

        async def close(replica: Replica) -> None:
            with contextlib.suppress(ProtocolError, ActivationError, TimeoutError):
                await channel.close_replica(replica.partition.id, replica.id)

        await asyncio.gather(*(close(r) for r in ready))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("activation task failed", exc_info=task.exception())

    # -- replicas -------------------------------------------------------------------------------

    def add_replica(self, replica: Replica) -> None:
        replica.activation_id = self.activation_id
        self.replicas[replica] = None
        self._by_key[(replica.partition.id, replica.id)] = replica
        if self.deactivation is not None:
            self.deactivation.cancel()
            self.deactivation = None
        if self.package.is_guest:
            host = next(iter(self.hosts.values()), None)
            if host is not None and host.supervisor.pid:
                self._mark_ready(replica, host, host.supervisor.pid, self.guest_address)
            return
        host = self._type_hosts.get(replica.service.type_name)
        if host is not None and host.channel is not None:
            self.spawn(self._open(host, host.channel, [replica]))

    def replica(self, partition_id: str, replica_id: int) -> Replica | None:
        """The desired replica ``replica_id`` of partition ``partition_id`` here, if any."""
        return self._by_key.get((partition_id, replica_id))

    async def remove_replica(self, replica: Replica, *, was_open: bool) -> None:
        """Forget the replica; if it ``was_open`` in its process, close it there first.

        Never raises for a close that fails: as in Service Fabric, a replica whose close fails
        (its ``close()`` raised: the host answers ``Error``) or does not answer in time is
        aborted, and it is dropped all the same, so its activation can be deactivated.
        """
        self.replicas.pop(replica, None)
        if self._by_key.get(key := (replica.partition.id, replica.id)) is replica:
            del self._by_key[key]
        host = self.hosts.get(replica.code_package_name)
        channel = host.channel if host is not None else None
        if was_open and channel is not None:
            await channel.close_or_abort(replica.partition.id, replica.id)
        replica.status = ReplicaStatus.DROPPED
        self._on_replica_change(replica)

    async def change_role(self, replica: Replica, role: ReplicaRole) -> None:
        host = self.hosts.get(replica.code_package_name)
        if host is None or host.channel is None:
            raise ActivationError(f"replica {replica.id} has no running host")
        replica.address = await host.channel.change_role(replica.partition.id, replica.id, role)
        replica.role = role
        self._on_replica_change(replica)

    async def restart_replica(self, replica: Replica) -> None:
        """SF's RestartReplica: close ``replica`` in its process and open it there again.

        It goes Down first, as for a lost host, so failover does what it does then: a Primary
        comes back as a secondary while a Ready secondary is promoted (or, with none, it is
        promoted itself once open again), and a partition never has two Primaries. A guest's
        replica is its process: that code package is restarted. Returns once the replica is
        open again, or its open has failed (which its status and health then say).

        Raises:
            ActivationError: the replica is not open here.
        """
        host = self.hosts.get(replica.code_package_name)
        if (
            replica not in self.replicas
            or host is None
            or replica.status is not ReplicaStatus.READY
        ):
            raise ActivationError(
                f"replica {replica.id} is not open on {self.identity.node_name} "
                f"(status {replica.status}); only a Ready replica can be restarted"
            )
        if self.package.is_guest:
            await host.supervisor.restart()
            return
        channel = host.channel
        if channel is None:
            raise ActivationError(f"replica {replica.id} has no running host")
        replica.status = ReplicaStatus.DOWN
        replica.last_error = f"replica {replica.id} is restarting"
        self._on_replica_change(replica)
        if not await channel.close_or_abort(replica.partition.id, replica.id):
            return  # its process is going away: the next incarnation's registration opens it
        # Reopened only while it is still wanted here and the same process serves its type.
        if replica in self.replicas and host.channel is channel and not replica.dropped:
            await self._open(host, channel, [replica])

    def type_host(self, type_name: str) -> CodePackageHost | None:
        """The code package whose running process serves ``type_name`` now (SF's registered
        service type): the one that registered it, or a guest's running process."""
        if self.package.is_guest:
            host = next(iter(self.hosts.values()), None)
            return host if host is not None and host.supervisor.pid else None
        host = self._type_hosts.get(type_name)
        return host if host is not None and host.channel is not None else None

    # -- events from code package hosts ---------------------------------------------------------

    def registered(self, type_name: str) -> bool:
        """Whether a running code package of this activation registered ``type_name``."""
        host = self._type_hosts.get(type_name)
        return host is not None and host.channel is not None

    def type_registered(self, host: CodePackageHost, type_name: str) -> None:
        if self.package.service_type(type_name) is None:
            raise ActivationError(
                f"service type {type_name!r} is not declared by service package "
                f"{self.package.name!r}"
            )
        owner = self._type_hosts.get(type_name)
        if owner is not None and owner is not host and owner.channel is not None:
            raise ActivationError(
                f"service type {type_name!r} is registered already by code package "
                f"{owner.spec.name!r}"
            )
        self._type_hosts[type_name] = host
        waiting = [
            r
            for r in self.replicas
            if r.service.type_name == type_name and r.status is not ReplicaStatus.READY
        ]
        if waiting and host.channel is not None:
            self.spawn(self._open(host, host.channel, waiting))

    async def _open(
        self, host: CodePackageHost, channel: HostChannel, replicas: list[Replica]
    ) -> None:
        async def open_one(replica: Replica) -> None:
            stateful = replica.service.kind is ServiceKind.STATEFUL
            try:
                address = await channel.open_replica(
                    replica,
                    role=replica.role if stateful else ReplicaRole.NONE,
                    endpoints=self.endpoints,
                )
            except TimeoutError:
                # Still the host's until it is aborted (protocol §7): drop it, so that a later
                # open (the next host incarnation) starts clean.
                channel.abort_replica(replica.partition.id, replica.id)
                replica.last_error = (
                    f"replica {replica.id} could not be opened: host {channel.pid} did not "
                    "answer in time"
                )
                self._on_replica_change(replica)
                return
            except (ProtocolError, ActivationError) as exc:
                if isinstance(exc, HostError) and exc.code == ErrorCode.SERVICE_FAILED:
                    self._open_failed(host, channel, replica, exc.detail)
                    return
                replica.last_error = f"replica {replica.id} could not be opened: {exc}"
                self._on_replica_change(replica)
                return
            if replica not in self.replicas:  # deleted while it was opening
                channel.abort_replica(replica.partition.id, replica.id)  # it must not live on
            elif host.channel is channel:
                self._mark_ready(replica, host, channel.pid, address)
            # else the host died after its answer was read but before this ran: the replica
            # stays not Ready, so the next incarnation's registration opens it again.

        await asyncio.gather(*(open_one(r) for r in replicas))

    def _open_failed(
        self, host: CodePackageHost, channel: HostChannel, replica: Replica, error: str
    ) -> None:
        """The service's own code raised while opening ``replica`` (``error`` names the
        exception): say so at once, and open it again after a backoff, as Service Fabric's
        reconfiguration agent retries a replica whose open fails."""
        replica.open_failures += 1
        delay = max(self._policy.delay(replica.open_failures, self._rng), self._policy.base_delay)
        replica.failure = replica.last_error = (
            f"replica {replica.id} of {replica.service.name} failed to open on "
            f"{self.identity.node_name}: {error}"
        )
        log.warning("%s; opening it again in %.1f s", replica.failure, delay)
        self._on_replica_change(replica)
        self.spawn(self._reopen_later(host, channel, replica, delay))

    async def _reopen_later(
        self, host: CodePackageHost, channel: HostChannel, replica: Replica, delay: float
    ) -> None:
        await asyncio.sleep(delay)
        # Only while it is still wanted here and the same process still serves its type: a
        # new incarnation's registration opens it anyway, and a removed replica must stay out.
        if (
            replica in self.replicas
            and replica.status is not ReplicaStatus.READY
            and host.channel is channel
            and self._type_hosts.get(replica.service.type_name) is host
        ):
            await self._open(host, channel, [replica])

    def _mark_ready(self, replica: Replica, host: CodePackageHost, pid: int, address: str) -> None:
        replica.status = ReplicaStatus.READY
        replica.address = address
        replica.host_pid = pid
        replica.code_package_name = host.spec.name
        replica.last_error = replica.failure = ""
        replica.open_failures = 0
        self._on_replica_change(replica)

    def guest_started(self, host: CodePackageHost, pid: int) -> None:
        for replica in self.replicas:
            self._mark_ready(replica, host, pid, self.guest_address)

    def host_lost(self, host: CodePackageHost, reason: str) -> None:
        for type_name, owner in list(self._type_hosts.items()):
            if owner is host:
                del self._type_hosts[type_name]
        for replica in self.replicas:
            if (
                replica.code_package_name == host.spec.name
                and replica.status is ReplicaStatus.READY
            ):
                replica.status = ReplicaStatus.DOWN
                replica.host_pid = 0
                replica.last_error = reason
                self._on_replica_change(replica)

    def replica_faulted(self, replica: Replica, reason: str) -> None:
        """The host says a replica failed on its own: drop it there and open it again."""
        host = self.hosts.get(replica.code_package_name)
        if host is None or host.channel is None or replica.status is not ReplicaStatus.READY:
            return
        host.channel.abort_replica(replica.partition.id, replica.id)
        replica.status = ReplicaStatus.DOWN
        replica.last_error = f"replica {replica.id} faulted: {reason}"
        self._on_replica_change(replica)
        self.spawn(self._open(host, host.channel, [replica]))

    def host_notification(self, message: object) -> None:
        if self._on_notification is not None:
            self._on_notification(self, message)
