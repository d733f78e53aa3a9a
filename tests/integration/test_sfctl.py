"""Microsoft's own CLI, sfctl 11.2.1, drives a real agent through the developer flow.

sfctl is installed by the ``sfctl`` fixture into a virtual environment of its own (its pins
clash with the project's), cached between runs under ``~/.cache/fabrichost-tests`` (or
``$XDG_CACHE_HOME``) and built under an ``flock``, so two xdist workers never race; the tests
skip, saying why, when it cannot be installed. Each sfctl command runs as a subprocess with a
HOME of its own (sfctl keeps its endpoint in ``~/.sfctl``), must exit 0, and its JSON output is
parsed and checked.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from fabrichost.scenario import manifests_dir
from tests.integration.conftest import marked_processes
from tests.integration.sfctl import COMMAND_TIMEOUT, INSTALL_TIMEOUT, Sfctl, venv_bin

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def sfctl_path() -> Path:
    return venv_bin() / "sfctl"


@pytest.fixture
def sfctl(sfctl_path: Path, tmp_path: Path) -> Sfctl:
    return Sfctl(sfctl_path, tmp_path / "home")


def _items(answer: Any) -> list[dict[str, Any]]:
    """A paged list's items (sfctl prints the model: ``items``), or a plain list."""
    return list(answer["items"] if isinstance(answer, dict) else answer)


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)  # the first run installs sfctl (session fixture)
def test_the_sfctl_developer_flow(cluster3: Cluster, sfctl: Sfctl) -> None:
    cluster = cluster3
    endpoint = cluster.client.endpoint
    samples = manifests_dir()

    # -- connect --------------------------------------------------------------------------------
    selected = sfctl.run("cluster", "select", "--endpoint", endpoint)
    assert "does not match the cluster version" not in selected.stderr  # GetClusterVersion
    assert sfctl.run("cluster", "show-connection").stdout.strip().strip('"') == endpoint
    nodes = _items(sfctl.json("node", "list"))
    assert sorted(n["name"] for n in nodes) == ["_Node_0", "_Node_1", "_Node_2"]
    assert {n["nodeStatus"] for n in nodes} == {"Up"}

    # -- upload, provision ----------------------------------------------------------------------
    for package in ("MyApp", "SingletonJobs"):
        sfctl.run("application", "upload", "--path", str(samples / package))
    root = sfctl.json("store", "root-info")
    assert sorted(f["storeRelativePath"] for f in root["storeFolders"]) == [
        "MyApp",
        "SingletonJobs",
    ]
    stat = sfctl.json("store", "stat", "--content-path", "MyApp")
    assert [f["storeRelativePath"] for f in stat["storeFiles"]] == ["MyApp/ApplicationManifest.xml"]
    manifest = (samples / "MyApp" / "ApplicationManifest.xml").stat().st_size
    assert stat["storeFiles"][0]["fileSize"] == str(manifest)
    assert [f["storeRelativePath"] for f in stat["storeFolders"]] == ["MyApp/MyServicePackage"]
    for package in ("MyApp", "SingletonJobs"):
        sfctl.run("application", "provision", "--application-type-build-path", package)
    types = _items(sfctl.json("application", "type-list"))
    assert sorted((t["name"], t["version"]) for t in types) == [
        ("MyAppType", "1.0.0"),
        ("SingletonJobsType", "1.0.0"),
    ]

    # -- applications and services --------------------------------------------------------------
    sfctl.run(
        "application", "create",
        "--app-name", "fabric:/App1",
        "--app-type", "MyAppType",
        "--app-version", "1.0.0",
        "--parameters", json.dumps({"Greeting": "hello from sfctl"}),
    )  # fmt: skip
    sfctl.run(
        "application", "create",
        "--app-name", "fabric:/Jobs",
        "--app-type", "SingletonJobsType",
        "--app-version", "1.0.0",
    )  # fmt: skip
    app = sfctl.json("application", "info", "--application-id", "App1")
    assert app["typeName"] == "MyAppType"
    assert {"key": "Greeting", "value": "hello from sfctl"} in [
        {"key": p["key"], "value": p["value"]} for p in app["parameters"]
    ]
    sfctl.run(
        "service", "create",
        "--app-id", "App1",
        "--name", "fabric:/App1/Counter",
        "--service-type", "MyServiceType",
        "--stateful",
        "--int-scheme",
        "--int-scheme-low", "0",
        "--int-scheme-high", "99",
        "--int-scheme-count", "2",
        "--target-replica-set-size", "2",
        "--min-replica-set-size", "1",
        "--activation-mode", "ExclusiveProcess",
    )  # fmt: skip
    sfctl.run(
        "service", "create",
        "--app-id", "Jobs",
        "--name", "fabric:/Jobs/Everywhere",
        "--service-type", "EternalJob",
        "--stateless",
        "--singleton-scheme",
        "--instance-count", "-1",
    )  # fmt: skip
    # sfctl returns on Service Fabric's 202; wait for the replicas with the agent's own wait.
    cluster.client.wait_service_ready("fabric:/App1/Counter", 60)
    cluster.client.wait_service_ready("fabric:/Jobs/Everywhere", 60)

    services = _items(sfctl.json("service", "list", "--application-id", "App1"))
    assert [(s["name"], s["serviceKind"]) for s in services] == [
        ("fabric:/App1/Counter", "Stateful")
    ]
    info = sfctl.json(
        "service", "info", "--application-id", "Jobs", "--service-id", "Jobs~Everywhere"
    )
    assert (info["name"], info["serviceKind"], info["typeName"]) == (
        "fabric:/Jobs/Everywhere",
        "Stateless",
        "EternalJob",
    )
    counter = sfctl.json("service", "description", "--service-id", "App1~Counter")
    assert counter["serviceKind"] == "Stateful"
    assert counter["applicationName"] == "fabric:/App1"
    assert counter["servicePackageActivationMode"] == "ExclusiveProcess"
    assert (counter["targetReplicaSetSize"], counter["minReplicaSetSize"]) == (2, 1)
    assert counter["partitionDescription"] == {
        "additionalProperties": {},
        "partitionScheme": "UniformInt64Range",
        "count": 2,
        "lowKey": "0",
        "highKey": "99",
    }
    everywhere = sfctl.json("service", "description", "--service-id", "Jobs~Everywhere")
    assert (everywhere["serviceKind"], everywhere["instanceCount"]) == ("Stateless", -1)
    assert everywhere["partitionDescription"]["partitionScheme"] == "Singleton"

    partitions = _items(sfctl.json("partition", "list", "--service-id", "App1~Counter"))
    assert sorted(
        (p["partitionInformation"]["lowKey"], p["partitionInformation"]["highKey"])
        for p in partitions
    ) == [("0", "49"), ("50", "99")]
    assert {p["partitionStatus"] for p in partitions} == {"Ready"}
    for partition in partitions:
        partition_id = partition["partitionInformation"]["id"]
        replicas = _items(sfctl.json("replica", "list", "--partition-id", partition_id))
        assert sorted(r["replicaRole"] for r in replicas) == ["ActiveSecondary", "Primary"]
        assert {r["replicaStatus"] for r in replicas} == {"Ready"}
        assert len({r["nodeName"] for r in replicas}) == 2  # one replica per node
    jobs = _items(sfctl.json("partition", "list", "--service-id", "Jobs~Everywhere"))
    (job_partition,) = jobs
    instances = _items(
        sfctl.json("replica", "list", "--partition-id", job_partition["partitionInformation"]["id"])
    )
    assert sorted(i["nodeName"] for i in instances) == ["_Node_0", "_Node_1", "_Node_2"]

    # -- what is deployed on a node -------------------------------------------------------------
    _check_deployed(sfctl, "_Node_0")

    # -- health ---------------------------------------------------------------------------------
    # Everything runs and nothing reported a problem: every entity is Ok, from the model.
    counter = partitions[0]["partitionInformation"]["id"]
    (primary,) = [
        r
        for r in _items(sfctl.json("replica", "list", "--partition-id", counter))
        if r["replicaRole"] == "Primary"
    ]
    for argv in (
        ("cluster", "health"),
        ("node", "health", "--node-name", "_Node_1"),
        ("application", "health", "--application-id", "App1"),
        ("service", "health", "--service-id", "App1~Counter"),
        ("partition", "health", "--partition-id", counter),
        ("replica", "health", "--partition-id", counter, "--replica-id", primary["replicaId"]),
        ("application", "deployed-health", "--application-id", "App1", "--node-name", "_Node_0"),
    ):
        health = sfctl.json(*argv)
        assert health["aggregatedHealthState"] == "Ok", (argv, health)
    # A report of one's own shows, and turns the application and the cluster to Warning.
    sfctl.run(
        "application", "report-health", "--application-id", "Jobs",
        "--source-id", "Watchdog", "--health-property", "Disk", "--health-state", "Warning",
        "--description", "80% full", "--immediate",
    )  # fmt: skip
    jobs_health = sfctl.json("application", "health", "--application-id", "Jobs")
    assert jobs_health["aggregatedHealthState"] == "Warning"
    (ours,) = [e for e in jobs_health["healthEvents"] if e["sourceId"] == "Watchdog"]
    assert (ours["healthState"], ours["description"]) == ("Warning", "80% full")
    assert sfctl.json("cluster", "health")["aggregatedHealthState"] == "Warning"

    # -- take it all down -----------------------------------------------------------------------
    sfctl.run("service", "delete", "--service-id", "Jobs~Everywhere")
    assert _items(sfctl.json("service", "list", "--application-id", "Jobs")) == []
    for app_id in ("App1", "Jobs"):
        sfctl.run("application", "delete", "--application-id", app_id)
    assert _items(sfctl.json("application", "list")) == []
    assert marked_processes(cluster.state_dir) == []  # a delete returns once they are gone
    sfctl.run(
        "application", "unprovision",
        "--application-type-name", "MyAppType",
        "--application-type-version", "1.0.0",
    )  # fmt: skip
    types = _items(sfctl.json("application", "type-list"))
    assert [t["name"] for t in types] == ["SingletonJobsType"]
    assert not (cluster.state_dir / "ImageStore" / "MyAppType").exists()
    sfctl.run("store", "delete", "--content-path", "MyApp")
    root = sfctl.json("store", "root-info")
    assert [f["storeRelativePath"] for f in root["storeFolders"]] == ["SingletonJobs"]
    # The uploaded package is gone; the provisioned type stays usable from its own copy.
    sfctl.run("store", "delete", "--content-path", "SingletonJobs")
    assert sfctl.json("store", "root-info")["storeFolders"] == []
    sfctl.run("application", "create", "--app-name", "fabric:/Again",
              "--app-type", "SingletonJobsType", "--app-version", "1.0.0")  # fmt: skip
    assert [a["name"] for a in _items(sfctl.json("application", "list"))] == ["fabric:/Again"]


