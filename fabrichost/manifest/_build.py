"""Build the typed model from a checked :class:`Node` tree.

Callers run the structure check (``_schema``) first: here required attributes are known to be
present and enumerations and booleans to be valid, so building cannot fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabrichost.manifest._model import (
    ApplicationManifest,
    ApplicationParameters,
    ApplicationPolicies,
    CodePackage,
    ConfigOverride,
    ConsoleRedirection,
    ContainerHost,
    DefaultService,
    DllHost,
    Endpoint,
    EndpointOverride,
    EndpointProtocol,
    EndpointType,
    EntryPoint,
    EntryPointType,
    EnvironmentOverride,
    EnvironmentVariable,
    ExeHost,
    ImportPolicies,
    NamedPartition,
    PackageRef,
    Parameter,
    ParameterValue,
    PartitionScheme,
    Principals,
    ResourceGovernancePolicy,
    RunAsPolicy,
    ServiceManifest,
    ServiceManifestImport,
    ServiceManifestRef,
    ServicePackageResourceGovernancePolicy,
    ServiceTemplate,
    ServiceTypeDeclaration,
    Settings,
    SettingsParameter,
    SettingsSection,
    SingletonPartition,
    StatefulServiceTemplate,
    StatefulServiceType,
    StatelessServiceTemplate,
    StatelessServiceType,
    UniformInt64Partition,
    User,
    WorkingFolder,
)
from fabrichost.manifest._schema import RESOURCE_GOVERNANCE_LIMITS

if TYPE_CHECKING:
    from fabrichost.manifest._xml import Node


def _attr(node: Node, name: str, default: str = "") -> str:
    value = node.attribute(name)
    return default if value is None else value


def _bool(node: Node, name: str) -> bool:
    # Every boolean attribute fabrichost reads defaults to false in the schema.
    return _attr(node, name, "false").strip() in ("true", "1")


def _text(node: Node | None) -> str | None:
    return None if node is None else node.text


def _parameters(node: Node | None) -> tuple[Parameter, ...]:
    if node is None:
        return ()
    return tuple(
        Parameter(_attr(p, "Name"), _attr(p, "DefaultValue"), p.line) for p in node.all("Parameter")
    )


# ---- Settings --------------------------------------------------------------------------------


def _section(node: Node) -> SettingsSection:
    return SettingsSection(
        name=_attr(node, "Name"),
        parameters=tuple(
            SettingsParameter(
                name=_attr(p, "Name"),
                value=_attr(p, "Value"),
                line=p.line,
                is_encrypted=_bool(p, "IsEncrypted"),
                must_override=_bool(p, "MustOverride"),
                type=p.attribute("Type"),
            )
            for p in node.all("Parameter")
        ),
        line=node.line,
    )


def build_settings(root: Node, file: str) -> Settings:
    return Settings(file=file, sections=tuple(_section(s) for s in root.all("Section")))


def build_application_parameters(root: Node, file: str) -> ApplicationParameters:
    return ApplicationParameters(
        file=file,
        application_name=_attr(root, "Name"),
        parameters=tuple(
            ParameterValue(_attr(p, "Name"), _attr(p, "Value"), p.line)
            for p in root.children[0].all("Parameter")
        ),
        line=root.line,
    )


# ---- ServiceManifest -------------------------------------------------------------------------


def _service_type(node: Node) -> ServiceTypeDeclaration | None:
    name = _attr(node, "ServiceTypeName")
    placement = _text(node.child("PlacementConstraints"))
    implicit = _bool(node, "UseImplicitHost")
    if node.name == "StatelessServiceType":
        return StatelessServiceType(name, node.line, implicit, placement)
    if node.name == "StatefulServiceType":
        return StatefulServiceType(
            name, node.line, implicit, _bool(node, "HasPersistedState"), placement
        )
    return None  # service group types: recognised by the schema, not hosted by fabrichost


def _exe_host(node: Node) -> ExeHost:
    program = node.child("Program")
    console = node.child("ConsoleRedirection")
    run = node.child("RunFrequency")
    return ExeHost(
        program=_text(program) or "",
        line=program.line if program is not None else node.line,
        arguments=_text(node.child("Arguments")),
        working_folder=WorkingFolder(_text(node.child("WorkingFolder")) or "Work"),
        console_redirection=None
        if console is None
        else ConsoleRedirection(
            int(_attr(console, "FileRetentionCount", "2")),
            int(_attr(console, "FileMaxSizeInKb", "20480")),
        ),
        is_external_executable=_bool(node, "IsExternalExecutable"),
        run_interval_seconds=None if run is None else int(_attr(run, "IntervalInSeconds")),
    )


def _entry_point(node: Node) -> EntryPoint:
    host = node.children[0]
    if host.name == "ExeHost":
        return _exe_host(host)
    if host.name == "ContainerHost":
        return ContainerHost(
            image_name=_text(host.child("ImageName")) or "",
            line=host.line,
            commands=_text(host.child("Commands")),
            entry_point=_text(host.child("EntryPoint")),
        )
    return DllHost(host.line)


def _environment(node: Node | None, default_type: str | None) -> tuple[EnvironmentVariable, ...]:
    if node is None:
        return ()
    return tuple(
        EnvironmentVariable(
            _attr(v, "Name"), _attr(v, "Value"), v.line, v.attribute("Type") or default_type
        )
        for v in node.all("EnvironmentVariable")
    )


def _code_package(node: Node) -> CodePackage:
    setup = node.child("SetupEntryPoint")
    entry = node.child("EntryPoint")
    assert entry is not None  # guaranteed by the structure check
    return CodePackage(
        name=_attr(node, "Name"),
        version=_attr(node, "Version"),
        entry_point=_entry_point(entry),
        line=node.line,
        setup_entry_point=None if setup is None else _exe_host(setup.children[0]),
        is_shared=_bool(node, "IsShared"),
        environment_variables=_environment(node.child("EnvironmentVariables"), "PlainText"),
    )


def _endpoint(node: Node) -> Endpoint:
    port = node.attribute("Port")
    return Endpoint(
        name=_attr(node, "Name"),
        line=node.line,
        protocol=EndpointProtocol(_attr(node, "Protocol", "tcp")),
        type=EndpointType(_attr(node, "Type", "Internal")),
        port=None if port is None else int(port),
        uri_scheme=node.attribute("UriScheme"),
        path_suffix=node.attribute("PathSuffix"),
        code_package_ref=node.attribute("CodePackageRef"),
    )


def build_service_manifest(root: Node, file: str) -> ServiceManifest:
    types_node = root.child("ServiceTypes")
    declared = () if types_node is None else types_node.children
    resources = root.child("Resources")
    endpoints = None if resources is None else resources.child("Endpoints")
    return ServiceManifest(
        file=file,
        name=_attr(root, "Name"),
        version=_attr(root, "Version"),
        service_types=tuple(t for n in declared if (t := _service_type(n)) is not None),
        code_packages=tuple(_code_package(n) for n in root.all("CodePackage")),
        line=root.line,
        config_packages=tuple(_package_ref(n) for n in root.all("ConfigPackage")),
        data_packages=tuple(_package_ref(n) for n in root.all("DataPackage")),
        endpoints=() if endpoints is None else tuple(_endpoint(n) for n in endpoints.children),
        description=_text(root.child("Description")),
    )


def _package_ref(node: Node) -> PackageRef:
    return PackageRef(_attr(node, "Name"), _attr(node, "Version"), node.line)


# ---- ApplicationManifest ---------------------------------------------------------------------


def _config_override(node: Node) -> ConfigOverride:
    settings = node.child("Settings")
    sections = () if settings is None else tuple(_section(s) for s in settings.all("Section"))
    return ConfigOverride(_attr(node, "Name"), sections, node.line)


def _policies(node: Node | None) -> ImportPolicies:
    if node is None:
        return ImportPolicies()
    sprg = node.child("ServicePackageResourceGovernancePolicy")
    return ImportPolicies(
        run_as=tuple(
            RunAsPolicy(
                _attr(p, "CodePackageRef"),
                _attr(p, "UserRef"),
                p.line,
                EntryPointType(_attr(p, "EntryPointType", "Main")),
            )
            for p in node.all("RunAsPolicy")
        ),
        resource_governance=tuple(
            _resource_governance(p) for p in node.all("ResourceGovernancePolicy")
        ),
        service_package_resource_governance=None
        if sprg is None
        else ServicePackageResourceGovernancePolicy(
            sprg.line, _attr(sprg, "CpuCores", "0"), _attr(sprg, "MemoryInMB", "0")
        ),
        container_host_code_packages=tuple(
            _attr(p, "CodePackageRef") for p in node.all("ContainerHostPolicies")
        ),
        others=tuple(
            p.name
            for p in node.children
            if p.name
            not in (
                "RunAsPolicy",
                "ResourceGovernancePolicy",
                "ServicePackageResourceGovernancePolicy",
                "ContainerHostPolicies",
            )
        ),
    )


def _resource_governance(node: Node) -> ResourceGovernancePolicy:
    limits = [_attr(node, name, "0") for name in RESOURCE_GOVERNANCE_LIMITS]
    return ResourceGovernancePolicy(_attr(node, "CodePackageRef"), node.line, *limits)


def _import(node: Node) -> ServiceManifestImport:
    ref = node.children[0]
    overrides = node.child("ConfigOverrides")
    resources = node.child("ResourceOverrides")
    endpoints = None if resources is None else resources.child("Endpoints")
    return ServiceManifestImport(
        ref=ServiceManifestRef(
            _attr(ref, "ServiceManifestName"), _attr(ref, "ServiceManifestVersion"), ref.line
        ),
        line=node.line,
        config_overrides=()
        if overrides is None
        else tuple(_config_override(c) for c in overrides.children),
        endpoint_overrides=()
        if endpoints is None
        else tuple(
            EndpointOverride(
                _attr(e, "Name"),
                e.line,
                *(e.attribute(a) for a in ("Port", "Protocol", "Type", "UriScheme", "PathSuffix")),
            )
            for e in endpoints.children
        ),
        environment_overrides=tuple(
            EnvironmentOverride(_attr(e, "CodePackageRef"), _environment(e, None), e.line)
            for e in node.all("EnvironmentOverrides")
        ),
        policies=_policies(node.child("Policies")),
    )


def _partition(node: Node) -> PartitionScheme:
    part = node.children[0]
    if part.name == "UniformInt64Partition":
        return UniformInt64Partition(
            _attr(part, "PartitionCount"), _attr(part, "LowKey"), _attr(part, "HighKey"), part.line
        )
    if part.name == "NamedPartition":
        return NamedPartition(tuple(_attr(p, "Name") for p in part.children), part.line)
    return SingletonPartition(part.line)


def _template(node: Node) -> ServiceTemplate:
    if node.name == "StatelessService":
        return StatelessServiceTemplate(
            _attr(node, "ServiceTypeName"),
            _partition(node),
            node.line,
            _attr(node, "InstanceCount", "1"),
        )
    return StatefulServiceTemplate(
        _attr(node, "ServiceTypeName"),
        _partition(node),
        node.line,
        _attr(node, "TargetReplicaSetSize", "1"),
        _attr(node, "MinReplicaSetSize", "1"),
    )


def _default_services(node: Node | None) -> tuple[DefaultService, ...]:
    if node is None:
        return ()
    return tuple(
        DefaultService(
            name=_attr(s, "Name"),
            service=_template(s.children[0]) if s.children else None,
            line=s.line,
            activation_mode=_attr(s, "ServicePackageActivationMode", "SharedProcess"),
            service_dns_name=s.attribute("ServiceDnsName"),
        )
        for s in node.all("Service")
    )


def _service_groups(node: Node | None) -> tuple[tuple[str, int], ...]:
    if node is None:
        return ()
    return tuple((_attr(g, "Name"), g.line) for g in node.all("ServiceGroup"))


def _principals(node: Node | None) -> Principals:
    if node is None:
        return Principals()
    users = node.child("Users")
    groups = node.child("Groups")
    return Principals(
        users=()
        if users is None
        else tuple(
            User(_attr(u, "Name"), u.line, _attr(u, "AccountType", "LocalUser"))
            for u in users.children
        ),
        groups=() if groups is None else tuple(_attr(g, "Name") for g in groups.children),
    )


def build_application_manifest(root: Node, file: str) -> ApplicationManifest:
    policies = root.child("Policies")
    run_as = None if policies is None else policies.child("DefaultRunAsPolicy")
    return ApplicationManifest(
        file=file,
        application_type_name=_attr(root, "ApplicationTypeName"),
        application_type_version=_attr(root, "ApplicationTypeVersion"),
        service_manifest_imports=tuple(_import(n) for n in root.all("ServiceManifestImport")),
        line=root.line,
        parameters=_parameters(root.child("Parameters")),
        default_services=_default_services(root.child("DefaultServices")),
        default_service_groups=_service_groups(root.child("DefaultServices")),
        principals=_principals(root.child("Principals")),
        policies=ApplicationPolicies(None if run_as is None else run_as.attribute("UserRef")),
        description=_text(root.child("Description")),
    )
