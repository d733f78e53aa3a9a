"""The health of every entity: what the agent sees (system reports), what was reported, and
the aggregation: the one place a ``HealthState`` comes from.

Use the :class:`HealthView` of a cluster (``cluster.health``)::

    result = cluster.health.service(service)   # -> EntityHealth
    result.health.state, result.events, result.children
    cluster.health.report(replica.health, info) # a reporter's HealthInformation

Theory of operation. The agent's own observations are not a second record beside the runtime
model: on every read they are derived from it (node up or down, the Ready replicas of a
partition against its target, a replica's failure, a code package's continuous failures, a
service type a host has not registered) and handed to the entity's reports as its ``System.*``
events, so they always say what the model says, and keep their timestamps while they do not
change. Reports from users and services are stored on the entity itself, so an entity that is
deleted takes them with it. Deployed entities exist while their activations do: a deployed
service package's reports are held by its activation, a deployed application's are dropped when
it is read and no longer deployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from fabrichost.agent._health import SYSTEM_PREFIX, EntityReports, HealthClock, HealthInformation
from fabrichost.agent._health_eval import Child, Group, Health, evaluate
from fabrichost.agent._model import ReplicaStatus
from fabrichost.agent._state import keeps_failing
from fabrichost.errors import ApiError, NotFoundError
from fabrichost.protocol import HealthState, ReplicaRole, ServiceKind

if TYPE_CHECKING:
    from fabrichost.agent._activation import ServicePackageActivation
    from fabrichost.agent._health import HealthEvent
    from fabrichost.agent._model import Application, Partition, Replica, Service
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._state import ClusterState, Node

OK, WARNING, ERROR = HealthState.OK, HealthState.WARNING, HealthState.ERROR
FM: Final = "System.FM"
CM: Final = "System.CM"
RA: Final = "System.RA"
HOSTING: Final = "System.Hosting"


@dataclass(frozen=True, slots=True)
class EntityHealth:
    """One entity's events, aggregated health, and its children's (for ``*HealthStates``)."""

    health: Health
    events: list[HealthEvent]
    children: dict[str, list[Child]] = field(default_factory=dict)  # by group kind


def _sys(source: str, prop: str, state: HealthState, text: str) -> HealthInformation:
    return HealthInformation(source, prop, state, text)


class HealthView:
    """Health queries and reports over one cluster's model (see the module's docstring)."""

    def __init__(
        self, state: ClusterState, settings: AgentSettings, clock: HealthClock | None = None
    ) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock or HealthClock()

    # -- reports --------------------------------------------------------------------------------

    def report(self, reports: EntityReports, info: HealthInformation) -> None:
        """Store a reporter's ``info`` on an entity; ``System.*`` sources are the agent's own."""
        if info.source_id.startswith(SYSTEM_PREFIX):
            raise ApiError(
                f"SourceId {info.source_id!r}: sources that start with {SYSTEM_PREFIX!r} are "
                "reserved for the agent's own reports"
            )
        reports.report(info, self.clock)

    def _events(self, reports: EntityReports, system: list[HealthInformation]) -> list[HealthEvent]:
        reports.replace_system(system, self.clock)
        return reports.events(self.clock)

    # -- replicas and partitions ----------------------------------------------------------------

    def replica(self, replica: Replica) -> EntityHealth:
        events = self._events(replica.health, self._replica_system(replica))
        return EntityHealth(evaluate(events), events)

    def _replica_system(self, replica: Replica) -> list[HealthInformation]:
        failure = self.state.replica_failure(replica)
        if failure:
            return [_sys(RA, "ReplicaOpenStatus", ERROR, failure)]
        if replica.status is ReplicaStatus.READY:
            return [_sys(RA, "State", OK, "Replica has been created.")]
        return [_sys(RA, "State", WARNING, self.state.replica_reason(replica))]

    def partition(self, partition: Partition) -> EntityHealth:
        replicas = [
            _child("Replica", "replica", _replica_ident(r), self.replica(r).health)
            for r in partition.live_replicas()
        ]
        events = self._events(partition.health, self._partition_system(partition))
        group = Group(
            "Replicas", "replicas", replicas, {"MaxPercentUnhealthyReplicasPerPartition": 0}
        )
        return EntityHealth(evaluate(events, [group]), events, {"Replicas": replicas})

    def _partition_system(self, partition: Partition) -> list[HealthInformation]:
        service = partition.service
        ready = [r for r in self.state.serving(partition) if r.status is ReplicaStatus.READY]
        target = service.target_count
        if target < 0:  # InstanceCount -1: one on every node that is up
            target = sum(1 for n in self.state.nodes.values() if n.up)
        stateful = service.kind is ServiceKind.STATEFUL
        found = [_sys(FM, "State", OK, "Partition is healthy.")]
        if stateful and not any(r.role is ReplicaRole.PRIMARY for r in ready):
            found = [_sys(FM, "State", WARNING, "Partition has no Ready Primary replica.")]
        elif len(ready) < target:
            noun = "replica" if stateful else "instance"
            found = [
                _sys(
                    FM,
                    "State",
                    WARNING,
                    f"Partition is below target {noun} count: {len(ready)} of {target} "
                    "Ready on nodes that are up.",
                )
            ]
        if warning := service.health_warnings.get(partition.id):
            found.append(_sys(FM, "Placement", WARNING, warning))
        return found

    # -- services and applications --------------------------------------------------------------

    def service(self, service: Service) -> EntityHealth:
        partitions = [
            _child("Partition", "partition", {"PartitionId": p.id}, self.partition(p).health)
            for p in service.partitions
        ]
        events = self._events(service.health, [_sys(CM, "State", OK, "Service has been created.")])
        group = Group(
            "Partitions", "partitions", partitions, {"MaxPercentUnhealthyPartitionsPerService": 0}
        )
        return EntityHealth(evaluate(events, [group]), events, {"Partitions": partitions})

    def application(self, app: Application) -> EntityHealth:
        services = [
            _child("Service", "service", {"ServiceName": s.name}, self.service(s).health)
            for s in app.services.values()
        ]
        deployed = [
            _child(
                "DeployedApplication",
                "deployed application",
                {"ApplicationName": app.name, "NodeName": node.name},
                self.deployed_application(app, node).health,
            )
            for node in self.deployed_on(app)
        ]
        events = self._events(app.health, [_sys(CM, "State", OK, "Application has been created.")])
        groups = [
            # SF evaluates the services of each service type as one group.
            Group(
                "Services",
                "services",
                [c for c in services if self._type_of(app, c) == type_name],
                {"ServiceTypeName": type_name, "MaxPercentUnhealthyServices": 0},
            )
            for type_name in sorted({s.type_name for s in app.services.values()})
        ]
        groups.append(
            Group(
                "DeployedApplications",
                "deployed applications",
                deployed,
                {"MaxPercentUnhealthyDeployedApplications": 0},
            )
        )
        children = {"Services": services, "DeployedApplications": deployed}
        return EntityHealth(evaluate(events, groups), events, children)

    @staticmethod
    def _type_of(app: Application, child: Child) -> str:
        return app.services[child.ident["ServiceName"]].type_name

    # -- deployed entities ------------------------------------------------------------------------

    def deployed_on(self, app: Application) -> list[Node]:
        """The nodes ``app`` is deployed on (it has an activation there); drops the reports of
        deployed entities that are gone."""
        nodes = [n for n in self.state.nodes.values() if self.state.activations_on(n, app.name)]
        names = {n.name for n in nodes}
        for name in [k for k in app.deployed_health if k not in names]:
            del app.deployed_health[name]
        return nodes

    def deployed_reports(self, app: Application, node: Node) -> EntityReports:
        if not self.state.activations_on(node, app.name):
            raise NotFoundError(
                f"application {app.name} is not deployed on {node.name}",
                code="FABRIC_E_HEALTH_ENTITY_NOT_FOUND",
            )
        return app.deployed_health.setdefault(node.name, EntityReports())

    def deployed_application(self, app: Application, node: Node) -> EntityHealth:
        packages = [
            _child(
                "DeployedServicePackage",
                "deployed service package",
                {
                    "ApplicationName": app.name,
                    "ServiceManifestName": a.package.name,
                    "ServicePackageActivationId": a.activation_id,
                    "NodeName": node.name,
                },
                self.deployed_service_package(a).health,
            )
            for a in self.state.activations_on(node, app.name)
        ]
        events = self._events(
            self.deployed_reports(app, node),
            [_sys(HOSTING, "Activation", OK, "The application was activated successfully.")],
        )
        group = Group("DeployedServicePackages", "deployed service packages", packages)
        return EntityHealth(
            evaluate(events, [group]), events, {"DeployedServicePackages": packages}
        )

    def deployed_service_package(self, activation: ServicePackageActivation) -> EntityHealth:
        events = self._events(activation.health, self._package_system(activation))
        return EntityHealth(evaluate(events), events)

    def _package_system(self, activation: ServicePackageActivation) -> list[HealthInformation]:
        if activation.failure:
            return [_sys(HOSTING, "Activation", ERROR, activation.failure)]
        found = [_sys(HOSTING, "Activation", OK, "The ServicePackage was activated successfully.")]
        for host in activation.hosts.values():
            state = host.supervisor.health
            text = (
                "The CodePackage was activated successfully."
                if state is OK
                else keeps_failing(host)
            )
            found.append(
                _sys(HOSTING, f"CodePackageActivation:{host.spec.name}:EntryPoint", state, text)
            )
        found += self._registrations(activation)
        return found

    def _registrations(self, activation: ServicePackageActivation) -> list[HealthInformation]:
        """``ServiceTypeRegistration:<type>`` of the types this activation has replicas of:
        Ok once registered, Error when its hosts ran past the timeout without registering."""
        if activation.package.is_guest:
            return []
        found = []
        for type_name in sorted({r.service.type_name for r in activation.replicas}):
            prop = f"ServiceTypeRegistration:{type_name}"
            if activation.registered(type_name):
                found.append(
                    _sys(HOSTING, prop, OK, "The ServiceType was registered successfully.")
                )
            elif (running := self._running_for(activation)) is not None and (
                running >= self.settings.type_registration_timeout
            ):
                found.append(
                    _sys(
                        HOSTING,
                        prop,
                        ERROR,
                        f"The ServiceType was not registered within the configured timeout "
                        f"({self.settings.type_registration_timeout:g} s): no code package of "
                        f"{activation.package.name} registered {type_name}.",
                    )
                )
        return found

    @staticmethod
    def _running_for(activation: ServicePackageActivation) -> float | None:
        """Seconds the longest-running main process of ``activation`` has run, None if none runs."""
        now = datetime.now(UTC)
        runs = [
            (now - started).total_seconds()
            for host in activation.hosts.values()
            if host.supervisor.pid is not None
            and (started := host.supervisor.statistics.LastActivationTime) is not None
        ]
        return max(runs, default=None)

    # -- nodes and the cluster --------------------------------------------------------------------

    def node(self, node: Node) -> EntityHealth:
        system = (
            _sys(FM, "State", OK, "Fabric node is up.")
            if node.up
            else _sys(FM, "State", ERROR, "Fabric node is down.")
        )
        events = self._events(node.health, [system])
        return EntityHealth(evaluate(events), events)

    def cluster(self) -> EntityHealth:
        nodes = [
            _child("Node", "node", {"NodeName": n.name}, self.node(n).health)
            for n in self.state.nodes.values()
        ]
        apps = [
            _child(
                "Application",
                "application",
                {"ApplicationName": a.name},
                self.application(a).health,
            )
            for a in self.state.applications.values()
        ]
        events = self._events(self.state.health, [])
        groups = [
            Group("Nodes", "nodes", nodes, {"MaxPercentUnhealthyNodes": 0}),
            Group("Applications", "applications", apps, {"MaxPercentUnhealthyApplications": 0}),
        ]
        return EntityHealth(
            evaluate(events, groups), events, {"Nodes": nodes, "Applications": apps}
        )


def _child(kind: str, noun: str, ident: dict[str, str], health: Health) -> Child:
    return Child(kind, noun, ident, health)


def _replica_ident(replica: Replica) -> dict[str, str]:
    return {
        "PartitionId": replica.partition.id,
        "ReplicaOrInstanceId": str(replica.id),
        "ServiceKind": replica.service.kind.value,
    }
