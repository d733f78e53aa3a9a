"""``LocalCluster``: an isolated cluster that lives exactly as long as the process that made it.

Strategy: the agent is started with the read end of a pipe whose write end only this process
holds (``--owner-fd``; both ends are close-on-exec here, and the agent's spawn closes every other
fd, so neither the agent nor any hosted process holds the write end). When this process stops the
cluster, exits, or is killed by any signal, SIGKILL included, the kernel closes the write end;
the agent sees EOF at once and stops as on SIGTERM, then deletes a temporary state directory
(``--remove-state-on-exit``). Nothing needs this process to run any code to clean up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from fabrichost.client import FabricClient
from fabrichost.daemon import LOG_FILE, start_agent, stop_background
from fabrichost.errors import FabricHostError
from fabrichost.local._logs import collect_logs

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from types import TracebackType

log = logging.getLogger(__name__)

# Seconds the agent has to stop everything after its owner's pipe closed, before `down`'s path
# (shutdown request, SIGKILL, sweep of strays) is taken.
STOP_TIMEOUT = 30.0


class LocalCluster:
    """A local cluster for tests and scripts, stopped with its owner.

    Usage::

        from fabrichost import LocalCluster

        with LocalCluster(nodes=1) as cluster:
            cluster.deploy("pkgs/WebApp", name="fabric:/Web")
            url = cluster.endpoints("fabric:/Web/Web")["Web"]
            cluster.client.view()          # the full client, FabricClient
            print(cluster.logs())           # the agent's log and the services' console output

    The constructor starts an agent in the background and returns once it serves (or raises
    :class:`~fabrichost.errors.FabricHostError` with its cause, within ``timeout`` seconds).
    Defaults: a new temporary state directory (deleted by :meth:`stop`), a free port, one node.
    ``nodes`` None keeps the node count a given ``state_dir`` records. A given ``state_dir`` is
    kept, and refused if an agent already serves it. ``fork_server`` False spawns every
    runtime host instead of forking it (``docs/fork-server.md``).

    The cluster belongs to the process that made it: when that process exits or is killed, by
    any signal including SIGKILL, the agent stops every process it started and deletes a
    temporary state directory within moments. A ``fabrichost up`` cluster is not tied so.
    """

    def __init__(
        self,
        *,
        nodes: int | None = 1,
        state_dir: str | Path | None = None,
        port: int = 0,
        timeout: float = 60.0,
        allow_users: Collection[int] = (),
        fork_server: bool = True,
    ) -> None:
        self._temporary = state_dir is None
        self.state_dir: Path = Path(
            tempfile.mkdtemp(prefix="fabrichost-") if state_dir is None else state_dir
        ).resolve()
        self.deployed: list[str] = []
        """The applications :meth:`deploy` created, in order (the pytest plugin deletes them)."""
        self._stopped = False
        read_end, write_end = os.pipe()  # both close-on-exec (PEP 446)
        # Closing the write end is what stops the agent: on stop(), at this process's death,
        # and when a cluster nobody stopped is garbage-collected.
        self._close_owner = weakref.finalize(self, os.close, write_end)
        try:
            started = start_agent(
                self.state_dir,
                nodes=nodes,
                port=port,
                timeout=timeout,
                allow_users=allow_users,
                owner_fd=read_end,
                remove_state_on_exit=self._temporary,
                fork_server=fork_server,
            )
        except BaseException:
            self._close_owner()
            self._remove_temporary()
            raise
        finally:
            os.close(read_end)
        if not started.started:
            self._close_owner()
            raise FabricHostError(
                f"an agent (pid {started.record.AgentProcessId}) already serves {self.state_dir}:"
                " a LocalCluster starts its own; stop that one (`fabrichost down`) or choose"
                " another state directory"
            )
        self.endpoint: str = started.record.Endpoint
        self.agent_pid: int = started.record.AgentProcessId
        self.client: FabricClient = FabricClient.for_state_dir(self.state_dir)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"agent {self.agent_pid} at {self.endpoint}"
        return f"<LocalCluster {self.state_dir}: {state}>"

    def deploy(
        self,
        package_dir: str | Path,
        name: str | None = None,
        params: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
    ) -> str:
        """Deploy the application package in ``package_dir``; return once its default services
        are Ready.

        Usage: ``cluster.deploy("pkgs/WebApp", name="fabric:/Web", params={"Greeting": "hi"})``.
        ``name`` defaults to ``fabric:/<folder name>``. Raises
        :class:`~fabrichost.errors.FabricHostError` with the cause (a bad manifest, a replica
        whose open raised, a code package that keeps exiting with its stderr's tail) as soon as
        it is known, or when a service is not Ready within ``timeout`` seconds. Returns the
        application's name.
        """
        app_name = name or f"fabric:/{Path(package_dir).resolve().name}"
        self.client.deploy(package_dir, app_name, params)
        self.deployed.append(app_name)
        for service in self.client.services(app_name):
            self.client.wait_service_ready(service["Name"], timeout)
        return app_name

    def endpoints(self, service_name: str) -> dict[str, str]:
        """The named endpoints a one-partition service publishes: ``{"Web": "http://127.0.0.1:30017/"}``.

        Those of its Primary (stateful) or first Ready instance (stateless): a guest executable
        publishes its manifest's endpoints as Service Fabric does; a runtime service's own
        address ``s`` gives ``{"": s}``. Raises ``UnavailableError`` while no replica has an
        address yet (see :meth:`fabrichost.client.FabricClient.endpoints`).
        """
        return self.client.endpoints(service_name)

    def logs(self) -> str:
        """The agent's log, then each code package's console output (``.out``/``.err``), as
        one text with a header per file (the last 64 KiB of each)."""
        return collect_logs(self.state_dir, LOG_FILE)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the agent and every process it started; delete a temporary state directory.

        Idempotent. Returns once the agent has exited: within ``timeout`` seconds it stops by
        itself (its owner's pipe is closed: the same path as its owner's death); after that it
        is stopped as ``fabrichost down`` does (killed, and its strays swept).
        """
        if self._stopped:
            return
        self._stopped = True
        self.client.close()
        self._close_owner()
        if not _wait_exit(self.agent_pid, timeout):
            log.warning("the agent %d did not stop within %.0f s", self.agent_pid, timeout)
            stop_background(self.state_dir, timeout=timeout)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.agent_pid, 0)  # our child: reap it
        self._remove_temporary()

    def _remove_temporary(self) -> None:
        if self._temporary:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _wait_exit(pid: int, timeout: float) -> bool:
    """True once ``pid`` has exited (its pidfd turns readable), False after ``timeout``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)
