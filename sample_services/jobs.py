"""``EternalJob``, ``EchoJob`` and ``ApprovalJob`` of ``JobsPackage`` (``manifests/SingletonJobs``):
singleton jobs.

A singleton instance (docs/singletons.md) is a stateless service with one instance; its input
reaches the service as ``self.context.init_data``, a JSON text (``None`` when there is none).
What ``run`` does decides the instance's status:

* ``EchoJob`` returns its decoded input, so the instance ends ``Completed`` with
  ``output == input``; with an input object ``{"fail": "<message>"}`` it raises
  ``RuntimeError(message)`` instead and the instance ends ``Failed`` with that message.
* ``EternalJob`` never returns on its own: it runs until it is terminated. With an input object
  ``{"journal": "/path/to/file"}`` it appends ``start <pid> <monotonic>`` to that file when it
  starts and ``end <pid> <monotonic>`` when it is stopped (each line flushed and fsynced), so a
  test can count incarnations and check that two lifetimes never overlap: ``time.monotonic()``
  is the system-wide ``CLOCK_MONOTONIC`` on Linux, comparable between processes.
* ``ApprovalJob`` is Durable Functions' human-interaction pattern: it waits for the external
  event ``approval`` (``fabrichost instance raise-event ID approval --data JSON``) and completes
  with that event's data as its output. With an input object ``{"timeout": S}`` it gives up
  after ``S`` seconds and fails with ``TimeoutError``.

Usage (what ``JobsCode/launch.sh`` runs)::

    python3 -m sample_services.jobs

and, from a client::

    fabrichost instance start EchoJob --id echo-1 --input '{"n": 1}'
    fabrichost instance status echo-1 --wait
    fabrichost instance start ApprovalJob --id order-7
    fabrichost instance raise-event order-7 approval --data '{"approved": true}'
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Final

from fabrichost.runtime import StatelessService, run_host

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.runtime import CancellationToken, ServiceContext

#: The service types this host registers, as named in ``ServiceManifest.xml``.
SERVICE_TYPES: Final = ("EternalJob", "EchoJob", "ApprovalJob")


def job_input(context: ServiceContext) -> object:
    """The instance's input: ``context.init_data`` decoded from JSON (``None`` when absent).

    Raises:
        ValueError: the initialization data is not JSON (the agent should never send that).
    """
    if context.init_data is None:
        return None
    try:
        return json.loads(context.init_data)
    except ValueError as exc:
        raise ValueError(f"the instance input is not JSON: {exc}") from exc


def append_journal(path: str | os.PathLike[str], event: str) -> None:
    """Append ``<event> <pid> <monotonic>`` to ``path`` and make it durable before returning.

    O_APPEND makes each line one write even when several processes journal to the same file,
    and fsync makes a line that a test reads after a kill -9 one that really happened.
    """
    line = f"{event} {os.getpid()} {time.monotonic():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: str | Path) -> list[tuple[str, int, float]]:
    """The journal's lines as ``(event, pid, monotonic)``, in file order (for tests).

    Example::

        events = read_journal(tmp_path / "journal")
        starts = [e for e in events if e[0] == "start"]   # one per incarnation
    """
    events = []
    with open(path, encoding="ascii") as journal:
        for line in journal:
            event, pid, stamp = line.split()
            events.append((event, int(pid), float(stamp)))
    return events


class EchoJob(StatelessService):
    """Completes with its input as output, or fails when the input says ``{"fail": "..."}``.

    Only a string ``fail`` fails the job: any other input, ``{"fail": null}`` included, is
    echoed back.
    """

    async def run(self, cancel: CancellationToken) -> object:
        data = job_input(self.context)
        message = data.get("fail") if isinstance(data, dict) else None
        if isinstance(message, str):
            raise RuntimeError(message)
        return data


class EternalJob(StatelessService):
    """Runs until terminated; journals its start and end when the input names a journal."""

    async def run(self, cancel: CancellationToken) -> None:
        data = job_input(self.context)
        journal = data.get("journal") if isinstance(data, dict) else None
        if not isinstance(journal, str):
            await cancel.wait_cancelled()
            return
        append_journal(journal, "start")
        try:
            await cancel.wait_cancelled()
        finally:
            # Also on task cancellation (an abort does not wait for us): the end is written
            # whenever this process still runs Python, only a kill leaves a start without end.
            append_journal(journal, "end")


class ApprovalJob(StatelessService):
    """Waits for the external event ``approval`` and completes with its data.

    An event raised before the job waits (even before its process started) is buffered by the
    runtime, so the order of start and approval does not matter while the instance runs.
    """

    async def run(self, cancel: CancellationToken) -> object:
        data = job_input(self.context)
        timeout = data.get("timeout") if isinstance(data, dict) else None
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            timeout = None
        try:
            return await self.wait_for_event("approval", timeout=timeout)
        except TimeoutError:
            raise TimeoutError(f"no approval within {timeout:g} s") from None


def main() -> None:
    run_host({"EternalJob": EternalJob, "EchoJob": EchoJob, "ApprovalJob": ApprovalJob})


if __name__ == "__main__":
    main()
