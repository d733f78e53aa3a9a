"""Parameters: whole-value substitution, case-insensitive names, precedence, typed values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ManifestError
from fabrichost.manifest import (
    ActivationMode,
    ApplicationManifest,
    NamedPartition,
    UniformPartitionRange,
    instantiate,
    load_application_manifest,
    load_application_parameters,
    parameter_reference,
    resolve_parameters,
)
from fabrichost.manifest._build import build_application_manifest
from fabrichost.manifest._xml import parse_xml

from .helpers import app_manifest, parameters_file, write

if TYPE_CHECKING:
    from pathlib import Path

IMPORT = (
    '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="P" '
    'ServiceManifestVersion="1"/>{extra}</ServiceManifestImport>'
)


def unchecked(body: str, parameters: str = "", extra: str = "") -> ApplicationManifest:
    """Build an application manifest without the load-time checks, to instantiate it here."""
    text = app_manifest(
        IMPORT.format(extra=extra) + f"\n<DefaultServices>{body}</DefaultServices>",
        parameters=f"<Parameters>{parameters}</Parameters>",
    )
    return build_application_manifest(parse_xml(text.encode(), "app.xml"), "app.xml")


def stateless(count: str = "1", partition: str = "<SingletonPartition/>", mode: str = "") -> str:
    extra = f' ServicePackageActivationMode="{mode}"' if mode else ""
    return (
        f'<Service Name="S"{extra}><StatelessService ServiceTypeName="T" '
        f'InstanceCount="{count}">{partition}</StatelessService></Service>'
    )


def stateful(target: str, minimum: str) -> str:
    return (
        f'<Service Name="S"><StatefulService ServiceTypeName="T" TargetReplicaSetSize="{target}" '
        f'MinReplicaSetSize="{minimum}"><SingletonPartition/></StatefulService></Service>'
    )


def errors(manifest: ApplicationManifest, values: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        instantiate(manifest, values)
    return [str(d) for d in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("[A]", "A"), ("[a b]", "a b"), ("x-[A]", None), ("[A]-x", None), ("[]", None), ("A", None)],
)
def test_only_a_whole_value_is_a_reference(value: str, expected: str | None) -> None:
    assert parameter_reference(value) == expected


def test_names_are_case_insensitive() -> None:
    manifest = unchecked(stateless("[count]"), '<Parameter Name="Count" DefaultValue="3"/>')
    assert instantiate(manifest).default_services[0].instance_count == 3
    assert instantiate(manifest, {"COUNT": "4"}).default_services[0].instance_count == 4


def test_partial_reference_stays_literal() -> None:
    manifest = unchecked(
        stateless().replace('Name="S"', 'Name="x-[Count]"'),
        '<Parameter Name="Count" DefaultValue="3"/>',
    )
    assert instantiate(manifest).default_services[0].name == "x-[Count]"


def test_precedence_default_then_file_then_overrides(tmp_path: Path) -> None:
    manifest = unchecked(
        stateless("[A]"),
        '<Parameter Name="A" DefaultValue="1"/><Parameter Name="B" DefaultValue="b"/>'
        '<Parameter Name="C" DefaultValue="c"/>',
    )
    file = load_application_parameters(
        write(
            tmp_path / "p.xml",
            parameters_file('<Parameter Name="a" Value="2"/><Parameter Name="B" Value="file"/>'),
        )
    )
    assert resolve_parameters(manifest) == {"A": "1", "B": "b", "C": "c"}
    assert resolve_parameters(manifest, file) == {"A": "2", "B": "file", "C": "c"}
    values = resolve_parameters(manifest, file, {"b": "cli", "B": "later"})
    assert values == {"A": "2", "B": "later", "C": "c"}
    instance = instantiate(manifest, {"a": "5"}, parameter_file=file)
    assert instance.default_services[0].instance_count == 5
    assert instance.parameters["B"] == "file"


def test_undeclared_names_in_a_file_and_in_overrides_are_all_reported(tmp_path: Path) -> None:
    manifest = unchecked(stateless(), '<Parameter Name="A" DefaultValue="1"/>')
    path = write(tmp_path / "p.xml", parameters_file('\n<Parameter Name="Nope" Value="2"/>'))
    with pytest.raises(ManifestError) as caught:
        resolve_parameters(manifest, load_application_parameters(path), {"Other": "x"})
    first, second = caught.value.diagnostics
    assert (first.file, first.line) == (str(path), 3)
    assert "parameter 'Nope' is not declared by application type MyAppType (declared: A)" in str(
        first
    )
    assert second.file == "app.xml"
    assert "override: parameter 'Other' is not declared" in second.message


def test_unknown_reference_names_file_line_and_parameter() -> None:
    found = errors(unchecked(stateless("[Missing]")))
    assert found == [
        "app.xml:2: InstanceCount: unknown parameter [Missing] (not in Parameters; Service Fabric "
        "refuses it when provisioning the application type)"
    ]


def test_typed_value_errors_name_the_attribute_and_the_parameter() -> None:
    manifest = unchecked(stateless("[Count]"), '<Parameter Name="Count" DefaultValue="abc"/>')
    assert errors(manifest) == [
        "app.xml:2: InstanceCount: expected an integer, got 'abc' (from [Count])"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (stateless("0"), "InstanceCount: must be -1 (one per node) or at least 1, got 0"),
        (stateless("-2"), "InstanceCount: must be between -1 and"),
        (stateful("2", "3"), "MinReplicaSetSize 3 is greater than TargetReplicaSetSize 2"),
        (stateful("0", "1"), "TargetReplicaSetSize: must be between 1 and"),
        (stateful("x", "1"), "TargetReplicaSetSize: expected an integer, got 'x'"),
        (
            stateless(
                partition='<UniformInt64Partition PartitionCount="0" LowKey="0" HighKey="9"/>'
            ),
            "PartitionCount: must be between 1 and",
        ),
        (
            stateless(
                partition='<UniformInt64Partition PartitionCount="1" LowKey="5" HighKey="4"/>'
            ),
            "LowKey 5 is greater than HighKey 4",
        ),
        (
            stateless(
                partition='<UniformInt64Partition PartitionCount="11" LowKey="0" HighKey="9"/>'
            ),
            "PartitionCount 11 is larger than the key range [0, 9] (10 keys)",
        ),
        (
            stateless(
                partition='<UniformInt64Partition PartitionCount="1" LowKey="0" '
                'HighKey="9223372036854775808"/>'
            ),
            "HighKey: must be between",
        ),
        (
            stateless(
                partition='<NamedPartition><Partition Name="a"/><Partition Name="a"/>'
                "</NamedPartition>"
            ),
            "NamedPartition: partition name 'a' repeats",
        ),
        (stateless(mode="Both"), "ServicePackageActivationMode: expected one of SharedProcess"),
        ('<Service Name="Empty"/>', "Service 'Empty' needs a StatelessService or StatefulService"),
    ],
)
def test_value_rules(body: str, message: str) -> None:
    found = errors(unchecked(body))
    assert any(message in f for f in found), found


def test_full_int64_range_and_every_node() -> None:
    body = stateless(
        "-1",
        '<UniformInt64Partition PartitionCount="3" LowKey="-9223372036854775808" '
        'HighKey="9223372036854775807"/>',
    )
    service = instantiate(unchecked(body)).default_services[0]
    assert service.instance_count == -1
    assert service.partition == UniformPartitionRange(3, -(2**63), 2**63 - 1)
    assert not service.stateful


def test_activation_mode_and_counts_come_from_parameters() -> None:
    manifest = unchecked(
        stateful("[T]", "[M]").replace(
            'Name="S"', 'Name="S" ServicePackageActivationMode="[Mode]"'
        ),
        '<Parameter Name="T" DefaultValue="3"/><Parameter Name="M" DefaultValue="2"/>'
        '<Parameter Name="Mode" DefaultValue="ExclusiveProcess"/>',
    )
    service = instantiate(manifest).default_services[0]
    assert service.stateful
    assert (service.target_replica_set_size, service.min_replica_set_size) == (3, 2)
    assert service.activation_mode is ActivationMode.EXCLUSIVE_PROCESS
    assert service.instance_count is None
    assert errors(manifest, {"mode": "[Mode]"}) == [
        "app.xml:2: ServicePackageActivationMode: expected one of SharedProcess, "
        "ExclusiveProcess, got '[Mode]'"
    ]
    assert "unknown parameter [Nope]" in errors(unchecked(stateless(mode="[Nope]")))[0]


def test_named_partitions_pass_through() -> None:
    body = stateless(
        partition='<NamedPartition><Partition Name="a"/><Partition Name="b"/></NamedPartition>'
    )
    partition = instantiate(unchecked(body)).default_services[0].partition
    assert isinstance(partition, NamedPartition)
    assert partition.names == ("a", "b")


POLICIES = """
<ResourceOverrides>
  <Endpoints><Endpoint Name="E" Port="[Port]" Protocol="http"/></Endpoints>
