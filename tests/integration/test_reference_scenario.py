"""The hosting-model reference scenario (SPEC §1) on a real 3-node cluster.

One test plays all five steps once (it is the expensive part) and then checks the node view of
every node, then kills App1's shared host on one node and checks the blast radius.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from fabrichost.scenario import STEPS, manifests_dir, play

if TYPE_CHECKING:
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

NODES = ("_Node_0", "_Node_1", "_Node_2")


def _replicas_by_process(cluster: Cluster, node: str, app: str) -> dict[int, list[dict[str, Any]]]:
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for replica in cluster.client.deployed_replicas(node, app):
        assert replica["ReplicaStatus"] == "Ready", replica
        by_pid[int(replica["HostProcessId"])].append(replica)
    return dict(by_pid)


def _activation_ids(cluster: Cluster, node: str, app: str) -> list[str]:
    return [
        p["ServicePackageActivationId"] for p in cluster.client.deployed_service_packages(node, app)
    ]


def _code_packages(cluster: Cluster, node: str, app: str) -> list[dict[str, Any]]:
    return cluster.client.deployed_code_packages(node, app)


def _check_app1_and_app2(cluster: Cluster, node: str) -> int:
    """Steps 1-4 on one node; returns the pid of App1's shared host."""
    app1 = _replicas_by_process(cluster, node, "fabric:/App1")
    shared = [pid for pid, rs in app1.items() if rs[0]["ServicePackageActivationId"] == ""]
    assert len(shared) == 1, "SharedProcess: one process for every shared replica of App1"
    (shared_pid,) = shared
    services = sorted(r["ServiceName"] for r in app1[shared_pid])
    # ServiceA's two partitions and ServiceB's one, all in MyCodePackage.
    assert services == ["fabric:/App1/ServiceA"] * 2 + ["fabric:/App1/ServiceB"]
    assert {r["CodePackageName"] for r in app1[shared_pid]} == {"MyCodePackage"}
    exclusive = {pid: rs for pid, rs in app1.items() if pid != shared_pid}
    assert len(exclusive) == 2, "ExclusiveProcess: one process per ServiceC replica"
    ids = set()
    for replicas in exclusive.values():
        assert len(replicas) == 1
        assert replicas[0]["ServiceName"] == "fabric:/App1/ServiceC"
        ids.add(replicas[0]["ServicePackageActivationId"])
    assert len(ids) == 2
    assert "" not in ids
    assert sorted(_activation_ids(cluster, node, "fabric:/App1")) == sorted(["", *ids])

    app2 = _replicas_by_process(cluster, node, "fabric:/App2")
    assert len(app2) == 1, "App2 has its own single shared process"
    (app2_pid,) = app2
    assert app2_pid not in app1, "two applications never share a process"
    assert len(app2[app2_pid]) == 2
    assert _activation_ids(cluster, node, "fabric:/App2") == [""]
    return shared_pid


def _check_special_apps(cluster: Cluster, node: str) -> None:
    """Step 5: both code packages run in every activation; replicas live where their type is."""
    cps = _code_packages(cluster, node, "fabric:/SpecialApp")
    by_activation: dict[str, set[str]] = defaultdict(set)
    for cp in cps:
        assert cp["MainEntryPoint"]["Status"] == "Started"
        by_activation[cp["ServicePackageActivationId"]].add(cp["Name"])
    assert len(by_activation) == 4
    assert all(names == {"MyCodePackageA", "MyCodePackageB"} for names in by_activation.values())
    for replica in cluster.client.deployed_replicas(node, "fabric:/SpecialApp"):
        expected = "MyCodePackageA" if replica["ServiceName"].endswith("A") else "MyCodePackageB"
        assert replica["CodePackageName"] == expected

    shared = _replicas_by_process(cluster, node, "fabric:/SpecialAppShared")
    assert _activation_ids(cluster, node, "fabric:/SpecialAppShared") == [""]
    assert len(shared) == 2, "SharedProcess: one process per code package"
    for replicas in shared.values():
        assert len({r["CodePackageName"] for r in replicas}) == 1
        assert len(replicas) == 2


def test_reference_scenario_node_views_and_blast_radius(cluster3: Cluster) -> None:
    seen_steps: list[int] = []
    play(
        cluster3.client,
        manifests_dir(),
        wait_timeout=60,
        after_step=lambda number, _step: seen_steps.append(number),
    )
    assert seen_steps == list(range(1, len(STEPS) + 1))

    shared_pids = {node: _check_app1_and_app2(cluster3, node) for node in NODES}
    for node in NODES:
        _check_special_apps(cluster3, node)
    assert len(set(shared_pids.values())) == 3, "each node runs its own processes"

    # Kill App1's shared host on _Node_0: exactly its replicas go, and come back elsewhere.
    before = _replicas_by_process(cluster3, "_Node_0", "fabric:/App1")
    victim = shared_pids["_Node_0"]
    untouched = {pid for pid in before if pid != victim}
    others = {n: _replicas_by_process(cluster3, n, "fabric:/App1") for n in NODES[1:]}
    os.kill(victim, signal.SIGKILL)
    # The agent hears of the death from the kernel a moment later; until then the replicas
    # still show Ready in the victim, so wait for that first.
    deadline = time.monotonic() + 30
    while any(
        int(r["HostProcessId"]) == victim
        for r in cluster3.client.deployed_replicas("_Node_0", "fabric:/App1")
    ):
        assert time.monotonic() < deadline, "the agent never noticed its host was killed"
        time.sleep(0.05)
    for service in ("fabric:/App1/ServiceA", "fabric:/App1/ServiceB", "fabric:/App1/ServiceC"):
        cluster3.client.wait_service_ready(service, timeout=60)

    after = _replicas_by_process(cluster3, "_Node_0", "fabric:/App1")
    assert victim not in after
    assert untouched <= set(after), "exclusive replicas keep their processes"
    (new_shared,) = [pid for pid, rs in after.items() if rs[0]["ServicePackageActivationId"] == ""]
    assert sorted(r["ReplicaId"] for r in after[new_shared]) == sorted(
        r["ReplicaId"] for r in before[victim]
    )
    for pid in untouched:
        assert psutil.Process(pid).is_running()
    for node in NODES[1:]:
        assert set(_replicas_by_process(cluster3, node, "fabric:/App1")) == set(others[node])
