"""The health model with real processes: what the agent sees, what services and users report,
and the aggregation up to the cluster, over Service Fabric's health routes.

Every wait polls the agent for the state it needs with a generous deadline: a crash loop, a
failover or a TTL that runs out is an event to wait for, not a window of time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fabrichost.agent import AgentSettings
from fabrichost.agent import Cluster as AgentCluster
from fabrichost.errors import ApiError
from fabrichost.protocol import HealthState
from fabrichost.wire import ServiceDescription, ServiceKind
from tests.integration.conftest import fh, write_guest_package, write_runtime_package
from tests.integration.sfctl import venv_bin

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


# A stateless runtime host whose instance reports its own health with a TTL once it opens.
REPORTING_HOST = """
from fabrichost.runtime import StatelessService, run_host

class Svc(StatelessService):
    def open(self):
        self.report_health("Warning", "QueueDepth", "queue is 950 of 1000 deep",
                           time_to_live=3.0)
        self.report_health("Warning", "Cache", "cache is cold")
        return "tcp://reporting"

run_host({"ReportingType": Svc})
"""


SILENT = "import signal\nsignal.pause()\n"


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def _descriptions(evaluations: list[dict[str, Any]]) -> list[str]:
    """Every Description in a tree of unhealthy evaluations, depth first."""
    found = []
    for wrapper in evaluations:
        evaluation = wrapper["HealthEvaluation"]
        found.append(evaluation["Description"])
        found += _descriptions(evaluation.get("UnhealthyEvaluations", []))
        if "UnhealthyEvent" in evaluation:
            found.append(evaluation["UnhealthyEvent"]["Description"])
    return found


def _check_with_sf_models(model: str, body: Any) -> None:
    """``body`` deserializes as the real azure-servicefabric client's ``model``."""
    script = (
        "import json, sys\n"
        "from azure.servicefabric import models\n"
        "from msrest import Deserializer\n"
        "d = Deserializer({k: v for k, v in vars(models).items() if isinstance(v, type)})\n"
        f"obj = d({model!r}, json.load(sys.stdin))\n"
        "print(obj.aggregated_health_state)\n"
    )
    done = subprocess.run(
        [str(venv_bin() / "python"), "-c", script],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == body["AggregatedHealthState"]


def test_a_crash_looping_code_package_turns_everything_above_it_to_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    pkg = write_guest_package(tmp_path / "pkg", script="import sys\nsys.exit(3)\n")
    client = cluster.client
    client.deploy(pkg, "fabric:/Crash")
    client.create_service(
        "fabric:/Crash", ServiceDescription("fabric:/Crash/Web", "GuestType", ServiceKind.STATELESS)
    )

    package = _wait_for(
        lambda: (
            (h := client.health("service-package", "_Node_0", "fabric:/Crash", "GuestPkg"))[
                "AggregatedHealthState"
            ]
            == "Error"
            and h
        ),
        "the code package's health to turn Error",
    )
    (event,) = [e for e in package["HealthEvents"] if e["Property"].startswith("CodePackage")]
    assert (event["SourceId"], event["Property"]) == (
        "System.Hosting",
        "CodePackageActivation:Code:EntryPoint",
    )
    assert "code package Code keeps failing (last exit code 3)" in event["Description"]

    service = client.health("service", "fabric:/Crash/Web")
    assert service["AggregatedHealthState"] == "Error"
    why = _descriptions(service["UnhealthyEvaluations"])
    assert why[0].startswith("Unhealthy partitions: 100% (1/1)")
    assert any("code package Code keeps failing" in d for d in why)

    app = client.health("application", "fabric:/Crash")
    assert app["AggregatedHealthState"] == "Error"
    kinds = {e["HealthEvaluation"]["Kind"] for e in app["UnhealthyEvaluations"]}
    assert kinds == {"Services", "DeployedApplications"}
    assert any(
        "ServiceManifestName='GuestPkg'" in d for d in _descriptions(app["UnhealthyEvaluations"])
    )

    health = client.health("cluster")
    assert health["AggregatedHealthState"] == "Error"
    (apps,) = [
        e["HealthEvaluation"]
        for e in health["UnhealthyEvaluations"]
        if e["HealthEvaluation"]["Kind"] == "Applications"
    ]
    assert apps["Description"] == (
        "Unhealthy applications: 100% (1/1), MaxPercentUnhealthyApplications=0%."
    )
    assert apps["UnhealthyEvaluations"][0]["HealthEvaluation"]["ApplicationName"] == "fabric:/Crash"
    # Every query's HealthState is the model's.
    assert client.application("fabric:/Crash")["HealthState"] == "Error"
    assert client.service("fabric:/Crash/Web")["HealthState"] == "Error"
    assert client.deployed_applications("_Node_0")[0]["HealthState"] == "Error"
    # Only Error events, and no children, when filtered so.
    only_nodes_in_error = client.health("cluster", NodesHealthStateFilter=8)
    assert only_nodes_in_error["NodeHealthStates"] == []
    _check_with_sf_models("ClusterHealth", health)
    _check_with_sf_models("ApplicationHealth", app)
    _check_with_sf_models("DeployedServicePackageHealth", package)
    deployed = client.health("deployed-application", "_Node_0", "fabric:/Crash")
    assert deployed["AggregatedHealthState"] == "Error"
    _check_with_sf_models("DeployedApplicationHealth", deployed)


def test_a_stopped_node_is_in_error_and_its_partitions_are_below_target(
    cluster3: Cluster, tmp_path: Path
) -> None:
    host = REPORTING_HOST.replace("StatelessService", "StatefulService").replace(
        "ReportingType", "KeeperType"
    )
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("KeeperType", host)})
    client = cluster3.client
    client.deploy(pkg, "fabric:/Keep")
    description = ServiceDescription(
        "fabric:/Keep/S",
        "KeeperType",
        ServiceKind.STATEFUL,
        target_replica_set_size=3,
        min_replica_set_size=2,
    )
    client.create_service("fabric:/Keep", description, wait=True)
    (partition,) = client.partitions("fabric:/Keep/S")
    pid = partition["PartitionInformation"]["Id"]
    assert client.health("partition", pid)["AggregatedHealthState"] in ("Ok", "Warning")

    client.stop_node("_Node_1")

    node = client.health("node", "_Node_1")
    assert node["AggregatedHealthState"] == "Error"
    assert [(e["SourceId"], e["Property"], e["HealthState"]) for e in node["HealthEvents"]] == [
        ("System.FM", "State", "Error")
    ]
    health = _wait_for(
        lambda: (
            (h := client.health("partition", pid))
            and any(
                e["SourceId"] == "System.FM" and "below target" in e["Description"]
                for e in h["HealthEvents"]
            )
            and h
        ),
        "the partition to be reported below its target",
    )
    assert health["AggregatedHealthState"] == "Warning"
    assert "2 of 3 Ready" in next(
        e["Description"] for e in health["HealthEvents"] if e["SourceId"] == "System.FM"
    )
    assert client.partitions("fabric:/Keep/S")[0]["HealthState"] == "Warning"
    assert client.nodes()[1]["HealthState"] == "Error"
    cluster_health = client.health("cluster")
    assert cluster_health["AggregatedHealthState"] == "Error"
    assert "Unhealthy nodes: 33% (1/3), MaxPercentUnhealthyNodes=0%." in _descriptions(
        cluster_health["UnhealthyEvaluations"]
    )
    _check_with_sf_models("PartitionHealth", health)
    _check_with_sf_models("NodeHealth", node)


