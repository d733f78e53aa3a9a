"""Benchmark: an ExclusiveProcess activation to Ready, forked from the fork server or spawned.

Runs two real agents side by side in temporary state directories, one with the fork server
(the default) and one with ``--no-fork-server``, and interleaves the same requests to both:

* floors, each the median of ``--reps`` runs: ``python -c pass``, ``python -c "import
  fabrichost.runtime"``, and the same import ending in ``os._exit(0)`` (no interpreter
  shutdown) — what any spawned Python process pays before it does anything;
* ``shared_ready_s``: a new service whose replica opens in a running SharedProcess host: the
  HTTP round trip, the durable commit and placement, with no process started (the baseline);
* ``exclusive_ready_<mode>_s``: a new ExclusiveProcess service of the sample ``MyApp`` from the
  create request to its replica Ready (the server waits: ``WaitForReady``), and
  ``exclusive_process_<mode>_s``, the same minus the baseline: what starting the host costs;
* memory per exclusive host after ``--hosts`` of them run: RSS, PSS and USS (private pages)
  from ``/proc/PID/smaps_rollup``, and PSS with the fork server's own share added;
* ``fork_round_trip_s``: one ``ForkRequest`` answered by a fork server (two forks and the
  host's preparation), and ``fork_import_exit_s``: to the exit of a forked host that imported
  the sample service's module and ended with ``os._exit`` — measured in a child process that is
  a subreaper, without an agent.

Prints one JSON object. Usage::

    python bench/exclusive.py [--reps 9] [--hosts 10]

``bench/run.py`` may call :func:`measure` for its exclusive scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.wire import ActivationMode, ServiceDescription, ServiceKind

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
MODES = ("fork", "spawn")


def _floor(code: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _service(name: str, *, exclusive: bool) -> ServiceDescription:
    return ServiceDescription(
        name=name,
        type_name="MyServiceType",
        kind=ServiceKind.STATEFUL,
        target_replica_set_size=1,
        activation_mode=(
            ActivationMode.EXCLUSIVE_PROCESS if exclusive else ActivationMode.SHARED_PROCESS
        ),
    )


def _create(client: FabricClient, name: str, *, exclusive: bool) -> float:
    start = time.perf_counter()
    client.create_service("fabric:/Bench", _service(name, exclusive=exclusive), wait=True)
    return time.perf_counter() - start


def _memory(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + dirty) of ``pid``, in bytes."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0]) * 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def _fork_servers(agent_pid: int) -> list[int]:
    return [
        child.pid
        for child in psutil.Process(agent_pid).children()
        if "serve_forks" in " ".join(child.cmdline())
    ]


@contextlib.contextmanager
def _agents() -> Iterator[dict[str, tuple[FabricClient, int]]]:
    states = {mode: Path(tempfile.mkdtemp(prefix=f"fabrichost-bench-{mode}-")) for mode in MODES}
    clients: dict[str, tuple[FabricClient, int]] = {}
    try:
        for mode, state in states.items():
            record = start_background(state, nodes=1, port=0, fork_server=mode == "fork")
            clients[mode] = (FabricClient(record.Endpoint, timeout=120), record.AgentProcessId)
        yield clients
    finally:
        for client, _ in clients.values():
            client.close()
        for state in states.values():
            stop_background(state)
            shutil.rmtree(state, ignore_errors=True)


async def _raw_forks(reps: int) -> dict[str, float]:
    """A fork server alone: request to answer, and to the exit of a host that imports."""
    # Private names: this measures the mechanism under the agent, on purpose.
    from fabrichost.agent._forkserver import ForkServer
    from fabrichost.agent._orphans import adopt_orphans, reaping_held
    from fabrichost.agent._proctree import ChildProcess
    from fabrichost.protocol import ForkRequest

    adopt_orphans(asyncio.get_running_loop())  # forked hosts are reparented to us
    folder = Path(tempfile.mkdtemp(prefix="fabrichost-bench-fork-"))
    (folder / "bench_host.py").write_text("import os, sample_services.my_service\nos._exit(0)\n")
    server = await ForkServer.start(sys.executable, {}, folder)
    env = dict(os.environ)
    answered, exited = [], []
    try:
        for _ in range(reps):
            start = time.perf_counter()
            with reaping_held():
                request = ForkRequest("bench_host", (), str(folder), env, (), "python3")
                pid = await server.fork(request, [])
                answered.append(time.perf_counter() - start)
                child = ChildProcess.adopt(pid, env=env)
            code = await child.exited
            if code != 0:
                raise RuntimeError(f"the forked bench host exited with {code}")
            exited.append(time.perf_counter() - start)
    finally:
        await server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "fork_round_trip_s": statistics.median(answered),
        "fork_import_exit_s": statistics.median(exited),
    }


def measure(reps: int = 9, hosts: int = 10) -> dict[str, Any]:
    """Run the scenario; the figures as a dict (seconds and bytes)."""
    raw = subprocess.run(
        [sys.executable, __file__, "--raw-forks", "--reps", str(reps)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    figures: dict[str, Any] = {
        **json.loads(raw.stdout),
        "python_start_s": _floor("pass", reps),
        "runtime_import_s": _floor("import fabrichost.runtime", reps),
        "runtime_import_no_shutdown_s": _floor("import fabrichost.runtime, os; os._exit(0)", reps),
    }
    with _agents() as agents:
        for client, _ in agents.values():
            client.deploy(REPO / "manifests" / "MyApp", "fabric:/Bench")
            # A shared host for the baseline, and a first exclusive host (the fork server
            # starts on first need: that one start is not what is measured).
            _create(client, "fabric:/Bench/Shared0", exclusive=False)
            _create(client, "fabric:/Bench/Warm", exclusive=True)
        shared: list[float] = []
        ready: dict[str, list[float]] = {mode: [] for mode in MODES}
        for i in range(reps):
            for mode in MODES:  # interleaved, so both see the same machine
                client, _ = agents[mode]
                shared.append(_create(client, f"fabric:/Bench/Shared{i + 1}", exclusive=False))
                ready[mode].append(_create(client, f"fabric:/Bench/Solo{i}", exclusive=True))
        baseline = statistics.median(shared)
        figures["shared_ready_s"] = baseline
        for mode in MODES:
            median = statistics.median(ready[mode])
            figures[f"exclusive_ready_{mode}_s"] = median
            figures[f"exclusive_ready_{mode}_min_s"] = min(ready[mode])
            figures[f"exclusive_process_{mode}_s"] = median - baseline
        figures["fork_speedup"] = (
            figures["exclusive_ready_spawn_s"] / figures["exclusive_ready_fork_s"]
        )
        for mode in MODES:
            client, agent_pid = agents[mode]
            pids = {
                int(r["HostProcessId"])
                for r in client.deployed_replicas("_Node_0", "fabric:/Bench")
                if "Solo" in r["ServiceName"]
            }
            for i in range(max(0, hosts - len(pids))):
                _create(client, f"fabric:/Bench/More{i}", exclusive=True)
            pids = {
                int(r["HostProcessId"])
                for r in client.deployed_replicas("_Node_0", "fabric:/Bench")
                if not r["ServiceName"].startswith("fabric:/Bench/Shared")
            }
            memory = [_memory(pid) for pid in pids]
            servers = [_memory(pid) for pid in _fork_servers(agent_pid)]
            for kind in ("rss", "pss", "uss"):
                figures[f"host_{kind}_{mode}_kib"] = statistics.mean(m[kind] for m in memory) / 1024
            server_pss = sum(m["pss"] for m in servers)
            figures[f"host_pss_with_server_{mode}_kib"] = (
                (sum(m["pss"] for m in memory) + server_pss) / len(memory) / 1024
            )
            figures[f"hosts_{mode}"] = len(memory)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--raw-forks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_forks:  # the child measure() runs: it becomes a subreaper
        print(json.dumps(asyncio.run(_raw_forks(args.reps))))
        return
    print(json.dumps(measure(args.reps, args.hosts), indent=2))


if __name__ == "__main__":
    main()
