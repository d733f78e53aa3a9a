"""Bad input to a real agent gets a clear 400 (or a 409) and changes nothing.

Regressions of a review: an out-of-range partition key left a half-created service behind, an
application and a service could share a name (and an entity id), ManifestVersion held the
manifest's name, service names were checked loosely, and an undeclared ``--param`` named an
image store file. Then (issue 8): names with dot segments were accepted, and an instance input
too large to deliver was answered 202 and left Pending for ever.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fabrichost.agent import Application, Persistence, Service
from fabrichost.agent import Cluster as AgentCluster
from fabrichost.errors import ApiError, ConflictError, ManifestError, NotFoundError
from fabrichost.store import Store
from fabrichost.wire import (
    MAX_INSTANCE_INPUT_BYTES,
    PartitionScheme,
    ServiceDescription,
    ServiceKind,
)
from tests.integration.conftest import MANIFESTS, job_processes, write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def cli(cluster: Cluster, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from fabrichost.cli import main

    capsys.readouterr()
    code = main([*args, "--state-dir", str(cluster.state_dir)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def guest(cluster: Cluster, tmp_path: Path, name: str = "fabric:/G") -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    cluster.client.deploy(package, name)


def stateless(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "ServiceKind": "Stateless",
        "ServiceName": name,
        "ServiceTypeName": "GuestType",
        "InstanceCount": 1,
        **fields,
    }


def post_service(cluster: Cluster, app_id: str, body: Any) -> httpx.Response:
    # json.dumps writes float("inf") as Infinity; a client sends the JSON number 1e400 instead.
    content = json.dumps(body).replace("Infinity", "1e400")
    return httpx.post(
        f"{cluster.client.endpoint}/Applications/{app_id}/$/GetServices/$/Create",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def error_of(response: httpx.Response) -> tuple[str, str]:
    error = response.json()["Error"]
    return error["Code"], error["Message"]


def service_names(cluster: Cluster, app: str) -> list[str]:
    return [s["Name"] for s in cluster.client.services(app)]


# -- A: partition keys are int64, checked before anything changes ------------------------------


def test_an_out_of_range_partition_key_from_the_cli_changes_nothing(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    for partitions, field in (
        ("uniform:1:0:9223372036854775808", "HighKey"),
        ("uniform:1:-9223372036854775809:0", "LowKey"),
    ):
        code, output = cli(
            cluster,
            capsys,
            "service",
            "create",
            "fabric:/App1/Big",
            "--type",
            "MyServiceType",
            "--stateful",
            "--replicas",
            "1",
            "--partitions",
            partitions,
        )
        assert code == 1, output
        assert field in output
        assert "SQLite" not in output
        assert service_names(cluster, "fabric:/App1") == []


def test_an_out_of_range_partition_key_over_http_is_a_400_and_changes_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    guest(cluster, tmp_path)
    for low, high, field in (
        ("0", "99999999999999999999", "HighKey"),
        ("-9223372036854775809", "0", "LowKey"),
        (0, 2**63, "HighKey"),
    ):
        partition = {"PartitionScheme": "UniformInt64Range", "Count": 1, "LowKey": low}
        body = stateless("fabric:/G/Big", PartitionDescription={**partition, "HighKey": high})
        response = post_service(cluster, "G", body)
        assert response.status_code == 400, response.text
        code, message = error_of(response)
        assert code == "FABRIC_E_INVALID_ARGUMENT"
        assert field in message
        assert service_names(cluster, "fabric:/G") == []
    # The name was never claimed: the full int64 range is accepted and starts.
    partition = {
        "PartitionScheme": "UniformInt64Range",
        "Count": 2,
        "LowKey": str(-(2**63)),
        "HighKey": str(2**63 - 1),
    }
    response = post_service(
        cluster, "G", stateless("fabric:/G/Big", PartitionDescription=partition)
    )
    assert response.status_code == 202, response.text  # Service Fabric's (sfctl takes no other)
    cluster.client.wait_service_ready("fabric:/G/Big", 30)
    keys = [
        (p["PartitionInformation"]["LowKey"], p["PartitionInformation"]["HighKey"])
        for p in cluster.client.partitions("fabric:/G/Big")
    ]
    assert keys == [(str(-(2**63)), "-1"), ("0", str(2**63 - 1))]


class _FailingWrites(Persistence):
    """The real store, whose writes of the names in ``broken`` fail as SQLite can fail."""

    broken: frozenset[str] = frozenset()

    def _check(self, what: str) -> None:
        if what in self.broken:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")

    def application_added(self, app: Application) -> None:
        self._check("application_added")
        super().application_added(app)

    def service_added(self, service: Service, description: ServiceDescription) -> None:
        self._check("service_added")
        super().service_added(service, description)


def test_a_failure_between_the_claim_and_the_commit_leaves_no_half_created_entity(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        persist = _FailingWrites(Store.open(state_dir / "state.db"))
        cluster = AgentCluster(state_dir, persist=persist)
        try:
            ptype = await cluster.types.provision(MANIFESTS / "MyApp")
            catalog, state = cluster.catalog, cluster.state
            persist.broken = frozenset({"application_added"})
            with pytest.raises(OverflowError):
                await catalog.create_application("fabric:/App1", ptype.name, ptype.version, {})
            assert "fabric:/App1" not in state.applications
            assert "fabric:/App1" not in state.packages
            assert [row.name for row in persist.application_rows()] == []

            persist.broken = frozenset()  # the store works again: the name was left free
            await catalog.create_application("fabric:/App1", ptype.name, ptype.version, {})
            persist.broken = frozenset({"service_added"})
            description = ServiceDescription(
                "fabric:/App1/S", "MyServiceType", ServiceKind.STATEFUL, has_persisted_state=True
            )
            with pytest.raises(OverflowError):
                await catalog.create_service("fabric:/App1", description)
            assert state.applications["fabric:/App1"].services == {}
            assert state.find_service("fabric:/App1/S") is None
            assert [row.name for row in persist.service_rows()] == []
        finally:
            await cluster.shutdown()

    asyncio.run(scenario())


# -- C: an application and a service cannot share a name -----------------------------------------


def test_a_service_cannot_take_an_application_name(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    cluster.client.deploy(package, "fabric:/App1")
    cluster.client.deploy(package, "fabric:/App1/Sub")
    description = ServiceDescription("fabric:/App1/Sub", "GuestType", ServiceKind.STATELESS)
    with pytest.raises(ConflictError) as caught:
        cluster.client.create_service("fabric:/App1", description)
    assert caught.value.code == "FABRIC_E_APPLICATION_ALREADY_EXISTS"
    assert "application fabric:/App1/Sub already exists" in caught.value.message
    code, output = cli(
        cluster, capsys, "service", "create", "fabric:/App1/Sub", "--type", "GuestType",
        "--stateless",
    )  # fmt: skip
    assert code == 3, output
    assert service_names(cluster, "fabric:/App1") == []


def test_an_application_cannot_take_a_service_name(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    cluster.client.deploy(package, "fabric:/App1")
    description = ServiceDescription("fabric:/App1/Sub", "GuestType", ServiceKind.STATELESS)
    cluster.client.create_service("fabric:/App1", description)
    with pytest.raises(ConflictError) as caught:
        cluster.client.deploy(package, "fabric:/App1/Sub")
    assert caught.value.code == "FABRIC_E_SERVICE_ALREADY_EXISTS"
    assert "service fabric:/App1/Sub already exists" in caught.value.message
    code, output = cli(cluster, capsys, "app", "deploy", str(package), "--name", "fabric:/App1/Sub")
    assert code == 3, output
    assert [a["Name"] for a in cluster.client.applications()] == ["fabric:/App1"]


def test_a_default_service_cannot_take_an_application_name(
    cluster: Cluster, tmp_path: Path
) -> None:
    plain = write_guest_package(tmp_path / "Plain", script=SLEEPER, app_type="PlainType")
    cluster.client.deploy(plain, "fabric:/App1/Web")
    with_web = write_guest_package(tmp_path / "Web", script=SLEEPER, default_service=True)
    with pytest.raises(ConflictError) as caught:
        cluster.client.deploy(with_web, "fabric:/App1")  # its default service is fabric:/App1/Web
    assert caught.value.code == "FABRIC_E_APPLICATION_ALREADY_EXISTS"
    assert [a["Name"] for a in cluster.client.applications()] == ["fabric:/App1/Web"]


# -- D: ManifestVersion is the service manifest's version -----------------------------------------


def test_manifest_version_is_the_service_manifest_version(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    description = ServiceDescription(
        "fabric:/App1/S",
        "MyServiceType",
        ServiceKind.STATEFUL,
        target_replica_set_size=1,
        has_persisted_state=True,
    )
    created = cluster.client.create_service("fabric:/App1", description)
    assert created["ManifestVersion"] == "1.0.0"
    assert cluster.client.service("fabric:/App1/S")["ManifestVersion"] == "1.0.0"


# -- E: service names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("fabric:/G", "application's own name"),
        ("fabric:/G/", "empty segment"),
        ("fabric:/G//x", "empty segment"),
        ("fabric:/G/a b", "whitespace"),
        ("fabric:/G/ x", "whitespace"),
        ("fabric:/G/x\u00a0", "whitespace"),
        ("fabric:/G/" + "x" * 2000, "longer than"),
    ],
)
def test_a_bad_service_name_is_a_400_and_changes_nothing(
    cluster: Cluster, tmp_path: Path, name: str, words: str
) -> None:
    guest(cluster, tmp_path)
    response = post_service(cluster, "G", stateless(name))
    assert response.status_code == 400, response.text
    code, message = error_of(response)
    assert code in ("FABRIC_E_INVALID_NAME_URI", "FABRIC_E_INVALID_ARGUMENT")
    assert words in message
    assert service_names(cluster, "fabric:/G") == []


def test_bad_service_names_from_the_cli(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guest(cluster, tmp_path, "fabric:/App1")
    # No service segment: a usage error (2); an empty one: the agent's 400 (1).
    for name, exit_code in (("fabric:/App1", 2), ("fabric:/App1/", 1)):
        code, output = cli(
            cluster, capsys, "service", "create", name, "--type", "GuestType", "--stateless"
        )
        assert code == exit_code, output
        assert "fabric:/fabric:" not in output
        assert "does not exist" not in output
    code, output = cli(
        cluster, capsys, "service", "create", "fabric:/App1/S", "--type", "GuestType",
        "--stateful", "--replicas", "0",
    )  # fmt: skip
    assert code == 1, output
    assert "TargetReplicaSetSize" in output
    assert "MinReplicaSetSize" not in output
    assert service_names(cluster, "fabric:/App1") == []


def test_a_bad_application_name_is_a_400(cluster: Cluster, tmp_path: Path) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    for name in ("fabric:/A/", "fabric:/A//B", "fabric:/A B", "fabric:/" + "a" * 2000):
        with pytest.raises(ApiError) as caught:
            cluster.client.deploy(package, name)
        assert caught.value.status == 400, name
        assert caught.value.code == "FABRIC_E_INVALID_NAME_URI"
    assert cluster.client.applications() == []


# -- B: the ServiceDescription parser, over HTTP ---------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"InstanceCount": float("inf")}, "InstanceCount"),
        ({"InstanceCount": "1"}, "InstanceCount"),
        ({"InstanceCount": True}, "InstanceCount"),
        ({"InstanceCount": 99999999999999999999}, "InstanceCount"),
        ({"PartitionDescription": {"PartitionScheme": "Named", "Names": ["a", 1]}}, "Names"),
        (
            {"PartitionDescription": {"PartitionScheme": "Named", "Names": ["a", "b"], "Count": 3}},
            "Count",
        ),
        (
            {
                "PartitionDescription": {
                    "PartitionScheme": "UniformInt64Range",
                    "Count": True,
                    "LowKey": "0",
                    "HighKey": "9",
                }
            },
            "Count",
        ),
    ],
)
def test_a_loosely_typed_field_is_a_400_naming_it(
    cluster: Cluster, tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    guest(cluster, tmp_path)
    response = post_service(cluster, "G", stateless("fabric:/G/S", **fields))
    assert response.status_code == 400, response.text
    code, message = error_of(response)
    assert code == "FABRIC_E_INVALID_ARGUMENT"
    assert field in message
    assert service_names(cluster, "fabric:/G") == []


def test_a_huge_replica_set_is_refused_not_stored(cluster: Cluster) -> None:
    cluster.client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    body = {
        "ServiceKind": "Stateful",
        "ServiceName": "fabric:/App1/S",
        "ServiceTypeName": "MyServiceType",
        "TargetReplicaSetSize": 99999999999999999999,
        "MinReplicaSetSize": 1,
    }
    for size in (99999999999999999999, float("inf"), "3"):
        response = post_service(cluster, "App1", {**body, "TargetReplicaSetSize": size})
        assert response.status_code == 400, response.text
        assert "TargetReplicaSetSize" in error_of(response)[1]
    assert service_names(cluster, "fabric:/App1") == []


# -- F: an undeclared override names the type, not the image store --------------------------------


def test_an_undeclared_param_names_the_application_type_not_a_file(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = cli(
        cluster, capsys, "app", "deploy", str(MANIFESTS / "MyApp"), "--name", "fabric:/App2",
        "--param", "Nope=1",
    )  # fmt: skip
    assert code == 1, output
    assert (
        "parameter 'Nope' is not declared by application type MyAppType 1.0.0 "
        "(declared: Greeting)" in output
    )
    assert "ImageStore" not in output
    assert str(cluster.state_dir) not in output
    assert "ApplicationManifest.xml" not in output
    ptype = cluster.client.provision(MANIFESTS / "MyApp", reuse_existing=True)
    response = httpx.post(
        f"{cluster.client.endpoint}/Applications/$/Create",
        json={
            "Name": "fabric:/App3",
            "TypeName": ptype["Name"],
            "TypeVersion": ptype["Version"],
            "ParameterList": [{"Key": "Nope", "Value": "1"}, {"Key": "greeting", "Value": "x"}],
        },
        timeout=30,
    )
    assert response.status_code == 400, response.text
    message = error_of(response)[1]
    assert "parameter 'Nope' is not declared by application type MyAppType 1.0.0" in message
    assert "ImageStore" not in message
    assert cluster.client.applications() == []


def test_an_undeclared_override_is_reported_with_the_parameter_file_problems(
    tmp_path: Path,
) -> None:
    from fabrichost.manifest import (
        instantiate,
        load_application_package,
        load_application_parameters,
    )

    params = tmp_path / "Local.xml"
    params.write_text(
        '<Application Name="fabric:/G" xmlns="http://schemas.microsoft.com/2011/01/fabric">\n'
        '  <Parameters>\n    <Parameter Name="Bogus" Value="1" />\n  </Parameters>\n'
        "</Application>\n"
    )
    package = load_application_package(MANIFESTS / "MyApp")
    with pytest.raises(ManifestError) as caught:
        instantiate(package, {"Nope": "1"}, parameter_file=load_application_parameters(params))
    first, second = caught.value.diagnostics
    assert (first.file, first.line) == (str(params), 3)
    assert "'Bogus'" in first.message
    assert "parameter 'Nope' is not declared by application type MyAppType 1.0.0" in str(second)
    assert "ApplicationManifest.xml" not in str(second)


def test_partition_scheme_round_trips_through_the_client(cluster: Cluster, tmp_path: Path) -> None:
    guest(cluster, tmp_path)
    description = ServiceDescription(
        "fabric:/G/N",
        "GuestType",
        ServiceKind.STATELESS,
        partition_scheme=PartitionScheme.NAMED,
        partition_names=("a", "b"),
        partition_count=2,
    )
    cluster.client.create_service("fabric:/G", description, wait=True, wait_timeout=30)
    names = [p["PartitionInformation"]["Name"] for p in cluster.client.partitions("fabric:/G/N")]
    assert sorted(names) == ["a", "b"]


# -- G: names with dot segments (issue 8) -------------------------------------------------------


def test_names_with_dot_segments_are_a_400_naming_the_name_and_change_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    guest(cluster, tmp_path)
    create_app = f"{cluster.client.endpoint}/Applications/$/Create"
    for name in ("fabric:/..", "fabric:/../..", "fabric:/a/b/../c", "fabric:/%2e%2e", "fabric:/."):
        body = {"Name": name, "TypeName": "GuestAppType", "TypeVersion": "1.0.0"}
        response = httpx.post(create_app, json=body, timeout=30)
        assert response.status_code == 400, (name, response.text)
        code, message = error_of(response)
        assert code == "FABRIC_E_INVALID_NAME_URI"
        assert f"invalid application name {name!r}" in message
        assert "'.' or '..'" in message
    for name in ("fabric:/G/..", "fabric:/G/a/../b", "fabric:/G/%2E%2e", "fabric:/G/./S"):
        response = post_service(cluster, "G", stateless(name))
        assert response.status_code == 400, (name, response.text)
        code, message = error_of(response)
        assert code == "FABRIC_E_INVALID_NAME_URI"
        assert f"invalid service name {name!r}" in message
        assert "dot segment" in message
    assert [a["Name"] for a in cluster.client.applications()] == ["fabric:/G"]
    assert service_names(cluster, "fabric:/G") == []


# -- H: an instance input is at most what one frame can deliver (issue 8) ------------------------


def test_an_instance_input_too_large_to_deliver_is_a_413_and_starts_nothing(
    cluster: Cluster,
) -> None:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    url = f"{cluster.client.endpoint}/orchestrators/EchoJob"
    refused = {
        # 1.1 MB: more than any body the route reads (it was 202, then Pending for ever).
        "big-1": json.dumps("x" * 1_100_000).encode(),
        # 800 kB of UTF-8, but 7 ASCII bytes a character in the frame that would carry it.
        "wide-1": json.dumps("é" * 400_000, ensure_ascii=False).encode(),
    }
    for instance_id, body in refused.items():
        response = httpx.post(f"{url}/{instance_id}", content=body, timeout=60)
        assert response.status_code == 413, (instance_id, response.text[:300])
        code, message = error_of(response)
        assert code == "FABRIC_E_VALUE_TOO_LARGE"
        assert "bytes" in message
        with pytest.raises(NotFoundError):
            cluster.client.instance_status(instance_id)
        assert job_processes(cluster.state_dir, instance_id) == []
    assert (
        str(MAX_INSTANCE_INPUT_BYTES)
        in error_of(httpx.post(f"{url}/wide-1", content=refused["wide-1"], timeout=60))[1]
    )
    assert cluster.client.instances() == []
    # 900 kB fits: the job gets it and echoes it back.
    data = "y" * 900_000
    response = httpx.post(f"{url}/fits-1", content=json.dumps(data).encode(), timeout=60)
    assert response.status_code == 202, response.text[:300]
    status = cluster.client.instance_status("fits-1", wait=True, timeout=60)
    assert status["runtimeStatus"] == "Completed", {
        k: status[k] for k in ("runtimeStatus", "error")
    }
    assert status["output"] == data