def test_a_services_own_report_is_shown_and_expires_with_its_ttl(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("ReportingType", "")})
    # write_runtime_package declares stateful types; this host is stateless.
    manifest = pkg / "RtPkg" / "ServiceManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            '<StatefulServiceType ServiceTypeName="ReportingType" HasPersistedState="true" />',
            '<StatelessServiceType ServiceTypeName="ReportingType" />',
        )
    )
    (pkg / "RtPkg" / "Code" / "host.py").write_text(REPORTING_HOST)
    client = cluster.client
    client.deploy(pkg, "fabric:/Rep")
    client.create_service(
        "fabric:/Rep",
        ServiceDescription("fabric:/Rep/S", "ReportingType", ServiceKind.STATELESS),
        wait=True,
    )
    (partition,) = client.partitions("fabric:/Rep/S")
    pid = partition["PartitionInformation"]["Id"]
    (replica,) = client.replicas(pid)
    rid = replica["InstanceId"]

    def own_events() -> dict[str, dict[str, Any]]:
        events = client.health("replica", pid, rid)["HealthEvents"]
        return {e["Property"]: e for e in events if e["SourceId"] == "ReportingType"}

    reported = _wait_for(lambda: len(own_events()) == 2 and own_events(), "the service's reports")
    assert reported["QueueDepth"]["HealthState"] == "Warning"
    assert reported["QueueDepth"]["Description"] == "queue is 950 of 1000 deep"
    assert reported["QueueDepth"]["IsExpired"] is False
    service = client.health("service", "fabric:/Rep/S")
    assert service["AggregatedHealthState"] == "Warning"
    assert any(
        "SourceId='ReportingType', Property='QueueDepth'" in d
        for d in _descriptions(service["UnhealthyEvaluations"])
    )
    # The TTL runs out: not RemoveWhenExpired, so the report stays, as Error, marked expired.
    expired = _wait_for(
        lambda: own_events()["QueueDepth"]["IsExpired"] and own_events(), "the TTL to run out"
    )
    assert expired["QueueDepth"]["HealthState"] == "Error"
    assert expired["Cache"]["IsExpired"] is False  # no TTL: never expires
    service = client.health("service", "fabric:/Rep/S")
    assert service["AggregatedHealthState"] == "Error"
    _check_with_sf_models("ServiceHealth", service)
    _check_with_sf_models("ReplicaHealth", client.health("replica", pid, rid))

    code, out, err = fh(cluster, capsys, "health", "replica", pid, rid)
    assert code == 0, err
    assert "QueueDepth" in out
    assert "expired" in out


