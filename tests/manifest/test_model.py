"""The typed model: every feature read from XML, with the schema's defaults."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ManifestError
from fabrichost.manifest import (
    ApplicationParameters,
    ContainerHost,
    DllHost,
    EndpointProtocol,
    EndpointType,
    EntryPointType,
    ExeHost,
    NamedPartition,
    SingletonPartition,
    StatefulServiceTemplate,
    StatefulServiceType,
    StatelessServiceTemplate,
    StatelessServiceType,
    UniformInt64Partition,
    WorkingFolder,
    load_application_manifest,
    load_application_parameters,
    load_service_manifest,
    load_settings,
    parse_parameters_file,
)

from .helpers import NS, app_manifest, parameters_file, service_manifest, settings, write

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.manifest import ServiceManifest

RICH_SERVICE = service_manifest(
    """
  <CodePackage Name="Code" Version="1.0.0" IsShared="true">
    <SetupEntryPoint>
      <ExeHost IsExternalExecutable="true">
        <Program>setup.sh</Program>
        <Arguments>-x 1</Arguments>
        <WorkingFolder>CodePackage</WorkingFolder>
      </ExeHost>
    </SetupEntryPoint>
    <EntryPoint>
      <ExeHost>
        <Program>bin/run.sh</Program>
        <ConsoleRedirection FileRetentionCount="5" />
        <RunFrequency IntervalInSeconds="60" />
      </ExeHost>
    </EntryPoint>
    <EnvironmentVariables>
      <EnvironmentVariable Name="A" Value="1" />
      <EnvironmentVariable Name="B" Value="2" Type="Encrypted" />
      <EnvironmentVariable Name="C" />
    </EnvironmentVariables>
  </CodePackage>
  <CodePackage Name="Box" Version="2">
    <EntryPoint>
      <ContainerHost>
        <ImageName>nginx:latest</ImageName>
        <Commands>a,b</Commands>
        <EntryPoint>/start</EntryPoint>
      </ContainerHost>
    </EntryPoint>
  </CodePackage>
  <CodePackage Name="Dll" Version="3">
    <EntryPoint><DllHost><UnmanagedDll>x.dll</UnmanagedDll></DllHost></EntryPoint>
  </CodePackage>
  <ConfigPackage Name="Config" Version="1.0.0" />
  <DataPackage Name="Data" Version="9" />
  <Resources>
    <Endpoints>
      <Endpoint Name="Plain" />
      <Endpoint Name="Web" Protocol="https" Type="Input" Port="443" UriScheme="https"
                PathSuffix="/api" CodePackageRef="Code" />
    </Endpoints>
  </Resources>""",
    types="""
    <StatelessServiceType ServiceTypeName="Web" UseImplicitHost="true">
      <PlacementConstraints>(NodeType==A)</PlacementConstraints>
    </StatelessServiceType>
    <StatefulServiceType ServiceTypeName="Store" HasPersistedState="1" />
    <StatelessServiceGroupType ServiceGroupTypeName="G" />""",
).replace("<ServiceTypes>", "<Description>a service</Description>\n  <ServiceTypes>")


@pytest.fixture
def rich(tmp_path: Path) -> ServiceManifest:
    return load_service_manifest(write(tmp_path / "ServiceManifest.xml", RICH_SERVICE))


def test_service_manifest_header_and_types(rich: ServiceManifest) -> None:
    assert (rich.name, rich.version, rich.description) == ("WebPkg", "1.0.0", "a service")
    web, store = rich.service_types  # the group type is recognised but not modelled
    assert web == StatelessServiceType("Web", web.line, True, "(NodeType==A)")
    assert isinstance(store, StatefulServiceType)
    assert (store.has_persisted_state, store.use_implicit_host) == (True, False)
    assert rich.service_type("Store") is store
    assert rich.service_type("Nope") is None


def test_exe_host_entry_points_and_defaults(rich: ServiceManifest) -> None:
    code = rich.code_package("Code")
    assert code is not None
    assert code.is_shared
    setup, main = code.setup_entry_point, code.entry_point
    assert setup == ExeHost(
        "setup.sh",
        setup.line if setup else 0,
        arguments="-x 1",
        working_folder=WorkingFolder.CODE_PACKAGE,
        is_external_executable=True,
    )
    assert isinstance(main, ExeHost)
    assert main.program == "bin/run.sh"
    assert main.working_folder is WorkingFolder.WORK
    assert main.console_redirection is not None
    assert main.console_redirection.file_retention_count == 5
    assert main.console_redirection.file_max_size_in_kb == 20480
    assert main.run_interval_seconds == 60
    assert main.arguments is None
    assert not main.is_external_executable
    assert [(v.name, v.value, v.type) for v in code.environment_variables] == [
        ("A", "1", "PlainText"),
        ("B", "2", "Encrypted"),
        ("C", "", "PlainText"),
    ]


def test_container_and_dll_hosts_are_recognised(rich: ServiceManifest) -> None:
    box, dll = rich.code_package("Box"), rich.code_package("Dll")
    assert box is not None
    assert dll is not None
    assert isinstance(box.entry_point, ContainerHost)
    assert (box.entry_point.image_name, box.entry_point.commands) == ("nginx:latest", "a,b")
    assert box.entry_point.entry_point == "/start"
    assert isinstance(dll.entry_point, DllHost)
    assert not box.is_shared
    assert box.setup_entry_point is None


def test_packages_and_endpoints(rich: ServiceManifest) -> None:
    assert [(p.name, p.version) for p in rich.config_packages] == [("Config", "1.0.0")]
    assert [(p.name, p.version) for p in rich.data_packages] == [("Data", "9")]
    plain, web = rich.endpoints
    assert (plain.protocol, plain.type, plain.port, plain.code_package_ref) == (
        EndpointProtocol.TCP,
        EndpointType.INTERNAL,
        None,
        None,
    )
    assert (web.protocol, web.type, web.port) == (EndpointProtocol.HTTPS, EndpointType.INPUT, 443)
    assert (web.uri_scheme, web.path_suffix, web.code_package_ref) == ("https", "/api", "Code")


def test_model_is_frozen(rich: ServiceManifest) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        rich.name = "x"  # type: ignore[misc]
    assert isinstance(rich.code_packages, tuple)


RICH_APP = app_manifest(
    """
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="WebPkg" ServiceManifestVersion="1.0.0" />
    <ConfigOverrides>
      <ConfigOverride Name="Config">
        <Settings><Section Name="S">
          <Parameter Name="P" Value="v" IsEncrypted="true" Type="Secret"/>
        </Section></Settings>
      </ConfigOverride>
    </ConfigOverrides>
    <ResourceOverrides>
      <Endpoints><Endpoint Name="Web" Port="[Port]" /></Endpoints>
    </ResourceOverrides>
    <EnvironmentOverrides CodePackageRef="Code">
      <EnvironmentVariable Name="MODE" Value="[Mode]" />
    </EnvironmentOverrides>
    <Policies>
      <RunAsPolicy CodePackageRef="Code" UserRef="Admin" EntryPointType="Setup" />
      <RunAsPolicy CodePackageRef="Code" UserRef="Admin" />
      <ResourceGovernancePolicy CodePackageRef="Code" MemoryInMB="512" CpuShares="[Cpu]" />
      <ServicePackageResourceGovernancePolicy CpuCores="0.5" />
      <ContainerHostPolicies CodePackageRef="Box">
        <PortBinding ContainerPort="80"/>
      </ContainerHostPolicies>
      <PackageSharingPolicy PackageRef="Code" />
    </Policies>
  </ServiceManifestImport>
  <DefaultServices>
    <Service Name="A" ServiceDnsName="a.svc" ServicePackageActivationMode="ExclusiveProcess">
      <StatelessService ServiceTypeName="Web"><SingletonPartition /></StatelessService>
    </Service>
    <Service Name="B">
      <StatefulService ServiceTypeName="Store" TargetReplicaSetSize="3" MinReplicaSetSize="2">
        <UniformInt64Partition PartitionCount="2" LowKey="0" HighKey="9" />
      </StatefulService>
    </Service>
    <Service Name="C">
      <StatefulService ServiceTypeName="Store">
        <NamedPartition><Partition Name="x" /><Partition Name="y" /></NamedPartition>
      </StatefulService>
    </Service>
  </DefaultServices>
  <Principals>
    <Groups>
      <Group Name="Ops"><Membership><SystemGroup Name="Administrators"/></Membership></Group>
    </Groups>
    <Users><User Name="Admin" AccountType="LocalSystem" /><User Name="Plain" /></Users>
  </Principals>
  <Policies><DefaultRunAsPolicy UserRef="Plain" /></Policies>""",
    parameters="""
  <Description>demo</Description>
  <Parameters>
    <Parameter Name="Port" DefaultValue="8080" />
    <Parameter Name="Mode" DefaultValue="dev" />
    <Parameter Name="Cpu" DefaultValue="100" />
  </Parameters>""",
)


def test_application_manifest_features_and_defaults(tmp_path: Path) -> None:
    app = load_application_manifest(write(tmp_path / "ApplicationManifest.xml", RICH_APP))
    assert (app.application_type_name, app.application_type_version) == ("MyAppType", "1.0.0")
    assert app.description == "demo"
    assert next((p.name, p.default_value) for p in app.parameters) == ("Port", "8080")
    (item,) = app.service_manifest_imports
    assert (item.ref.service_manifest_name, item.ref.service_manifest_version) == (
        "WebPkg",
        "1.0.0",
    )
    (override,) = item.config_overrides
    parameter = override.sections[0].parameters[0]
    assert (override.name, parameter.value, parameter.is_encrypted, parameter.type) == (
        "Config",
        "v",
        True,
        "Secret",
    )
    assert item.endpoint_overrides[0].port == "[Port]"
    assert item.endpoint_overrides[0].protocol is None
    assert item.environment_overrides[0].variables[0].type is None
    setup_run_as, main_run_as = item.policies.run_as
    assert (setup_run_as.entry_point_type, main_run_as.entry_point_type) == (
        EntryPointType.SETUP,
        EntryPointType.MAIN,
    )
    (governance,) = item.policies.resource_governance
    assert (governance.memory_in_mb, governance.cpu_shares, governance.cpu_percent) == (
        "512",
        "[Cpu]",
        "0",
    )
    package_governance = item.policies.service_package_resource_governance
    assert package_governance is not None
    assert (package_governance.cpu_cores, package_governance.memory_in_mb) == ("0.5", "0")
    assert item.policies.container_host_code_packages == ("Box",)
    assert item.policies.others == ("PackageSharingPolicy",)
    a, b, c = app.default_services
    assert (a.activation_mode, a.service_dns_name) == ("ExclusiveProcess", "a.svc")
    assert isinstance(a.service, StatelessServiceTemplate)
    assert (a.service.service_type_name, a.service.instance_count) == ("Web", "1")
    assert isinstance(a.service.partition, SingletonPartition)
    assert (b.activation_mode, b.service_dns_name) == ("SharedProcess", None)
    assert isinstance(b.service, StatefulServiceTemplate)
    assert (b.service.target_replica_set_size, b.service.min_replica_set_size) == ("3", "2")
    assert isinstance(b.service.partition, UniformInt64Partition)
    assert (b.service.partition.partition_count, b.service.partition.high_key) == ("2", "9")
    assert isinstance(c.service, StatefulServiceTemplate)
    assert isinstance(c.service.partition, NamedPartition)
    assert c.service.partition.names == ("x", "y")
    assert (c.service.target_replica_set_size, c.service.min_replica_set_size) == ("1", "1")
    assert [(u.name, u.account_type) for u in app.principals.users] == [
        ("Admin", "LocalSystem"),
        ("Plain", "LocalUser"),
    ]
    assert app.principals.groups == ("Ops",)
    assert app.policies.default_run_as_user == "Plain"


def test_stateless_instance_count_defaults_to_one(tmp_path: Path) -> None:
    text = app_manifest(
        '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="P" '
        'ServiceManifestVersion="1"/></ServiceManifestImport>'
        '<DefaultServices><Service Name="S"><StatelessService ServiceTypeName="T">'
        "<SingletonPartition/></StatelessService></Service></DefaultServices>",
        parameters="",
    )
    app = load_application_manifest(write(tmp_path / "a.xml", text))
    service = app.default_services[0].service
    assert isinstance(service, StatelessServiceTemplate)
    assert service.instance_count == "1"
    assert app.parameters == ()
    assert app.principals.users == ()


def test_settings_keep_encryption_type_and_must_override(tmp_path: Path) -> None:
    text = settings(
        '<Section Name="S"><Parameter Name="A" Value="1"/>'
        '<Parameter Name="B" Value="x" IsEncrypted="true" Type="Encrypted" MustOverride="true"/>'
        '</Section><Section Name="Empty"/>'
    )
    loaded = load_settings(write(tmp_path / "Settings.xml", text))
    section = loaded.section("S")
    assert section is not None
    assert loaded.section("Nope") is None
    a, b = section.parameters
    assert (a.is_encrypted, a.must_override, a.type) == (False, False, None)
    assert (b.is_encrypted, b.must_override, b.type) == (True, True, "Encrypted")
    assert section.parameter("B") is b
    assert section.parameter("Z") is None
    assert loaded.as_dict() == {"S": {"A": "1", "B": "x"}, "Empty": {}}


def test_parameter_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Local.xml",
        parameters_file('<Parameter Name="A" Value="1"/><Parameter Name="B" Value=""/>'),
    )
    assert parse_parameters_file(path) == ("fabric:/MyApp", {"A": "1", "B": ""})
    loaded = load_application_parameters(path)
    assert isinstance(loaded, ApplicationParameters)
    assert loaded.parameters[0].line == 2


def test_wrong_kind_for_a_loader_names_the_root(tmp_path: Path) -> None:
    path = write(tmp_path / "Settings.xml", f'<Settings xmlns="{NS}"/>')
    with pytest.raises(ManifestError, match="root element Settings is not one of ServiceManifest"):
        load_service_manifest(path)


def test_principals_with_groups_only(tmp_path: Path) -> None:
    text = app_manifest(
        '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="P" '
        'ServiceManifestVersion="1"/></ServiceManifestImport>'
        '<Principals><Groups><Group Name="G"/></Groups></Principals>',
        parameters="",
    )
    app = load_application_manifest(write(tmp_path / "a.xml", text))
    assert app.principals.groups == ("G",)
    assert app.principals.users == ()
