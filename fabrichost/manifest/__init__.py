"""Read Service Fabric application packages into a frozen, typed model.

Usage::

    from pathlib import Path
    from fabrichost.manifest import (
        check_path, instantiate, load_application_package, parse_parameters_file, program_path,
    )

    package = load_application_package(Path("manifests/MyApp"))
    package.application.application_type_name              # "MyAppType"
    manifest = package.service_manifests["MyServicePackage"]
    program = program_path(package, "MyServicePackage", "MyCodePackage")

    name, values = parse_parameters_file(Path("ApplicationParameters/Local.xml"))
    instance = instantiate(package, {**values, "ServiceA_PartitionCount": "2"})
    for service in instance.default_services:               # substituted and typed
        service.name, service.activation_mode, service.partition
    instance.settings["MyServicePackage"]["Config"].as_dict()   # overrides applied

    result = check_path(Path("manifests/MyApp"))            # never raises for bad input
    result.ok, result.diagnostics

Every problem is a :class:`~fabrichost.errors.Diagnostic` (file, line, message); loaders and
:func:`instantiate` raise them all together as one :class:`~fabrichost.errors.ManifestError`.
XML is parsed safely (no DTD, entities, network or XInclude; 4 MiB limit).
"""

from __future__ import annotations

from fabrichost.manifest._check import CheckResult as CheckResult
from fabrichost.manifest._check import check_path as check_path
from fabrichost.manifest._files import Document as Document
from fabrichost.manifest._files import load_application_manifest as load_application_manifest
from fabrichost.manifest._files import load_application_parameters as load_application_parameters
from fabrichost.manifest._files import load_document as load_document
from fabrichost.manifest._files import load_service_manifest as load_service_manifest
from fabrichost.manifest._files import load_settings as load_settings
from fabrichost.manifest._files import parse_parameters_file as parse_parameters_file
from fabrichost.manifest._instance import instantiate as instantiate
from fabrichost.manifest._model import ApplicationInstance as ApplicationInstance
from fabrichost.manifest._model import ApplicationManifest as ApplicationManifest
from fabrichost.manifest._model import ApplicationPackage as ApplicationPackage
from fabrichost.manifest._model import ApplicationParameters as ApplicationParameters
from fabrichost.manifest._model import CodePackage as CodePackage
from fabrichost.manifest._model import ConfigOverride as ConfigOverride
from fabrichost.manifest._model import ConsoleRedirection as ConsoleRedirection
from fabrichost.manifest._model import ContainerHost as ContainerHost
from fabrichost.manifest._model import DefaultService as DefaultService
from fabrichost.manifest._model import DllHost as DllHost
from fabrichost.manifest._model import Endpoint as Endpoint
from fabrichost.manifest._model import EndpointOverride as EndpointOverride
from fabrichost.manifest._model import EndpointProtocol as EndpointProtocol
from fabrichost.manifest._model import EndpointType as EndpointType
from fabrichost.manifest._model import EntryPoint as EntryPoint
from fabrichost.manifest._model import EntryPointType as EntryPointType
from fabrichost.manifest._model import EnvironmentOverride as EnvironmentOverride
from fabrichost.manifest._model import EnvironmentVariable as EnvironmentVariable
from fabrichost.manifest._model import ExeHost as ExeHost
from fabrichost.manifest._model import ImportInstance as ImportInstance
from fabrichost.manifest._model import ImportPolicies as ImportPolicies
from fabrichost.manifest._model import NamedPartition as NamedPartition
from fabrichost.manifest._model import PackageRef as PackageRef
from fabrichost.manifest._model import Parameter as Parameter
from fabrichost.manifest._model import ParameterValue as ParameterValue
from fabrichost.manifest._model import PartitionLayout as PartitionLayout
from fabrichost.manifest._model import PartitionScheme as PartitionScheme
from fabrichost.manifest._model import Principals as Principals
from fabrichost.manifest._model import ResourceGovernancePolicy as ResourceGovernancePolicy
from fabrichost.manifest._model import ResourceLimits as ResourceLimits
from fabrichost.manifest._model import RunAsPolicy as RunAsPolicy
from fabrichost.manifest._model import ServiceDescription as ServiceDescription
from fabrichost.manifest._model import ServiceManifest as ServiceManifest
from fabrichost.manifest._model import ServiceManifestImport as ServiceManifestImport
from fabrichost.manifest._model import ServiceManifestRef as ServiceManifestRef
from fabrichost.manifest._model import ServicePackageLimits as ServicePackageLimits
from fabrichost.manifest._model import (
    ServicePackageResourceGovernancePolicy as ServicePackageResourceGovernancePolicy,
)
from fabrichost.manifest._model import ServiceTemplate as ServiceTemplate
from fabrichost.manifest._model import ServiceTypeDeclaration as ServiceTypeDeclaration
from fabrichost.manifest._model import Settings as Settings
from fabrichost.manifest._model import SettingsParameter as SettingsParameter
from fabrichost.manifest._model import SettingsSection as SettingsSection
from fabrichost.manifest._model import SingletonPartition as SingletonPartition
from fabrichost.manifest._model import StatefulServiceTemplate as StatefulServiceTemplate
from fabrichost.manifest._model import StatefulServiceType as StatefulServiceType
from fabrichost.manifest._model import StatelessServiceTemplate as StatelessServiceTemplate
from fabrichost.manifest._model import StatelessServiceType as StatelessServiceType
from fabrichost.manifest._model import UniformInt64Partition as UniformInt64Partition
from fabrichost.manifest._model import UniformPartitionRange as UniformPartitionRange
from fabrichost.manifest._model import User as User
from fabrichost.manifest._model import WorkingFolder as WorkingFolder
from fabrichost.manifest._package import load_application_package as load_application_package
from fabrichost.manifest._package import program_path as program_path
from fabrichost.manifest._params import parameter_reference as parameter_reference
from fabrichost.manifest._params import resolve_parameters as resolve_parameters
from fabrichost.manifest._paths import PathEscape as PathEscape
from fabrichost.manifest._paths import clean_program as clean_program
from fabrichost.manifest._paths import resolve_inside as resolve_inside
from fabrichost.manifest._xml import FABRIC_NAMESPACE as FABRIC_NAMESPACE
from fabrichost.manifest._xml import MAX_FILE_BYTES as MAX_FILE_BYTES
from fabrichost.wire import ActivationMode as ActivationMode