def test_report_health_over_rest_follows_sequence_numbers_and_ttl(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    pkg = write_guest_package(
        tmp_path / "pkg", script="import signal\nsignal.pause()\n", default_service=True
    )
    client.deploy(pkg, "fabric:/G")

    def report(app: str, state: str, number: int | None = None) -> None:
        client.report_health(
            "application", app, source_id="Watchdog", property="Disk", state=state,
            sequence_number=number,
        )  # fmt: skip

    report("fabric:/G", "Warning", 10)
    with pytest.raises(ApiError) as stale:
        report("fabric:/G", "Warning", 10)
    assert stale.value.code == "FABRIC_E_HEALTH_STALE_REPORT"
    report("fabric:/G", "Error", 11)
    app = client.health("application", "fabric:/G")
    (event,) = [e for e in app["HealthEvents"] if e["SourceId"] == "Watchdog"]
    assert (event["HealthState"], event["SequenceNumber"]) == ("Error", "11")
    assert app["AggregatedHealthState"] == "Error"
    assert app["UnhealthyEvaluations"][0]["HealthEvaluation"]["Description"] == (
        "Error event: SourceId='Watchdog', Property='Disk'."
    )

    # RemoveWhenExpired: gone once its TTL ran out.
    client.report_health(
        "cluster", source_id="Probe", property="Ping", state="Warning", ttl=1.0,
        remove_when_expired=True,
    )  # fmt: skip
    assert client.health("cluster")["AggregatedHealthState"] == "Error"  # the app's report

    def probes() -> list[Any]:
        return [e for e in client.health("cluster")["HealthEvents"] if e["SourceId"] == "Probe"]

    _wait_for(lambda: not probes(), "the removed report to be gone")

    # The agent's own sources are its own; unknown entities are SF's errors.
    with pytest.raises(ApiError, match="reserved"):
        client.report_health("node", "_Node_0", source_id="System.FM", property="X", state="Ok")
    with pytest.raises(ApiError) as missing:
        report("fabric:/Nope", "Ok")
    assert missing.value.code == "FABRIC_E_APPLICATION_NOT_FOUND"
    answer = httpx.post(
        cluster.client.endpoint + "/Applications/G/$/ReportHealth",
        json={"SourceId": "W", "Property": "P", "HealthState": "Bad"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert "HealthState must be Ok, Warning or Error" in answer.json()["Error"]["Message"]

    # Only the default policies are evaluated: a policy in a POST GetHealth is refused.
    get = "/Applications/G/$/GetHealth"
    defaults = {"ConsiderWarningAsError": False, "MaxPercentUnhealthyDeployedApplications": 0}
    for body in ({}, defaults):
        answer = httpx.post(cluster.client.endpoint + get, json=body, timeout=10)
        assert answer.status_code == 200, answer.text
    refused = httpx.post(
        cluster.client.endpoint + get,
        json={"ConsiderWarningAsError": True},
        timeout=10,
    )
    assert refused.status_code >= 400
    assert "ConsiderWarningAsError" in refused.json()["Error"]["Message"]

    # A deployed service package's reports are its own, and count up to its application.
    package = ("service-package", "_Node_0", "fabric:/G", "GuestPkg")
    client.report_health(*package, source_id="Watchdog", property="Mem", state="Warning")
    events = client.health(*package)["HealthEvents"]
    assert ("Watchdog", "Mem", "Warning") in [
        (e["SourceId"], e["Property"], e["HealthState"]) for e in events
    ]
    deployed = client.health("deployed-application", "_Node_0", "fabric:/G")
    assert deployed["AggregatedHealthState"] == "Warning"

    # Deleting the application deletes its reports: a new one of the same name starts clean.
    client.delete_application("fabric:/G")
    client.create_application("fabric:/G", "GuestAppType", "1.0.0")
    app = _wait_for(
        lambda: (
            (h := client.health("application", "fabric:/G"))["AggregatedHealthState"] == "Ok" and h
        ),
        "the new application to be healthy",
    )
    assert [e["SourceId"] for e in app["HealthEvents"]] == ["System.CM"]
    assert all(e["SourceId"] != "Watchdog" for e in client.health(*package)["HealthEvents"])

    code, out, err = fh(cluster, capsys, "health", "app", "fabric:/G")
    assert code == 0, err
    assert out.startswith("Application fabric:/G: Ok\n")
    code, out, err = fh(cluster, capsys, "health", "app", "fabric:/G", "extra")
    assert code == 2
    assert "app takes 1 name(s), got 2" in err
    code, out, err = fh(cluster, capsys, "health", "node", "_Node_0", "--json")
    assert code == 0, err
    assert json.loads(out)["Name"] == "_Node_0"


@pytest.mark.anyio
async def test_a_service_type_not_registered_in_time_is_an_error_of_its_package(
    tmp_path: Path,
) -> None:
    # The host runs but never registers its type (it never speaks on its channel).
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("SilentType", SILENT)})
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = AgentCluster(state_dir, AgentSettings(type_registration_timeout=0.5))
    try:
        ptype = await cluster.types.provision(pkg)
        await cluster.catalog.create_application("fabric:/Q", ptype.name, ptype.version, {})
        await cluster.catalog.create_service(
            "fabric:/Q", ServiceDescription("fabric:/Q/S", "SilentType", ServiceKind.STATEFUL)
        )
        app = cluster.state.application("fabric:/Q")
        node = cluster.state.node("_Node_0")
        deadline = time.monotonic() + 60
        while True:
            (activation,) = cluster.state.activations_on(node, "fabric:/Q")
            result = cluster.health.deployed_service_package(activation)
            if result.health.state is HealthState.ERROR:
                break
            assert time.monotonic() < deadline, "the registration timeout was never reported"
            await asyncio.sleep(0.05)
        (event,) = [e for e in result.events if e.state is HealthState.ERROR]
        assert (event.info.source_id, event.info.property) == (
            "System.Hosting",
            "ServiceTypeRegistration:SilentType",
        )
        assert "not registered within the configured timeout (0.5 s)" in event.info.description
        assert cluster.health.application(app).health.state is HealthState.ERROR
    finally:
        await cluster.shutdown()


def _sfctl(cluster: Cluster, home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real sfctl against the cluster (its endpoint from the environment, its config in a
    home of its own); installed on first use (``tests/integration/sfctl.py``)."""
    sfctl = venv_bin() / "sfctl"
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "SFCTL_SERVICEFABRIC_ENDPOINT": cluster.client.endpoint,
    }
    return subprocess.run(
        [str(sfctl), *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_sfctl_reads_and_reports_health(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    pkg = write_guest_package(
        tmp_path / "pkg", script="import signal\nsignal.pause()\n", default_service=True
    )
    client.deploy(pkg, "fabric:/G")
    home = tmp_path / "home"
    home.mkdir()
    report = _sfctl(
        cluster, home, "application", "report-health", "--application-id", "G",
        "--source-id", "Watchdog", "--health-property", "Disk", "--health-state", "Warning",
        "--description", "80% full", "--ttl", "PT10M", "--sequence-number", "7", "--immediate",
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    stale = _sfctl(
        cluster, home, "application", "report-health", "--application-id", "G",
        "--source-id", "Watchdog", "--health-property", "Disk", "--health-state", "Ok",
        "--sequence-number", "7",
    )  # fmt: skip
    assert stale.returncode != 0
    assert "FABRIC_E_HEALTH_STALE_REPORT" in stale.stderr

    shown = _sfctl(cluster, home, "application", "health", "--application-id", "G")
    assert shown.returncode == 0, shown.stderr
    health = json.loads(shown.stdout)
    assert health["aggregatedHealthState"] == "Warning"
    (event,) = [e for e in health["healthEvents"] if e["sourceId"] == "Watchdog"]
    assert (event["description"], event["sequenceNumber"]) == ("80% full", "7")
    assert event["timeToLiveInMilliSeconds"] == "0:10:00"  # msrest read the duration
    shown = _sfctl(cluster, home, "cluster", "health")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["aggregatedHealthState"] == "Warning"

    (partition,) = client.partitions("fabric:/G/Web")
    pid = partition["PartitionInformation"]["Id"]
    (replica,) = client.replicas(pid)
    for argv in (
        ("node", "health", "--node-name", "_Node_0"),
        ("service", "health", "--service-id", "G~Web"),
        ("partition", "health", "--partition-id", pid),
        ("replica", "health", "--partition-id", pid, "--replica-id", replica["InstanceId"]),
        ("application", "deployed-health", "--application-id", "G", "--node-name", "_Node_0"),
        (
            "service", "package-health", "--application-id", "G", "--node-name", "_Node_0",
            "--service-package-name", "GuestPkg",
        ),
    ):  # fmt: skip
        shown = _sfctl(cluster, home, *argv)
        assert shown.returncode == 0, (argv, shown.stderr)
        assert json.loads(shown.stdout)["aggregatedHealthState"] in ("Ok", "Warning"), argv
