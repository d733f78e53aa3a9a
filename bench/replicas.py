"""Benchmark: replicas placed into one running shared host, and an exclusive activation.

Runs a real agent in a temporary state directory and measures, in the same run:

* floor: a bare ``python -c pass`` start, and ``python -c "import fabrichost.runtime"``;
* 1,000 replicas placed into one running SharedProcess host (one service with 1,000 singleton-
  replica partitions): wall time and the host's resident memory per replica (SPEC §8: ≤ 2 s,
  ≤ 50 KiB);
* one ExclusiveProcess replica from create to Ready (spawn → registered → open), as a ratio of
  the runtime-import floor (SPEC §8: ≤ 1.3 times; this figure includes the HTTP round trips).

Prints the figures as JSON and writes ``bench/results/replicas.md``. Usage::

    python bench/replicas.py [--replicas 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.wire import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind

REPO = Path(__file__).resolve().parents[1]


def _floor(code: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _stateful(name: str, **kwargs: Any) -> ServiceDescription:
    return ServiceDescription(
        name=name,
        type_name="MyServiceType",
        kind=ServiceKind.STATEFUL,
        target_replica_set_size=1,
        **kwargs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1000)
    args = parser.parse_args()
    figures: dict[str, float] = {
        "python_start_s": _floor("pass"),
        "runtime_import_s": _floor("import fabrichost.runtime"),
    }
    state = Path(tempfile.mkdtemp(prefix="fabrichost-bench-"))
    record = start_background(state, nodes=1, port=0)
    try:
        with FabricClient(record.Endpoint, timeout=120) as client:
            client.deploy(REPO / "manifests" / "MyApp", "fabric:/Bench")
            client.create_service("fabric:/Bench", _stateful("fabric:/Bench/Warm"), wait=True)
            (warm,) = client.deployed_replicas("_Node_0", "fabric:/Bench")
            host = psutil.Process(int(warm["HostProcessId"]))
            rss_before = host.memory_info().rss
            start = time.perf_counter()
            client.create_service(
                "fabric:/Bench",
                _stateful(
                    "fabric:/Bench/Many",
                    partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
                    partition_count=args.replicas,
                    low_key=0,
                    high_key=args.replicas - 1,
                ),
                wait=True,
                wait_timeout=300,
            )
            figures["shared_replicas"] = args.replicas
            figures["shared_place_s"] = time.perf_counter() - start
            figures["shared_kib_per_replica"] = (
                (host.memory_info().rss - rss_before) / 1024 / args.replicas
            )
            pids = {
                r["HostProcessId"] for r in client.deployed_replicas("_Node_0", "fabric:/Bench")
            }
            assert pids == {warm["HostProcessId"]}, "all replicas must share the one host"

            times = []
            for i in range(5):
                start = time.perf_counter()
                client.create_service(
                    "fabric:/Bench",
                    _stateful(
                        f"fabric:/Bench/Solo{i}",
                        activation_mode=ActivationMode.EXCLUSIVE_PROCESS,
                    ),
                    wait=True,
                )
                times.append(time.perf_counter() - start)
            figures["exclusive_ready_s"] = statistics.median(times)
            figures["exclusive_vs_runtime_import"] = (
                figures["exclusive_ready_s"] / figures["runtime_import_s"]
            )
    finally:
        stop_background(state)
    print(json.dumps(figures, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in figures.items())
    (out / "replicas.md").write_text(f"| figure | value |\n|---|---|\n{rows}\n")


if __name__ == "__main__":
    main()
