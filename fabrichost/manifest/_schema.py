"""The structure of Service Fabric manifests, written down as data.

Transcribed from ``ServiceFabricServiceModel.xsd`` (Service Fabric 6.4, ``V1_RTM_3``): element
names, order (``xs:sequence``), counts, required attributes, enumerations and typed attributes.
The schema file itself is not shipped. Parts fabrichost does not act on (diagnostics,
certificates, container options, scaling policies, extensions) are declared :class:`Open`: their
attributes and children are not checked, but they may not hold text, as in the schema.

Usage::

    decl = ROOTS["ServiceManifest"]
    diagnostics = check_element(node, decl, "ServiceManifest.xml")
"""

from __future__ import annotations

from typing import Final

from fabrichost.manifest._schema_rules import (
    Attr,
    Choice,
    Elem,
    Open,
    Text,
    anyof,
    many,
    one,
    opt,
    req,
)


def _opaque(name: str, *attrs: Attr) -> Elem:
    """An element whose content is not described; attributes are checked only when listed."""
    return Elem(name, attrs, Open(), any_attributes=not attrs)


def _named(name: str, attribute: str = "Name") -> Elem:
    return Elem(name, (Attr(attribute, required=True),))


_BOOL: Final = "boolean"
_WEIGHTS = ("Zero", "Low", "Medium", "High")
_DESCRIPTION = Elem("Description", content=Text())
_VERSIONED = (req("Name"), req("Version"))
_PLACEMENT = Elem("PlacementConstraints", content=Text())
_LOAD_METRIC = Elem(
    "LoadMetric",
    (
        req("Name"),
        Attr("DefaultLoad", kind="int"),
        Attr("PrimaryDefaultLoad", kind="int"),
        Attr("SecondaryDefaultLoad", kind="int"),
        Attr("Weight", enum=_WEIGHTS),
    ),
)
_LOAD_METRICS = Elem("LoadMetrics", content=(many(_LOAD_METRIC, 1),))

# ---- ApplicationManifest ---------------------------------------------------------------------

_APP_PARAMETERS = Elem(
    "Parameters",
    content=(many(Elem("Parameter", (req("Name"), Attr("DefaultValue", required=True)))),),
)
_OVERRIDE_SECTION = Elem(
    "Section",
    (req("Name"),),
    (
        many(
            Elem(
                "Parameter",
                (
                    req("Name"),
                    Attr("Value", required=True),
                    Attr("IsEncrypted", kind=_BOOL),
                    Attr("Type"),
                ),
            )
        ),
    ),
)
_CONFIG_OVERRIDES = Elem(
    "ConfigOverrides",
    content=(
        many(
            Elem(
                "ConfigOverride",
                (req("Name"),),
                (opt(Elem("Settings", content=(many(_OVERRIDE_SECTION, 1),))),),
            )
        ),
    ),
)
_ENDPOINT_OVERRIDE = Elem(
    "Endpoint",
    (
        req("Name"),
        Attr("Port"),
        Attr("Protocol"),
        Attr("Type"),
        Attr("UriScheme"),
        Attr("PathSuffix"),
    ),
)
_RESOURCE_OVERRIDES = Elem(
    "ResourceOverrides",
    content=(opt(Elem("Endpoints", content=(many(_ENDPOINT_OVERRIDE, 1),))),),
)
_ENVIRONMENT_OVERRIDES = Elem(
    "EnvironmentOverrides",
    (req("CodePackageRef"),),
    (
        many(
            Elem(
                "EnvironmentVariable",
                (Attr("Name", required=True), Attr("Value"), Attr("Type")),
            )
        ),
    ),
)
RESOURCE_GOVERNANCE_LIMITS: Final = (
    "MemoryInMB",
    "MemorySwapInMB",
    "MemoryReservationInMB",
    "CpuShares",
    "CpuPercent",
    "MaximumIOps",
    "MaximumIOBandwidth",
    "BlockIOWeight",
    "DiskQuotaInMB",
    "KernelMemoryInMB",
    "ShmSizeInMB",
)
_PORT_BINDING = Elem(
    "PortBinding", (req("ContainerPort", "int"), Attr("EndpointRef", kind="nonempty"))
)
_IMPORT_POLICIES = Elem(
    "Policies",
    content=anyof(
        Elem(
            "RunAsPolicy",
            (
                req("CodePackageRef"),
                req("UserRef"),
                Attr("EntryPointType", enum=("Setup", "Main", "All")),
            ),
        ),
        Elem(
            "SecurityAccessPolicy",
            (
                req("ResourceRef"),
                req("PrincipalRef"),
                Attr("GrantRights", enum=("Read", "Change", "Full")),
                Attr("ResourceType", enum=("Endpoint", "Certificate")),
            ),
        ),
        Elem(
            "PackageSharingPolicy",
            (
                Attr("PackageRef", kind="nonempty"),
                Attr("Scope", enum=("None", "All", "Code", "Config", "Data")),
            ),
        ),
        Elem(
            "EndpointBindingPolicy", (Attr("EndpointRef", kind="nonempty"), req("CertificateRef"))
        ),
        Elem(
            "ServiceFabricRuntimeAccessPolicy",
            (
                Attr("RemoveServiceFabricRuntimeAccess", kind=_BOOL),
                Attr("UseServiceFabricReplicatedStore", kind=_BOOL),
            ),
        ),
        Elem("ServicePackageResourceGovernancePolicy", (Attr("CpuCores"), Attr("MemoryInMB"))),
        Elem(
            "ResourceGovernancePolicy",
            (req("CodePackageRef"), *(Attr(name) for name in RESOURCE_GOVERNANCE_LIMITS)),
        ),
        Elem(
            "ServicePackageContainerPolicy",
            (Attr("Hostname"), Attr("Isolation")),
            anyof(_PORT_BINDING),
        ),
        _opaque(
            "ContainerHostPolicies",
            req("CodePackageRef"),
            *(
                Attr(name)
                for name in (
                    "UseDefaultRepositoryCredentials",
                    "UseTokenAuthenticationCredentials",
                    "Isolation",
                    "Hostname",
                    "ContainersRetentionCount",
                    "AutoRemove",
                    "RunInteractive",
                )
            ),
        ),
        Elem(
            "ConfigPackagePolicies",
            (req("CodePackageRef"),),
            (
                many(
                    Elem(
                        "ConfigPackage",
                        (
                            req("Name"),
                            req("SectionName"),
                            Attr("MountPoint"),
                            Attr("EnvironmentVariableName"),
                        ),
                    )
                ),
            ),
        ),
        _opaque("NetworkPolicies"),
    ),
)
_SERVICE_MANIFEST_IMPORT = Elem(
    "ServiceManifestImport",
    content=(
        one(
            Elem("ServiceManifestRef", (req("ServiceManifestName"), req("ServiceManifestVersion")))
        ),
        opt(_CONFIG_OVERRIDES),
        opt(_RESOURCE_OVERRIDES),
        many(_ENVIRONMENT_OVERRIDES),
        opt(_IMPORT_POLICIES),
    ),
)

