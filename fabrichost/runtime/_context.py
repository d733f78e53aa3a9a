"""What a replica knows about where it runs: :class:`ServiceContext`, built from the process
environment the agent sets (Service Fabric's ``Fabric_*`` variables) and the ``OpenReplica``
request that created the replica."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from fabrichost.protocol import Endpoint, ReplicaRole

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.protocol import OpenReplica

#: The environment variable holding the channel's file descriptor number.
CHANNEL_FD_ENV: Final = "FABRICHOST_CHANNEL_FD"
_ENDPOINT_PREFIX: Final = "Fabric_Endpoint_"
_ENDPOINT_HOST_PREFIX: Final = "Fabric_Endpoint_IPOrFQDN_"
#: The config package whose settings :attr:`ServiceContext.config` shows when there are several.
DEFAULT_CONFIG_PACKAGE: Final = "Config"

Settings = dict[str, dict[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceContext:
    """Everything a replica (or stateless instance) knows about itself and where it runs.

    The runtime hands a new context to the service (``self.context``) when the replica's role or
    its configuration changes; a context itself never changes.

    Attributes:
        node_name: the logical node, e.g. ``_Node_0``.
        application_name: ``fabric:/App1``.
        service_name: ``fabric:/App1/ServiceA``.
        service_type: the service type name from the service manifest.
        partition_id: the partition's GUID (lowercase, hyphenated).
        replica_id: the replica id (stateful) or instance id (stateless).
        role: the current role; always ``ReplicaRole.NONE`` for stateless instances.
        activation_id: ``ServicePackageActivationId``: ``""`` for SharedProcess, a GUID for
            ExclusiveProcess.
        code_package_name: the code package this process runs.
        service_package_name: the service package (service manifest) name.
        endpoints: endpoint name → :class:`~fabrichost.protocol.Endpoint` (port, protocol, type).
        config: section → parameter → value, from the ``Config`` package (or the only one).
        config_packages: every config package's settings, by package name.
        work_folder: the application's work folder (``Fabric_Folder_App_Work``).
        init_data: the service's initialization data, if it was created with some.
    """

    node_name: str
    application_name: str
    service_name: str
    service_type: str
    partition_id: str
    replica_id: int
    role: ReplicaRole
    activation_id: str
    code_package_name: str
    service_package_name: str
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    config_packages: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    work_folder: str = ""
    init_data: str | None = None

    @property
    def is_stateful(self) -> bool:
        """True for a stateful replica (its role is never ``None`` while it is open)."""
        return self.role is not ReplicaRole.NONE


@dataclass(frozen=True, slots=True)
class ProcessEnvironment:
    """The part of the context that is the same for every replica of this process."""

    node_name: str
    application_name: str
    activation_id: str
    code_package_name: str
    service_package_name: str
    work_folder: str
    endpoints: Mapping[str, Endpoint]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ProcessEnvironment:
        """Read the ``Fabric_*`` variables; missing ones are empty strings."""
        env = os.environ if environ is None else environ
        return cls(
            node_name=env.get("Fabric_NodeName", ""),
            application_name=env.get("Fabric_ApplicationName", ""),
            activation_id=env.get("Fabric_ServicePackageActivationId", ""),
            code_package_name=env.get("Fabric_CodePackageName", ""),
            service_package_name=env.get("Fabric_ServicePackageName", ""),
            work_folder=env.get("Fabric_Folder_App_Work", ""),
            endpoints=_endpoints_from_environ(env),
        )


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long the host waits, in seconds; the agent may shorten them through the environment.

    ``close_all`` bounds closing every replica when the host goes away
    (``FABRICHOST_CLOSE_TIMEOUT``); ``run_grace`` is how long ``run`` gets to return after its
    token is cancelled (``FABRICHOST_RUN_GRACE``); ``handshake`` bounds Hello/registration.
    """

    handshake: float = 30.0
    close_all: float = 10.0
    run_grace: float = 5.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Timeouts:
        """Defaults, overridden by well-formed non-negative values in the environment."""
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            handshake=default.handshake,
            close_all=_seconds(env.get("FABRICHOST_CLOSE_TIMEOUT"), default.close_all),
            run_grace=_seconds(env.get("FABRICHOST_RUN_GRACE"), default.run_grace),
        )


def _seconds(value: str | None, default: float) -> float:
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return seconds if 0 <= seconds < float("inf") else default


def _endpoints_from_environ(env: Mapping[str, str]) -> dict[str, Endpoint]:
    # Service Fabric only gives the port in the environment; protocol and type come with
    # OpenReplica, which takes precedence. A malformed port is skipped rather than fatal: the
    # variable may have been set by hand.
    endpoints: dict[str, Endpoint] = {}
    for key, value in env.items():
        if key.startswith(_ENDPOINT_PREFIX) and not key.startswith(_ENDPOINT_HOST_PREFIX):
            name = key[len(_ENDPOINT_PREFIX) :]
            if name and value.isdigit() and 1 <= int(value) <= 65535:
                endpoints[name] = Endpoint(port=int(value))
    return endpoints


def pick_config(packages: Mapping[str, Settings]) -> Settings:
    """The settings :attr:`ServiceContext.config` shows: ``Config``'s, or the only package's."""
    if DEFAULT_CONFIG_PACKAGE in packages:
        return packages[DEFAULT_CONFIG_PACKAGE]
    if len(packages) == 1:
        return next(iter(packages.values()))
    return {}


def make_context(
    process: ProcessEnvironment,
    request: OpenReplica,
    *,
    node_name: str,
    config_packages: Mapping[str, Settings],
) -> ServiceContext:
    """The context of the replica ``request`` opens."""
    return ServiceContext(
        node_name=node_name or process.node_name,
        application_name=process.application_name,
        service_name=request.service_name,
        service_type=request.service_type,
        partition_id=request.partition_id,
        replica_id=request.replica_id,
        role=request.role,
        activation_id=process.activation_id,
        code_package_name=process.code_package_name,
        service_package_name=process.service_package_name,
        endpoints={**process.endpoints, **request.endpoints},
        config=pick_config(config_packages),
        config_packages=config_packages,
        work_folder=process.work_folder,
        init_data=request.init_data,
    )
