"""Benchmark: 10,000 replicas into one shared host, in two bursts of 5,000 (issue 13).

Runs a real agent in a temporary state directory and measures:

* the two bursts: one service of 5,000 singleton-replica partitions each, created with a wait
  for Ready, into the SharedProcess host that already serves one warm replica; the wall time
  of both (target: ≤ 10 s), and that the host was never faulted (its pid is the first one's,
  and ``agent.log`` has no "faulting host");
* the host's resident memory per replica over the bursts (target: ≤ 10 KiB);
* ``fabrichost deployed replicas --json`` of all of them, as a user runs it (a fresh process,
  best of three; target: ≤ 1 s), and the REST query behind it alone.

Prints the figures as JSON and writes ``bench/results/scale.md``. Usage::

    python bench/scale.py [--burst 5000] [--bursts 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.wire import PartitionScheme, ServiceDescription, ServiceKind

REPO = Path(__file__).resolve().parents[1]


def _stateful(name: str, partitions: int = 1) -> ServiceDescription:
    extra: dict[str, Any] = {}
    if partitions > 1:
        extra = {
            "partition_scheme": PartitionScheme.UNIFORM_INT64_RANGE,
            "partition_count": partitions,
            "low_key": 0,
            "high_key": partitions - 1,
        }
    return ServiceDescription(
        name=name,
        type_name="MyServiceType",
        kind=ServiceKind.STATEFUL,
        target_replica_set_size=1,
        **extra,
    )


def _cli_deployed_replicas(state: Path) -> tuple[float, int]:
    """Best of three runs of the CLI query, and how many replicas it printed."""
    best, count = float("inf"), 0
    fabrichost = str(Path(sys.executable).parent / "fabrichost")
    argv = [fabrichost, "deployed", "replicas", "--node", "_Node_0"]
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run(
            [*argv, "--json", "--state-dir", str(state)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        best = min(best, time.perf_counter() - start)
        count = len(json.loads(out))
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--bursts", type=int, default=2)
    args = parser.parse_args()
    figures: dict[str, float] = {"cpus": float(os.cpu_count() or 0)}
    figures["load_average_1m"] = os.getloadavg()[0]
    state = Path(tempfile.mkdtemp(prefix="fabrichost-bench-"))
    record = start_background(state, nodes=1, port=0)
    try:
        with FabricClient(record.Endpoint, timeout=300) as client:
            client.deploy(REPO / "manifests" / "MyApp", "fabric:/Bench")
            client.create_service("fabric:/Bench", _stateful("fabric:/Bench/Warm"), wait=True)
            (warm,) = client.deployed_replicas("_Node_0", "fabric:/Bench")
            pid = int(warm["HostProcessId"])
            host = psutil.Process(pid)
            rss_before = host.memory_info().rss
            start = time.perf_counter()
            for i in range(args.bursts):
                burst = time.perf_counter()
                client.create_service(
                    "fabric:/Bench",
                    _stateful(f"fabric:/Bench/Burst{i}", args.burst),
                    wait=True,
                    wait_timeout=600,
                )
                figures[f"burst{i}_s"] = time.perf_counter() - burst
            figures["replicas"] = args.burst * args.bursts
            figures["total_s"] = time.perf_counter() - start
            figures["host_kib_per_replica"] = (
                (host.memory_info().rss - rss_before) / 1024 / figures["replicas"]
            )
            query = time.perf_counter()
            replicas = client.deployed_replicas("_Node_0", "fabric:/Bench")
            figures["rest_deployed_replicas_s"] = time.perf_counter() - query
            pids = {int(r["HostProcessId"]) for r in replicas}
            figures["host_pid_unchanged"] = float(pids == {pid} and host.is_running())
            log = (state / "agent.log").read_text(errors="replace")
            figures["hosts_faulted"] = float(log.count("faulting host"))
            cli_s, printed = _cli_deployed_replicas(state)
            figures["cli_deployed_replicas_json_s"] = cli_s
            figures["cli_deployed_replicas_count"] = printed
    finally:
        stop_background(state)
    print(json.dumps(figures, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in figures.items())
    (out / "scale.md").write_text(f"| figure | value |\n|---|---|\n{rows}\n")


if __name__ == "__main__":
    main()