_PARTITION = one(
    Choice(
        (
            Elem("SingletonPartition"),
            Elem(
                "UniformInt64Partition",
                (
                    Attr("PartitionCount", required=True),
                    Attr("LowKey", required=True),
                    Attr("HighKey", required=True),
                ),
            ),
            Elem("NamedPartition", content=(many(Elem("Partition", (req("Name"),)), 1),)),
        )
    )
)
_SERVICE_CONTENT = (
    _PARTITION,
    opt(_LOAD_METRICS),
    opt(_PLACEMENT),
    opt(_opaque("ServiceCorrelations")),
    opt(_opaque("ServicePlacementPolicies")),
    opt(_opaque("ServiceScalingPolicies")),
)
_SERVICE_ATTRS = (req("ServiceTypeName"), Attr("DefaultMoveCost", enum=_WEIGHTS))
_STATELESS_ATTRS = (*_SERVICE_ATTRS, Attr("InstanceCount"))
_STATEFUL_ATTRS = (
    *_SERVICE_ATTRS,
    Attr("TargetReplicaSetSize"),
    Attr("MinReplicaSetSize"),
    Attr("ReplicaRestartWaitDurationSeconds"),
    Attr("QuorumLossWaitDurationSeconds"),
    Attr("StandByReplicaKeepDurationSeconds"),
)
_GROUP_CONTENT = (*_SERVICE_CONTENT, one(_opaque("Members")))
_STATELESS_SERVICE = Elem("StatelessService", _STATELESS_ATTRS, _SERVICE_CONTENT)
_STATEFUL_SERVICE = Elem("StatefulService", _STATEFUL_ATTRS, _SERVICE_CONTENT)
_STATELESS_GROUP = Elem("StatelessServiceGroup", _STATELESS_ATTRS, _GROUP_CONTENT)
_STATEFUL_GROUP = Elem("StatefulServiceGroup", _STATEFUL_ATTRS, _GROUP_CONTENT)
_ACTIVATION_MODE = Attr("ServicePackageActivationMode")
_DEFAULT_SERVICES = Elem(
    "DefaultServices",
    content=anyof(
        Elem(
            "Service",
            (
                Attr("Name", required=True),
                Attr("GeneratedIdRef"),
                Attr("ServiceDnsName"),
                _ACTIVATION_MODE,
            ),
            (opt(Choice((_STATELESS_SERVICE, _STATEFUL_SERVICE))),),
        ),
        Elem(
            "ServiceGroup",
            (Attr("Name", required=True), _ACTIVATION_MODE),
            (opt(Choice((_STATELESS_GROUP, _STATEFUL_GROUP))),),
        ),
    ),
)
_SERVICE_TEMPLATES = Elem(
    "ServiceTemplates",
    content=anyof(_STATELESS_SERVICE, _STATEFUL_SERVICE, _STATELESS_GROUP, _STATEFUL_GROUP),
)

