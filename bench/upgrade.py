"""Benchmark: a rolling application upgrade that changes one code package, and one that changes
only config.

Runs a real agent with ``--nodes`` nodes in a temporary state directory, deploys the SpecialApp
sample (two code packages, a stateful service in each), then, ``--runs`` times, provisions a new
version whose MyCodePackageA has another Version and upgrades to it (Monitored: each node is
checked healthy before the next), and the same for a version that changes only the MyApp sample's
config (its service takes config changes: nothing restarts). Prints, as JSON, the median seconds
from the upgrade's start to RollingForwardCompleted, and per node. Usage::

    python bench/upgrade.py [--nodes 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.wire import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"


def _stateful(name: str, type_name: str, replicas: int) -> ServiceDescription:
    return ServiceDescription(
        name=name,
        type_name=type_name,
        kind=ServiceKind.STATEFUL,
        activation_mode=ActivationMode.SHARED_PROCESS,
        partition_scheme=PartitionScheme.SINGLETON,
        target_replica_set_size=replicas,
        min_replica_set_size=1,
    )


def _version(root: Path, sample: str, app_version: str, edits: list[tuple[str, str, str]]) -> Path:
    """A copy of ``sample`` at ``app_version`` with ``edits`` (file, pattern, replacement)."""
    pkg = root / f"{sample}-{app_version}"
    shutil.copytree(MANIFESTS / sample, pkg)
    manifest = pkg / "ApplicationManifest.xml"
    manifest.write_text(
        re.sub(
            r'ApplicationTypeVersion="[^"]+"',
            f'ApplicationTypeVersion="{app_version}"',
            manifest.read_text(),
        )
    )
    for file, pattern, replacement in edits:
        path = pkg / file
        path.write_text(re.sub(pattern, replacement, path.read_text(), count=1))
    return pkg


def _timed_upgrade(client: FabricClient, app: str, pkg: Path) -> tuple[float, dict[str, Any]]:
    version = client.provision(pkg, reuse_existing=True)["Version"]
    start = time.perf_counter()
    client.upgrade_application(app, version)
    progress = client.wait_upgrade(app, 300)
    elapsed = time.perf_counter() - start
    assert progress["UpgradeState"] == "RollingForwardCompleted", progress
    return elapsed, progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = root / "state"
        record = start_background(state, nodes=args.nodes, port=0)
        try:
            with FabricClient(record.Endpoint, timeout=120) as client:
                client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
                client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
                for name, type_name in (("A", "MyServiceTypeA"), ("B", "MyServiceTypeB")):
                    client.create_service(
                        "fabric:/SpecialApp",
                        _stateful(f"fabric:/SpecialApp/{name}", type_name, args.nodes),
                        wait=True,
                    )
                client.create_service(
                    "fabric:/App1",
                    _stateful("fabric:/App1/S", "MyServiceType", args.nodes),
                    wait=True,
                )
                code: list[float] = []
                config: list[float] = []
                for run in range(1, args.runs + 1):
                    pkg = _version(
                        root,
                        "SpecialApp",
                        f"1.0.{run}",
                        [
                            (
                                "MultiTypeServicePackage/ServiceManifest.xml",
                                r'(<CodePackage Name="MyCodePackageA" Version=")[^"]+',
                                rf"\g<1>1.0.{run}",
                            )
                        ],
                    )
                    code.append(_timed_upgrade(client, "fabric:/SpecialApp", pkg)[0])
                    pkg = _version(root, "MyApp", f"1.0.{run}", [])
                    client.provision(pkg, reuse_existing=True)
                    start = time.perf_counter()
                    client.upgrade_application(
                        "fabric:/App1", f"1.0.{run}", {"Greeting": f"hello {run}"}
                    )
                    progress = client.wait_upgrade("fabric:/App1", 300)
                    config.append(time.perf_counter() - start)
                    assert progress["UpgradeState"] == "RollingForwardCompleted", progress
                    assert all("restarted" not in line for line in progress["Details"]), progress
        finally:
            stop_background(state)
    print(
        json.dumps(
            {
                "nodes": args.nodes,
                "runs": args.runs,
                "code_package_upgrade_s": {
                    "median": round(statistics.median(code), 3),
                    "per_node_median": round(statistics.median(code) / args.nodes, 3),
                    "all": [round(x, 3) for x in code],
                },
                "config_only_upgrade_s": {
                    "median": round(statistics.median(config), 3),
                    "all": [round(x, 3) for x in config],
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
