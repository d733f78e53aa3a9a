"""A stateful service whose replicas say who they are over TCP.

Every replica listens on its own loopback port (an ephemeral one: replicas sharing a process
cannot all bind the package's endpoint port) and publishes ``tcp://127.0.0.1:<port>`` as its
address. Each line a client sends is answered with one JSON line::

    {"service": "fabric:/App1/ServiceA", "partition_id": "…", "replica_id": 7,
     "role": "Primary", "pid": 4242, "node": "_Node_0", "activation_id": "",
     "code_package": "MyCodePackage", "greeting": "hello"}

``quit`` closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

from fabrichost.runtime import ReplicaRole, StatefulService

if TYPE_CHECKING:
    from fabrichost.runtime import CancellationToken, ServiceContext

_log = logging.getLogger(__name__)


class WhoAmIService(StatefulService):
    """Listens while open; reports its load while Primary."""

    def __init__(self, context: ServiceContext) -> None:
        super().__init__(context)
        self._server: asyncio.Server | None = None
        self._connections = 0

    async def open(self) -> str:
        self._server = await asyncio.start_server(self._serve_client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        _log.info("replica %s listening on port %s", self.context.replica_id, port)
        return f"tcp://127.0.0.1:{port}"

    async def change_role(self, role: ReplicaRole) -> str | None:
        _log.info("replica %s is now %s", self.context.replica_id, role)
        return None  # same listener, same address

    async def run(self, cancel: CancellationToken) -> None:
        # Only while Primary: tell the agent how busy we are, every few seconds.
        while True:
            self.report_load({"Connections": self._connections})
            try:
                await asyncio.wait_for(cancel.wait_cancelled(), timeout=5.0)
            except TimeoutError:
                continue
            return

    async def close(self) -> None:
        await self._stop()
        _log.info("replica %s closed", self.context.replica_id)

    async def abort(self) -> None:
        await self._stop()
        _log.info("replica %s aborted", self.context.replica_id)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def describe(self) -> dict[str, object]:
        context = self.context
        section = context.config.get("MyConfigSection", {})
        return {
            "service": context.service_name,
            "partition_id": context.partition_id,
            "replica_id": context.replica_id,
            "role": str(context.role),
            "pid": os.getpid(),
            "node": context.node_name,
            "activation_id": context.activation_id,
            "code_package": context.code_package_name,
            "greeting": section.get("Greeting", ""),
        }

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections += 1
        try:
            while line := await reader.readline():
                if line.strip() == b"quit":
                    break
                writer.write(json.dumps(self.describe()).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._connections -= 1
            writer.close()
