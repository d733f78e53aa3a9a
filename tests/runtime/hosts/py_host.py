"""A runtime host for the tests: every kind of service the runtime must handle.

Services append what happens to them to ``<work folder>/events.log`` (one line each:
``<replica id> <event>``), so a test can check the order of calls after the fact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from typing import TYPE_CHECKING

from fabrichost.runtime import (
    CancellationToken,
    EventWaitCancelled,
    ReplicaRole,
    StatefulService,
    StatelessService,
    run_host,
)

if TYPE_CHECKING:
    from fabrichost.runtime import ServiceContext

_LOCK = threading.Lock()


def record(context: ServiceContext, event: str) -> None:
    with _LOCK, open(os.path.join(context.work_folder, "events.log"), "a") as log:
        log.write(f"{context.replica_id} {event}\n")


class SyncStateful(StatefulService):
    def open(self) -> str:
        record(self.context, "open")
        return f"sync://{self.context.replica_id}"

    def change_role(self, role: ReplicaRole) -> str:
        record(self.context, f"role {role}")
        return f"sync://{self.context.replica_id}/{role}"

    def run(self, cancel: CancellationToken) -> None:
        record(self.context, "run-start")
        cancel.wait(timeout=60)
        record(self.context, "run-cancelled" if cancel.cancelled else "run-timeout")

    def close(self) -> None:
        record(self.context, "close")


class AsyncStateful(StatefulService):
    async def open(self) -> str:
        record(self.context, "open")
        return f"async://{self.context.replica_id}"

    async def change_role(self, role: ReplicaRole) -> str | None:
        record(self.context, f"role {role}")
        return None if role is ReplicaRole.ACTIVE_SECONDARY else f"async://{role}"

    async def run(self, cancel: CancellationToken) -> None:
        record(self.context, "run-start")
        await cancel.wait_cancelled()
        record(self.context, "run-cancelled")

    async def close(self) -> None:
        record(self.context, "close")


class SyncStateless(StatelessService):
    def open(self) -> str:
        record(self.context, f"open {self.context.endpoints['ServiceEndpoint'].port}")
        return f"tcp://127.0.0.1:{self.context.endpoints['ServiceEndpoint'].port}/{os.getpid()}"

    def run(self, cancel: CancellationToken) -> None:
        record(self.context, "run-start")
        while not cancel.wait(timeout=0.01):
            pass
        record(self.context, "run-cancelled")

    def close(self) -> None:
        record(self.context, "close")


class AsyncStateless(StatelessService):
    async def open(self) -> str:
        record(self.context, "open")
        await asyncio.sleep(0)
        return "async-stateless"

    async def run(self, cancel: CancellationToken) -> None:
        record(self.context, "run-start")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            # Ignores the token: the runtime must cancel the task after its grace period.
            record(self.context, "run-task-cancelled")
            raise

    async def close(self) -> None:
        record(self.context, "close")


class Job(StatelessService):
    """A singleton-style job: init_data says what run() does."""

    async def run(self, cancel: CancellationToken) -> object:
        instruction = self.context.init_data or ""
        if instruction.startswith("raise:"):
            raise RuntimeError(instruction.removeprefix("raise:"))
        if instruction == "not-json":
            return {1, 2}
        return json.loads(instruction.removeprefix("return:"))


class SyncJob(StatelessService):
    def run(self, cancel: CancellationToken) -> object:
        instruction = self.context.init_data or ""
        if instruction.startswith("raise:"):
            raise ValueError(instruction.removeprefix("raise:"))
        return json.loads(instruction.removeprefix("return:"))


class EventJob(StatelessService):
    """Waits for the events init_data names (a JSON list of names), in turn; returns their data.

    Records ``waiting <name>`` before each wait and ``wait-cancelled`` if a wait is cut short.
    """

    async def run(self, cancel: CancellationToken) -> object:
        received = []
        for name in json.loads(self.context.init_data or "[]"):
            record(self.context, f"waiting {name}")
            try:
                received.append(await self.wait_for_event(name))
            except EventWaitCancelled:
                record(self.context, "wait-cancelled")
                raise
        return received


class SyncEventJob(StatelessService):
    """:class:`EventJob` with a sync run, blocking in ``wait_for_event_blocking``."""

    def run(self, cancel: CancellationToken) -> object:
        received = []
        for name in json.loads(self.context.init_data or "[]"):
            record(self.context, f"waiting {name}")
            try:
                received.append(self.wait_for_event_blocking(name))
            except EventWaitCancelled:
                record(self.context, "wait-cancelled")
                raise
        return received


class Light(StatelessService):
    """Overrides nothing: the cheapest replica there is."""


class Reporter(StatelessService):
    async def open(self) -> str:
        self.report_health("Warning", "disk", "almost full")
        self.report_load({"cpu": 5})
        threading.Thread(target=self.report_fault, args=("from a thread",)).start()
        return ""


class BadOpen(StatefulService):
    def open(self) -> str:
        raise OSError("port in use")

    def abort(self) -> None:
        record(self.context, "abort")


class BadClose(StatelessService):
    async def close(self) -> None:
        raise RuntimeError("cannot close")

    async def abort(self) -> None:
        record(self.context, "abort")


class Blocking(StatelessService):
    """open() blocks its worker thread for a long time; others must not wait for it."""

    def open(self) -> str:
        record(self.context, "open-blocking")
        time.sleep(3600)
        return ""


class Configured(StatelessService):
    def open(self) -> str:
        return json.dumps(dataclasses.asdict(self.context), sort_keys=True)

    def config_changed(self, package: str) -> None:
        record(self.context, f"config {package} {json.dumps(self.context.config, sort_keys=True)}")


TYPES = {
    "SyncStatefulType": SyncStateful,
    "AsyncStatefulType": AsyncStateful,
    "SyncStatelessType": SyncStateless,
    "AsyncStatelessType": AsyncStateless,
    "JobType": Job,
    "SyncJobType": SyncJob,
    "LightType": Light,
    "ReporterType": Reporter,
    "BadOpenType": BadOpen,
    "BadCloseType": BadClose,
    "BlockingType": Blocking,
    "ConfiguredType": Configured,
    "EventJobType": EventJob,
    "SyncEventJobType": SyncEventJob,
}

if __name__ == "__main__":
    run_host(TYPES)
