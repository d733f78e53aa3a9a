"""The node agent: a local cluster of logical nodes that runs application packages as processes.

:class:`Cluster` builds the parts and wires them (see its module, and ``docs/architecture.md``).
The HTTP API and the daemon use the names exported here; nothing outside this package imports
its private modules.
"""

from __future__ import annotations

from fabrichost.agent._activation import CodePackageHost as CodePackageHost
from fabrichost.agent._activation import ServicePackageActivation as ServicePackageActivation
from fabrichost.agent._backoff import RestartPolicy as RestartPolicy
from fabrichost.agent._cluster import Cluster as Cluster
from fabrichost.agent._environment import ENV_MARKER as ENV_MARKER
from fabrichost.agent._environment import ActivationIdentity as ActivationIdentity
from fabrichost.agent._environment import ApplicationFolders as ApplicationFolders
from fabrichost.agent._fence import processes_carrying as processes_carrying
from fabrichost.agent._fence import sweep_strays as sweep_strays
from fabrichost.agent._health import MAX_TTL_SECONDS as MAX_TTL_SECONDS
from fabrichost.agent._health import EntityReports as EntityReports
from fabrichost.agent._health import HealthEvent as HealthEvent
from fabrichost.agent._health import HealthInformation as HealthInformation
from fabrichost.agent._health_eval import Child as HealthChild
from fabrichost.agent._health_eval import Evaluation as HealthEvaluation
from fabrichost.agent._health_view import EntityHealth as EntityHealth
from fabrichost.agent._health_view import HealthView as HealthView
from fabrichost.agent._image_store import MAX_FILE_BYTES as MAX_FILE_BYTES
from fabrichost.agent._image_store import ImageStore as ImageStore
from fabrichost.agent._image_store import StoreListing as StoreListing
from fabrichost.agent._instance_events import EVENT_TIMEOUT as EVENT_TIMEOUT
from fabrichost.agent._model import Application as Application
from fabrichost.agent._model import Instance as Instance
from fabrichost.agent._model import Partition as Partition
from fabrichost.agent._model import Replica as Replica
from fabrichost.agent._model import ReplicaStatus as ReplicaStatus
from fabrichost.agent._model import Service as Service
from fabrichost.agent._orphans import adopt_orphans as adopt_orphans
from fabrichost.agent._persist import Persistence as Persistence
from fabrichost.agent._placement import ActivationFactory as ActivationFactory
from fabrichost.agent._provision import ProvisionedType as ProvisionedType
from fabrichost.agent._provision import ServiceTypeRecord as ServiceTypeRecord
from fabrichost.agent._settings import AgentSettings as AgentSettings
from fabrichost.agent._state import ClusterState as ClusterState
from fabrichost.agent._state import Node as Node
from fabrichost.agent._transitions import Transition as Transition
from fabrichost.agent._transitions import TransitionKind as TransitionKind
from fabrichost.agent._upgrade import ApplicationUpgrades as ApplicationUpgrades
from fabrichost.agent._upgrade_progress import DomainState as DomainState
from fabrichost.agent._upgrade_progress import FailureAction as FailureAction
from fabrichost.agent._upgrade_progress import FailureReason as FailureReason
from fabrichost.agent._upgrade_progress import UpgradeDescription as UpgradeDescription
from fabrichost.agent._upgrade_progress import UpgradeMode as UpgradeMode
from fabrichost.agent._upgrade_progress import UpgradeProgress as UpgradeProgress
from fabrichost.agent._upgrade_progress import UpgradeState as UpgradeState
from fabrichost.agent._upgrade_progress import parse_enum as parse_enum

__all__ = (
    "ENV_MARKER",
    "EVENT_TIMEOUT",
    "MAX_FILE_BYTES",
    "MAX_TTL_SECONDS",
    "ActivationFactory",
    "ActivationIdentity",
    "AgentSettings",
    "Application",
    "ApplicationFolders",
    "ApplicationUpgrades",
    "Cluster",
    "ClusterState",
    "CodePackageHost",
    "DomainState",
    "EntityHealth",
    "EntityReports",
    "FailureAction",
    "FailureReason",
    "HealthChild",
    "HealthEvaluation",
    "HealthEvent",
    "HealthInformation",
    "HealthView",
    "ImageStore",
    "Instance",
    "Node",
    "Partition",
    "Persistence",
    "ProvisionedType",
    "Replica",
    "ReplicaStatus",
    "RestartPolicy",
    "Service",
    "ServicePackageActivation",
    "ServiceTypeRecord",
    "StoreListing",
    "Transition",
    "TransitionKind",
    "UpgradeDescription",
    "UpgradeMode",
    "UpgradeProgress",
    "UpgradeState",
    "adopt_orphans",
    "parse_enum",
    "processes_carrying",
    "sweep_strays",
)