</ResourceOverrides>
<EnvironmentOverrides CodePackageRef="Code">
  <EnvironmentVariable Name="A" Value="[Mode]"/>
</EnvironmentOverrides>
<EnvironmentOverrides CodePackageRef="Code">
  <EnvironmentVariable Name="B" Value="x-[Mode]"/>
</EnvironmentOverrides>
<Policies>
  <RunAsPolicy CodePackageRef="Code" UserRef="[User]"/>
  <ResourceGovernancePolicy CodePackageRef="Code" MemoryInMB="[Mem]" CpuShares="10" CpuPercent="5"/>
  <ServicePackageResourceGovernancePolicy CpuCores="[Cores]" MemoryInMB="256"/>
</Policies>"""
POLICY_PARAMETERS = (
    '<Parameter Name="Port" DefaultValue="80"/><Parameter Name="Mode" DefaultValue="prod"/>'
    '<Parameter Name="User" DefaultValue="Admin"/><Parameter Name="Mem" DefaultValue="512"/>'
    '<Parameter Name="Cores" DefaultValue="1.5"/>'
)


def test_overrides_and_policies_are_substituted_and_typed() -> None:
    manifest = unchecked(stateless(), POLICY_PARAMETERS, POLICIES)
    (item,) = instantiate(manifest).imports
    assert [(v.name, v.value) for v in item.environment_overrides["Code"]] == [
        ("A", "prod"),
        ("B", "x-[Mode]"),
    ]
    assert (item.endpoint_overrides[0].port, item.endpoint_overrides[0].protocol) == ("80", "http")
    assert item.run_as[0].user_ref == "Admin"
    limits = item.resource_limits[0]
    assert (limits.memory_in_mb, limits.cpu_shares, limits.cpu_percent) == (512, 10, 5)
    assert item.service_package_limits is not None
    assert (item.service_package_limits.cpu_cores, item.service_package_limits.memory_in_mb) == (
        1.5,
        256,
    )


def test_policy_value_errors_are_collected() -> None:
    manifest = unchecked(stateless(), POLICY_PARAMETERS, POLICIES)
    found = errors(manifest, {"Mem": "-1", "Cores": "lots", "Port": "[X]"})
    assert any("ResourceGovernancePolicy MemoryInMB: must be between 0 and" in f for f in found)
    assert any("CpuCores: expected a number, got 'lots'" in f for f in found)
    assert len(found) == 2  # "[X]" as a value is literal: values are not substituted again
    assert (
        "CpuCores: unknown parameter [Nope]"
        in errors(unchecked(stateless(), POLICY_PARAMETERS, POLICIES.replace("[Cores]", "[Nope]")))[
            0
        ]
    )


def test_loading_an_application_manifest_instantiates_its_defaults(tmp_path: Path) -> None:
    text = app_manifest(
        IMPORT.format(extra="") + f"<DefaultServices>{stateless('[C]')}</DefaultServices>",
        parameters='<Parameters><Parameter Name="C" DefaultValue=""/></Parameters>',
    )
    with pytest.raises(ManifestError, match="InstanceCount: expected an integer, got ''"):
        load_application_manifest(write(tmp_path / "a.xml", text))