__all__ = (
    "FABRIC_NAMESPACE",
    "MAX_FILE_BYTES",
    "ActivationMode",
    "ApplicationInstance",
    "ApplicationManifest",
    "ApplicationPackage",
    "ApplicationParameters",
    "CheckResult",
    "CodePackage",
    "ConfigOverride",
    "ConsoleRedirection",
    "ContainerHost",
    "DefaultService",
    "DllHost",
    "Document",
    "Endpoint",
    "EndpointOverride",
    "EndpointProtocol",
    "EndpointType",
    "EntryPoint",
    "EntryPointType",
    "EnvironmentOverride",
    "EnvironmentVariable",
    "ExeHost",
    "ImportInstance",
    "ImportPolicies",
    "NamedPartition",
    "PackageRef",
    "Parameter",
    "ParameterValue",
    "PartitionLayout",
    "PartitionScheme",
    "PathEscape",
    "Principals",
    "ResourceGovernancePolicy",
    "ResourceLimits",
    "RunAsPolicy",
    "ServiceDescription",
    "ServiceManifest",
    "ServiceManifestImport",
    "ServiceManifestRef",
    "ServicePackageLimits",
    "ServicePackageResourceGovernancePolicy",
    "ServiceTemplate",
    "ServiceTypeDeclaration",
    "Settings",
    "SettingsParameter",
    "SettingsSection",
    "SingletonPartition",
    "StatefulServiceTemplate",
    "StatefulServiceType",
    "StatelessServiceTemplate",
    "StatelessServiceType",
    "UniformInt64Partition",
    "UniformPartitionRange",
    "User",
    "WorkingFolder",
    "check_path",
    "clean_program",
    "instantiate",
    "load_application_manifest",
    "load_application_package",
    "load_application_parameters",
    "load_document",
    "load_service_manifest",
    "load_settings",
    "parameter_reference",
    "parse_parameters_file",
    "program_path",
    "resolve_inside",
    "resolve_parameters",
)
