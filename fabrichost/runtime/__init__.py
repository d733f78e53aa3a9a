"""The library user services import to run inside a fabrichost runtime host.

Example::

    from fabrichost.runtime import StatefulService, run_host

    class Counter(StatefulService):
        async def open(self) -> str | None:
            return None

        def run(self, cancel):          # only while Primary; sync runs on its own thread
            while not cancel.wait(1.0):
                ...

    if __name__ == "__main__":
        run_host({"CounterType": Counter})

It imports only the standard library and :mod:`fabrichost.protocol`, so a host starts fast.
"""

from __future__ import annotations

from fabrichost.protocol import Endpoint as Endpoint
from fabrichost.protocol import HealthState as HealthState
from fabrichost.protocol import ReplicaRole as ReplicaRole
from fabrichost.runtime._cancel import CancellationToken as CancellationToken
from fabrichost.runtime._context import CHANNEL_FD_ENV as CHANNEL_FD_ENV
from fabrichost.runtime._context import ServiceContext as ServiceContext
from fabrichost.runtime._events import EventWaitCancelled as EventWaitCancelled
from fabrichost.runtime._forkserver import serve_forks as serve_forks
from fabrichost.runtime._run import run_host as run_host
from fabrichost.runtime._service import StatefulService as StatefulService
from fabrichost.runtime._service import StatelessService as StatelessService

__all__ = (
    "CHANNEL_FD_ENV",
    "CancellationToken",
    "Endpoint",
    "EventWaitCancelled",
    "HealthState",
    "ReplicaRole",
    "ServiceContext",
    "StatefulService",
    "StatelessService",
    "run_host",
    "serve_forks",
)