def _check_deployed(sfctl: Sfctl, node: str) -> None:
    """sfctl's deployed queries on ``node``: both applications, App1's service packages (one
    activation per Counter replica there, ExclusiveProcess), code packages and replicas, and
    the -1 stateless service's instance (every node has one)."""
    deployed = _items(sfctl.json("application", "deployed-list", "--node-name", node))
    assert sorted(d["name"] for d in deployed) == ["fabric:/App1", "fabric:/Jobs"]
    app = sfctl.json("application", "deployed", "--node-name", node, "--application-id", "App1")
    assert (app["name"], app["status"]) == ("fabric:/App1", "Active")
    packages = sfctl.json(
        "service", "package-list", "--node-name", node, "--application-id", "App1"
    )
    assert {p["name"] for p in packages} == {"MyServicePackage"}
    assert all(p["servicePackageActivationId"] for p in packages)  # ExclusiveProcess
    code_packages = sfctl.json(
        "service", "code-package-list", "--node-name", node, "--application-id", "App1"
    )
    assert len(code_packages) == len(packages)
    assert {c["name"] for c in code_packages} == {"MyCodePackage"}
    assert all(int(c["mainEntryPoint"]["processId"]) > 0 for c in code_packages)
    replicas = sfctl.json(
        "replica", "deployed-list", "--node-name", node, "--application-id", "App1"
    )
    # 2 partitions x 2 replicas on 3 nodes, each partition's on distinct nodes: 1 or 2 here,
    # one process (activation) for each.
    assert 1 <= len(replicas) == len(packages) <= 2
    assert {r["serviceName"] for r in replicas} == {"fabric:/App1/Counter"}
    jobs = sfctl.json("replica", "deployed-list", "--node-name", node, "--application-id", "Jobs")
    assert [r["serviceName"] for r in jobs] == ["fabric:/Jobs/Everywhere"]


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)  # the first run installs sfctl (session fixture)
def test_sfctl_upgrades_an_application_node_by_node(
    cluster3: Cluster, sfctl: Sfctl, tmp_path: Path
) -> None:
    from tests.integration.test_upgrade import deploy_special, special_v2

    deploy_special(cluster3)
    sfctl.run("cluster", "select", "--endpoint", cluster3.client.endpoint)
    sfctl.run("application", "upload", "--path", str(special_v2(tmp_path)))
    sfctl.run("application", "provision", "--application-type-build-path", "SpecialApp")

    sfctl.run(
        "application", "upgrade",
        "--application-id", "SpecialApp",
        "--application-version", "2.0.0",
        "--parameters", "{}",
        "--mode", "Monitored",
        "--failure-action", "Rollback",
        "--health-check-stable-duration", "PT0H0M0S",
        "--health-check-retry-timeout", "PT0H1M0S",
    )  # fmt: skip

    # sfctl's model of SF's ApplicationUpgradeProgressInfo, read until the upgrade is over.
    cluster3.client.wait_upgrade("fabric:/SpecialApp", 120)
    progress = sfctl.json("application", "upgrade-status", "--application-id", "SpecialApp")
    assert progress["upgradeState"] == "RollingForwardCompleted"
    assert progress["targetApplicationTypeVersion"] == "2.0.0"
    assert progress["rollingUpgradeMode"] == "Monitored"
    assert [(d["name"], d["state"]) for d in progress["upgradeDomains"]] == [
        ("_Node_0", "Completed"),
        ("_Node_1", "Completed"),
        ("_Node_2", "Completed"),
    ]
    policy = progress["upgradeDescription"]["monitoringPolicy"]
    assert (policy["failureAction"], policy["healthCheckRetryTimeoutInMilliseconds"]) == (
        "Rollback",
        "60000",
    )
    assert sfctl.json("application", "info", "--application-id", "SpecialApp")["typeVersion"] == (
        "2.0.0"
    )
    # Nothing to roll back or resume once it is over: SF's error, which sfctl reports.
    done = subprocess.run(
        [
            str(sfctl.executable),
            "application",
            "upgrade-rollback",
            "--application-id",
            "SpecialApp",
        ],
        env=sfctl.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert done.returncode != 0
    assert "has no upgrade rolling forward" in done.stderr
