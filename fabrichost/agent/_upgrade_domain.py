"""One upgrade domain (one node) of an application upgrade: move its activations to a version.

For every activation of the application on the node, the plan (``_upgrade_plan``) says what
changed in its package: changed code packages are restarted (and, for a data package change,
all of the package's); a changed config package is handed to the hosts that take it and the
others are restarted; a package whose shape changed is deactivated and its replicas placed in a
new activation. Before a process that holds a stateful Primary restarts, the Primary is handed
to a Ready replica on another node (``PrimaryElection.swap_out``), so the partition keeps one
Primary; replicas of other services sharing a restarted host are closed with it and opened
again in the new process, as for any lost host.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fabrichost.agent._model import ReplicaRole, ReplicaStatus
from fabrichost.agent._package_upgrade import deliver_config, restart_code_packages

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.agent._activation import ServicePackageActivation
    from fabrichost.agent._election import PrimaryElection
    from fabrichost.agent._placement import Placement
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._spec import ServicePackageSpec
    from fabrichost.agent._state import ClusterState
    from fabrichost.agent._upgrade_plan import PackageChange, UpgradePlan

log = logging.getLogger(__name__)


class DomainUpgrader:
    """Applies an upgrade plan to the activations of one application on one node."""

    def __init__(
        self,
        state: ClusterState,
        placement: Placement,
        election: PrimaryElection,
        settings: AgentSettings,
    ) -> None:
        self._state = state
        self._placement = placement
        self._election = election
        self._settings = settings

    async def apply(
        self,
        node_name: str,
        app_name: str,
        packages: Mapping[str, ServicePackageSpec],
        plan: UpgradePlan,
        *,
        force_restart: bool = False,
    ) -> list[str]:
        """Move the application's activations on ``node_name`` to ``packages``; returns one
        line per activation that changed (what restarted, what was handed its config)."""
        node = self._state.nodes[node_name]
        if not node.up:
            return []  # nothing runs there; its next start places with the node's version
        done: list[str] = []
        with self._election.avoiding(node_name):
            for activation in list(self._state.activations_on(node, app_name)):
                # One being made now may have taken the old version: it finishes first.
                await activation.activated.wait()
                if activation.status != "Active":
                    continue  # starting or stopping: it takes the node's version when it starts
                package = packages.get(activation.package.name)
                if package is None:
                    continue  # no service uses it (check_services): its grace period ends it
                change = plan.change(package.name)
                activation.package = package  # later incarnations get this version's settings
                if change is None:
                    continue
                line = await self._apply_change(activation, package, change, force_restart)
                # An exclusive activation is named: a node has one per replica, and their
                # lines are otherwise the same.
                which = activation.identity.activation_id
                done.append(f"{node_name}: " + (f"activation {which}: " if which else "") + line)
        return done

    async def _apply_change(
        self,
        activation: ServicePackageActivation,
        package: ServicePackageSpec,
        change: PackageChange,
        force_restart: bool,
    ) -> str:
        if change.whole:
            await self._reactivate(activation)
            return change.describe()
        restart = set(change.restarted(activation.hosts))
        delivered: list[str] = []
        if change.config_packages:
            if force_restart:
                restart = set(activation.hosts)
            else:
                others = [n for n in activation.hosts if n not in restart]
                refused = deliver_config(activation, package, change.config_packages, others)
                restart |= refused
                delivered = [n for n in others if n not in refused]
        elif force_restart:
            restart = set(activation.hosts)
        await self._swap_primaries(activation, restart)
        restarted = await restart_code_packages(
            activation, package, sorted(restart), self._settings.stop_grace
        )
        parts = [change.describe()]
        if restarted:
            parts.append(f"restarted {', '.join(restarted)}")
        if delivered:
            parts.append(f"config delivered to {', '.join(delivered)}")
        return "; ".join(parts)

    async def _swap_primaries(
        self, activation: ServicePackageActivation, code_packages: set[str]
    ) -> None:
        primaries = [
            r
            for r in activation.replicas
            if r.code_package_name in code_packages
            and r.role is ReplicaRole.PRIMARY
            and r.status is ReplicaStatus.READY
        ]
        for replica in primaries:
            await self._election.swap_out(replica)

    async def _reactivate(self, activation: ServicePackageActivation) -> None:
        """A package whose shape changed: its activation goes, and its replicas are placed in
        a new one of the node's version (new ports, new processes)."""
        node = self._state.nodes[activation.identity.node_name]
        replicas = [r for r in activation.replicas if not r.dropped]
        await self._swap_primaries(activation, set(activation.hosts))
        await self._placement.deactivate(node, activation, grace=self._settings.stop_grace)
        await self._placement.activate_replicas([r for r in replicas if not r.dropped])