_GROUP = Elem(
    "Group",
    (Attr("Name", required=True),),
    (
        opt(Elem("NTLMAuthenticationPolicy", (Attr("IsEnabled", kind=_BOOL),))),
        opt(
            Elem(
                "Membership",
                content=anyof(
                    _named("DomainGroup"), _named("SystemGroup"), _named("DomainUser"), low=1
                ),
            )
        ),
    ),
)
_USER = Elem(
    "User",
    (
        Attr("Name", required=True),
        Attr(
            "AccountType",
            enum=(
                "LocalUser",
                "DomainUser",
                "NetworkService",
                "LocalService",
                "ManagedServiceAccount",
                "LocalSystem",
            ),
        ),
        Attr("LoadUserProfile", kind=_BOOL),
        Attr("PerformInteractiveLogon", kind=_BOOL),
        Attr("AccountName"),
        Attr("Password"),
        Attr("PasswordEncrypted", kind=_BOOL),
    ),
    (
        opt(
            _opaque(
                "NTLMAuthenticationPolicy",
                Attr("IsEnabled", kind=_BOOL),
                Attr("PasswordSecret", required=True),
                Attr("PasswordSecretEncrypted", kind=_BOOL),
                Attr("X509StoreLocation", enum=("LocalMachine", "CurrentUser")),
                Attr("X509StoreName"),
                Attr("X509Thumbprint"),
            )
        ),
        opt(
            Elem(
                "MemberOf",
                content=anyof(_named("SystemGroup"), _named("Group", "NameRef"), low=1),
            )
        ),
    ),
)
_PRINCIPALS = Elem(
    "Principals",
    content=(
        opt(Elem("Groups", content=(many(_GROUP, 1),))),
        opt(Elem("Users", content=(many(_USER, 1),))),
    ),
)
_APP_POLICIES = Elem(
    "Policies",
    content=anyof(
        _opaque("LogCollectionPolicies"),
        _named("DefaultRunAsPolicy", "UserRef"),
        _opaque(
            "HealthPolicy",
            Attr("ConsiderWarningAsError"),
            Attr("MaxPercentUnhealthyDeployedApplications"),
        ),
        _opaque("SecurityAccessPolicies"),
    ),
)
APPLICATION_MANIFEST: Final = Elem(
    "ApplicationManifest",
    (req("ApplicationTypeName"), req("ApplicationTypeVersion"), Attr("ManifestId")),
    (
        opt(_DESCRIPTION),
        opt(_APP_PARAMETERS),
        many(_SERVICE_MANIFEST_IMPORT, 1),
        opt(_SERVICE_TEMPLATES),
        opt(_DEFAULT_SERVICES),
        opt(_PRINCIPALS),
        opt(_APP_POLICIES),
        opt(_opaque("Diagnostics")),
        opt(_opaque("Certificates")),
    ),
    any_attributes=True,
)

# ---- ServiceManifest -------------------------------------------------------------------------

