"""The typed model of Service Fabric application packages: frozen, slotted, no IO.

Two layers:

* the *type* layer mirrors the files (``ApplicationManifest``, ``ServiceManifest``, ``Settings``,
  ``ApplicationParameters``). Attributes that Service Fabric lets you parameterise with
  ``[Name]`` stay strings here, exactly as written;
* the *instance* layer (``ApplicationInstance``) is an application manifest with every parameter
  substituted and every count parsed into an int (see ``_params.instantiate``).

Every item remembers the line it came from so later checks can name ``file:line``. Defaults are
the ones the Service Fabric schema (``ServiceFabricServiceModel.xsd``) declares.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    # A word the manifests share with service descriptions: one definition, in the wire layer.
    from fabrichost.wire import ActivationMode


class WorkingFolder(enum.StrEnum):
    """``ExeHost/WorkingFolder``: where the process starts (schema default ``Work``)."""

    WORK = "Work"
    CODE_PACKAGE = "CodePackage"
    CODE_BASE = "CodeBase"


class EndpointProtocol(enum.StrEnum):
    """``Endpoint Protocol`` (schema default ``tcp``)."""

    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"
    UDP = "udp"


class EndpointType(enum.StrEnum):
    """``Endpoint Type`` (schema default ``Internal``)."""

    INPUT = "Input"
    INTERNAL = "Internal"


class EntryPointType(enum.StrEnum):
    """``RunAsPolicy EntryPointType``: which entry point the user applies to (default ``Main``)."""

    SETUP = "Setup"
    MAIN = "Main"
    ALL = "All"


# ---------------------------------------------------------------------------------------------
# Settings.xml and config overrides


@dataclass(frozen=True, slots=True)
class SettingsParameter:
    """``Section/Parameter``. ``value`` may be ``[Name]`` inside a ConfigOverride."""

    name: str
    value: str
    line: int
    is_encrypted: bool = False
    must_override: bool = False
    type: str | None = None


@dataclass(frozen=True, slots=True)
class SettingsSection:
    name: str
    parameters: tuple[SettingsParameter, ...]
    line: int

    def parameter(self, name: str) -> SettingsParameter | None:
        return next((p for p in self.parameters if p.name == name), None)


@dataclass(frozen=True, slots=True)
class Settings:
    """A config package's ``Settings.xml``."""

    file: str
    sections: tuple[SettingsSection, ...]

    def section(self, name: str) -> SettingsSection | None:
        return next((s for s in self.sections if s.name == name), None)

    def as_dict(self) -> dict[str, dict[str, str]]:
        """Section name → parameter name → value."""
        return {s.name: {p.name: p.value for p in s.parameters} for s in self.sections}


@dataclass(frozen=True, slots=True)
class ConfigOverride:
    """``ConfigOverride Name=<config package>`` with the sections it replaces values in."""

    name: str
    sections: tuple[SettingsSection, ...]
    line: int


# ---------------------------------------------------------------------------------------------
# ServiceManifest.xml


@dataclass(frozen=True, slots=True)
class StatelessServiceType:
    service_type_name: str
    line: int
    use_implicit_host: bool = False
    placement_constraints: str | None = None


@dataclass(frozen=True, slots=True)
class StatefulServiceType:
    service_type_name: str
    line: int
    use_implicit_host: bool = False
    has_persisted_state: bool = False
    placement_constraints: str | None = None


ServiceTypeDeclaration = StatelessServiceType | StatefulServiceType


@dataclass(frozen=True, slots=True)
class ConsoleRedirection:
    file_retention_count: int = 2
    file_max_size_in_kb: int = 20480


@dataclass(frozen=True, slots=True)
class ExeHost:
    """An ``ExeHost`` entry point. ``line`` is the line of its ``Program`` element."""

    program: str
    line: int
    arguments: str | None = None
    working_folder: WorkingFolder = WorkingFolder.WORK
    console_redirection: ConsoleRedirection | None = None
    is_external_executable: bool = False
    run_interval_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerHost:
    """Recognised so that activation can refuse it with a clear error."""

    image_name: str
    line: int
    commands: str | None = None
    entry_point: str | None = None


@dataclass(frozen=True, slots=True)
class DllHost:
    """Recognised so that activation can refuse it with a clear error."""

    line: int


EntryPoint = ExeHost | ContainerHost | DllHost


@dataclass(frozen=True, slots=True)
class EnvironmentVariable:
    """``EnvironmentVariable``; ``type`` is None in an override that does not set it."""

    name: str
    value: str
    line: int
    type: str | None = "PlainText"