_EXTENSIONS = _opaque("Extensions")
_TYPE_CONTENT = (
    opt(_LOAD_METRICS),
    opt(_PLACEMENT),
    opt(_opaque("ServicePlacementPolicies")),
    opt(_EXTENSIONS),
)
_GROUP_TYPE_CONTENT = (
    opt(_LOAD_METRICS),
    opt(_PLACEMENT),
    opt(_opaque("ServiceGroupMembers")),
    opt(_EXTENSIONS),
)
_GROUP_TYPE_ATTRS = (req("ServiceGroupTypeName"), Attr("UseImplicitFactory", kind=_BOOL))
_SERVICE_TYPES = Elem(
    "ServiceTypes",
    content=anyof(
        Elem(
            "StatefulServiceType",
            (
                req("ServiceTypeName"),
                Attr("HasPersistedState", kind=_BOOL),
                Attr("UseImplicitHost", kind=_BOOL),
            ),
            _TYPE_CONTENT,
        ),
        Elem(
            "StatelessServiceType",
            (req("ServiceTypeName"), Attr("UseImplicitHost", kind=_BOOL)),
            _TYPE_CONTENT,
        ),
        Elem(
            "StatefulServiceGroupType",
            (*_GROUP_TYPE_ATTRS, Attr("HasPersistedState", kind=_BOOL)),
            _GROUP_TYPE_CONTENT,
        ),
        Elem("StatelessServiceGroupType", _GROUP_TYPE_ATTRS, _GROUP_TYPE_CONTENT),
        low=1,
    ),
)
WORKING_FOLDERS: Final = ("Work", "CodePackage", "CodeBase")
_EXE_ATTRS = (Attr("IsExternalExecutable", kind=_BOOL),)
_EXE_CONTENT = (
    one(Elem("Program", content=Text())),
    opt(Elem("Arguments", content=Text())),
    opt(Elem("WorkingFolder", content=Text(WORKING_FOLDERS))),
    opt(
        Elem(
            "ConsoleRedirection",
            (
                Attr("FileRetentionCount", kind="int", minimum=1),
                Attr("FileMaxSizeInKb", kind="int", minimum=128),
            ),
        )
    ),
)
_RUN_FREQUENCY = Elem(
    "RunFrequency",
    (Attr("IntervalInSeconds", required=True, kind="int", minimum=0, maximum=2147483647),),
)
_ENTRY_POINT = Elem(
    "EntryPoint",
    content=(
        one(
            Choice(
                (
                    Elem("ExeHost", _EXE_ATTRS, (*_EXE_CONTENT, opt(_RUN_FREQUENCY))),
                    Elem(
                        "DllHost",
                        (
                            Attr(
                                "IsolationPolicy",
                                enum=("SharedDomain", "DedicatedDomain", "DedicatedProcess"),
                            ),
                        ),
                        anyof(
                            Elem("UnmanagedDll", content=Text()),
                            Elem("ManagedAssembly", content=Text()),
                        ),
                    ),
                    Elem(
                        "ContainerHost",
                        content=(
                            one(Elem("ImageName", content=Text())),
                            opt(Elem("Commands", content=Text())),
                            opt(Elem("EntryPoint", content=Text())),
                            opt(Elem("FromSource", content=Text())),
                        ),
                    ),
                )
            )
        ),
    ),
)
_ENVIRONMENT_VARIABLES = Elem(
    "EnvironmentVariables",
    content=(
        many(
            Elem(
                "EnvironmentVariable",
                (
                    Attr("Name", required=True),
                    Attr("Value"),
                    Attr("Type", enum=("PlainText", "Encrypted", "SecretsStoreRef")),
                ),
            )
        ),
    ),
)
_CODE_PACKAGE = Elem(
    "CodePackage",
    (*_VERSIONED, Attr("IsShared", kind=_BOOL), Attr("IsActivator", kind=_BOOL)),
    (
        opt(Elem("SetupEntryPoint", content=(one(Elem("ExeHost", _EXE_ATTRS, _EXE_CONTENT)),))),
        one(_ENTRY_POINT),
        opt(_ENVIRONMENT_VARIABLES),
    ),
)
_ENDPOINT = Elem(
    "Endpoint",
    (
        req("Name"),
        Attr("Protocol", enum=("http", "https", "tcp", "udp")),
        Attr("Type", enum=("Input", "Internal")),
        Attr("CodePackageRef", kind="nonempty"),
        Attr("CertificateRef"),
        Attr("Port", kind="int", minimum=0, maximum=65535),
        Attr("UriScheme"),
        Attr("PathSuffix"),
    ),
)
SERVICE_MANIFEST: Final = Elem(
    "ServiceManifest",
    (*_VERSIONED, Attr("ManifestId")),
    (
        opt(_DESCRIPTION),
        one(_SERVICE_TYPES),
        many(_CODE_PACKAGE, 1),
        many(Elem("ConfigPackage", _VERSIONED)),
        many(Elem("DataPackage", _VERSIONED)),
        opt(Elem("Resources", content=(opt(Elem("Endpoints", content=(many(_ENDPOINT, 1),))),))),
        opt(_opaque("Diagnostics")),
    ),
    any_attributes=True,
)

# ---- Settings.xml and application parameter files --------------------------------------------

SETTINGS: Final = Elem(
    "Settings",
    content=(
        many(
            Elem(
                "Section",
                (Attr("Name", required=True),),
                (
                    many(
                        Elem(
                            "Parameter",
                            (
                                Attr("Name", required=True),
                                Attr("Value", required=True),
                                Attr("MustOverride", kind=_BOOL),
                                Attr("IsEncrypted", kind=_BOOL),
                                Attr("Type"),
                            ),
                        )
                    ),
                ),
            )
        ),
    ),
)
APPLICATION_PARAMETERS: Final = Elem(
    "Application",
    (Attr("Name", required=True),),
    (
        one(
            Elem(
                "Parameters",
                content=(many(Elem("Parameter", (req("Name"), Attr("Value", required=True)))),),
            )
        ),
    ),
)

ROOTS: Final = {
    decl.name: decl
    for decl in (APPLICATION_MANIFEST, SERVICE_MANIFEST, SETTINGS, APPLICATION_PARAMETERS)
}