@dataclass(frozen=True, slots=True)
class CodePackage:
    name: str
    version: str
    entry_point: EntryPoint
    line: int
    setup_entry_point: ExeHost | None = None
    is_shared: bool = False
    environment_variables: tuple[EnvironmentVariable, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageRef:
    """A ``ConfigPackage`` or ``DataPackage``: a folder named ``name`` beside the manifest."""

    name: str
    version: str
    line: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    line: int
    protocol: EndpointProtocol = EndpointProtocol.TCP
    type: EndpointType = EndpointType.INTERNAL
    port: int | None = None
    uri_scheme: str | None = None
    path_suffix: str | None = None
    code_package_ref: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceManifest:
    file: str
    name: str
    version: str
    service_types: tuple[ServiceTypeDeclaration, ...]
    code_packages: tuple[CodePackage, ...]
    line: int
    config_packages: tuple[PackageRef, ...] = ()
    data_packages: tuple[PackageRef, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    description: str | None = None

    def code_package(self, name: str) -> CodePackage | None:
        return next((c for c in self.code_packages if c.name == name), None)

    def service_type(self, name: str) -> ServiceTypeDeclaration | None:
        return next((t for t in self.service_types if t.service_type_name == name), None)


# ---------------------------------------------------------------------------------------------
# ApplicationManifest.xml (type layer: parameterisable values are kept as written)


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    default_value: str
    line: int


@dataclass(frozen=True, slots=True)
class ServiceManifestRef:
    service_manifest_name: str
    service_manifest_version: str
    line: int


@dataclass(frozen=True, slots=True)
class EnvironmentOverride:
    code_package_ref: str
    variables: tuple[EnvironmentVariable, ...]
    line: int


@dataclass(frozen=True, slots=True)
class EndpointOverride:
    name: str
    line: int
    port: str | None = None
    protocol: str | None = None
    type: str | None = None
    uri_scheme: str | None = None
    path_suffix: str | None = None


@dataclass(frozen=True, slots=True)
class RunAsPolicy:
    code_package_ref: str
    user_ref: str
    line: int
    entry_point_type: EntryPointType = EntryPointType.MAIN


@dataclass(frozen=True, slots=True)
class ResourceGovernancePolicy:
    """Per code package limits; values stay strings because each may be ``[Name]``."""

    code_package_ref: str
    line: int
    memory_in_mb: str = "0"
    memory_swap_in_mb: str = "0"
    memory_reservation_in_mb: str = "0"
    cpu_shares: str = "0"
    cpu_percent: str = "0"
    maximum_iops: str = "0"
    maximum_io_bandwidth: str = "0"
    block_io_weight: str = "0"
    disk_quota_in_mb: str = "0"
    kernel_memory_in_mb: str = "0"
    shm_size_in_mb: str = "0"


@dataclass(frozen=True, slots=True)
class ServicePackageResourceGovernancePolicy:
    line: int
    cpu_cores: str = "0"
    memory_in_mb: str = "0"


@dataclass(frozen=True, slots=True)
class ImportPolicies:
    """``ServiceManifestImport/Policies``; ``others`` names policies fabrichost only records."""

    run_as: tuple[RunAsPolicy, ...] = ()
    resource_governance: tuple[ResourceGovernancePolicy, ...] = ()
    service_package_resource_governance: ServicePackageResourceGovernancePolicy | None = None
    container_host_code_packages: tuple[str, ...] = ()
    others: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceManifestImport:
    ref: ServiceManifestRef
    line: int
    config_overrides: tuple[ConfigOverride, ...] = ()
    endpoint_overrides: tuple[EndpointOverride, ...] = ()
    environment_overrides: tuple[EnvironmentOverride, ...] = ()
    policies: ImportPolicies = ImportPolicies()


@dataclass(frozen=True, slots=True)
class SingletonPartition:
    line: int


@dataclass(frozen=True, slots=True)
class UniformInt64Partition:
    """Key range ``[low_key, high_key]`` split in ``partition_count`` parts (as written)."""

    partition_count: str
    low_key: str
    high_key: str
    line: int


@dataclass(frozen=True, slots=True)
class NamedPartition:
    names: tuple[str, ...]
    line: int


PartitionScheme = SingletonPartition | UniformInt64Partition | NamedPartition


@dataclass(frozen=True, slots=True)
class StatelessServiceTemplate:
    service_type_name: str
    partition: PartitionScheme
    line: int
    instance_count: str = "1"


@dataclass(frozen=True, slots=True)
class StatefulServiceTemplate:
    service_type_name: str
    partition: PartitionScheme
    line: int
    target_replica_set_size: str = "1"
    min_replica_set_size: str = "1"


ServiceTemplate = StatelessServiceTemplate | StatefulServiceTemplate


@dataclass(frozen=True, slots=True)
class DefaultService:
    """``DefaultServices/Service``; ``service`` is None when the element names no service kind."""

    name: str
    service: ServiceTemplate | None
    line: int
    activation_mode: str = "SharedProcess"
    service_dns_name: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    name: str
    line: int
    account_type: str = "LocalUser"


@dataclass(frozen=True, slots=True)
class Principals:
    users: tuple[User, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplicationPolicies:
    default_run_as_user: str | None = None


@dataclass(frozen=True, slots=True)
class ApplicationManifest:
    file: str
    application_type_name: str
    application_type_version: str
    service_manifest_imports: tuple[ServiceManifestImport, ...]
    line: int
    parameters: tuple[Parameter, ...] = ()
    default_services: tuple[DefaultService, ...] = ()
    # ``DefaultServices/ServiceGroup`` (name, line): valid per the schema, not hosted here.
    default_service_groups: tuple[tuple[str, int], ...] = ()
    principals: Principals = Principals()
    policies: ApplicationPolicies = ApplicationPolicies()
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ParameterValue:
    name: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class ApplicationParameters:
    """An application parameter file: ``<Application Name=…><Parameters><Parameter …/>``."""

    file: str
    application_name: str
    parameters: tuple[ParameterValue, ...]
    line: int

    def as_dict(self) -> dict[str, str]:
        """Parameter name → value (a later duplicate wins, as it would on the command line)."""
        return {p.name: p.value for p in self.parameters}


# ---------------------------------------------------------------------------------------------
# The instance layer: everything substituted and typed


@dataclass(frozen=True, slots=True)
class UniformPartitionRange:
    partition_count: int
    low_key: int
    high_key: int


PartitionLayout = SingletonPartition | UniformPartitionRange | NamedPartition


@dataclass(frozen=True, slots=True)
class ServiceDescription:
    """A default service ready to create. ``instance_count`` is set for stateless services
    (``-1`` = one per node); the replica set sizes for stateful ones."""

    name: str
    service_type_name: str
    stateful: bool
    partition: PartitionLayout
    activation_mode: ActivationMode
    service_dns_name: str | None = None
    instance_count: int | None = None
    target_replica_set_size: int | None = None
    min_replica_set_size: int | None = None


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """Resource governance for one code package, parsed (0 means "not limited")."""

    code_package_ref: str
    memory_in_mb: int = 0
    memory_swap_in_mb: int = 0
    memory_reservation_in_mb: int = 0
    cpu_shares: int = 0
    cpu_percent: int = 0


@dataclass(frozen=True, slots=True)
class ServicePackageLimits:
    cpu_cores: float = 0.0
    memory_in_mb: int = 0


@dataclass(frozen=True, slots=True)
class ImportInstance:
    """One ``ServiceManifestImport`` with its values substituted."""

    service_manifest_name: str
    service_manifest_version: str
    environment_overrides: Mapping[str, tuple[EnvironmentVariable, ...]]
    config_overrides: tuple[ConfigOverride, ...]
    endpoint_overrides: tuple[EndpointOverride, ...]
    run_as: tuple[RunAsPolicy, ...]
    resource_limits: tuple[ResourceLimits, ...]
    service_package_limits: ServicePackageLimits | None


@dataclass(frozen=True, slots=True)
class ApplicationInstance:
    """An application manifest instantiated with parameter values.

    ``settings`` is filled when instantiated from a package: service manifest name → config
    package name → the ``Settings`` with the import's ``ConfigOverrides`` applied.
    """

    application_type_name: str
    application_type_version: str
    parameters: Mapping[str, str]
    imports: tuple[ImportInstance, ...]
    default_services: tuple[ServiceDescription, ...]
    settings: Mapping[str, Mapping[str, Settings]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# A package folder


@dataclass(frozen=True, slots=True)
class ApplicationPackage:
    """An application package folder, loaded and checked (see ``load_application_package``).

    ``service_manifests`` maps each imported service manifest name to its manifest (its folder
    is ``root / name``); ``settings`` maps service manifest name → config package name → the
    package's ``Settings.xml`` as written (no overrides applied; see ``instantiate``).
    """

    root: Path
    application: ApplicationManifest
    service_manifests: Mapping[str, ServiceManifest]
    settings: Mapping[str, Mapping[str, Settings]]
