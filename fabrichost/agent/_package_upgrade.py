"""Moving one running service package activation to another version of its package, in place.

Only what changed is touched (``_upgrade_plan`` says what): a code package of another version
has its process stopped (SIGINT: a runtime host closes its replicas, then exits) and a process of
the new version started in its place, whose registration opens the activation's replicas of its
types again; the other code packages keep their processes. A changed config package goes to the
running hosts that take config changes (``ConfigChanged`` on their channel); a host that does
not is restarted instead. Every later incarnation, and every new host, gets the new package's
settings at its ``Welcome``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fabrichost.agent._activation import CodePackageHost
from fabrichost.agent._environment import code_package_environment
from fabrichost.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fabrichost.agent._activation import ServicePackageActivation
    from fabrichost.agent._spec import ServicePackageSpec

log = logging.getLogger(__name__)


def takes_config(host: CodePackageHost) -> bool:
    """Whether a code package's running process takes config changes: a runtime host one of
    whose registered service types said so. A guest, or a host not registered yet, does not."""
    channel = host.channel
    return channel is not None and bool(channel.config_handlers)


def deliver_config(
    activation: ServicePackageActivation,
    package: ServicePackageSpec,
    names: Iterable[str],
    code_packages: Iterable[str],
) -> set[str]:
    """Send the new settings of config packages ``names`` to the hosts of ``code_packages``
    that take them; returns those that do not (they must restart to see them)."""
    wanted = tuple(names)
    refused: set[str] = set()
    for cp_name in code_packages:
        host = activation.hosts.get(cp_name)
        if host is None:
            continue
        channel = host.channel
        if channel is None or not takes_config(host):
            refused.add(cp_name)
            continue
        try:
            for name in wanted:
                channel.send_config(name, package.settings.get(name, {}))
        except ProtocolError:  # its process is going away: its next incarnation has them
            refused.add(cp_name)
    return refused


async def restart_code_packages(
    activation: ServicePackageActivation,
    package: ServicePackageSpec,
    names: Iterable[str],
    grace: float,
) -> list[str]:
    """Replace the processes of code packages ``names`` with ones of ``package``'s version.

    Each old process is stopped first (a runtime host closes its replicas on SIGINT; the
    activation marks them Down when it exits, and failover does what it does for a lost host),
    then the new one starts; its registration opens the replicas again. Nothing starts in an
    activation that is being deactivated meanwhile (its application deleted, its node stopped).
    Returns the code packages restarted.
    """
    specs = {cp.name: cp for cp in package.code_packages}

    async def restart(name: str) -> bool:
        old = activation.hosts.get(name)
        spec = specs.get(name)
        if old is None or spec is None:
            return False
        await old.stop(grace)
        if activation.status != "Active" or activation.hosts.get(name) is not old:
            return False  # deactivated (or replaced) while the old one stopped: nothing starts
        env = code_package_environment(
            activation.identity, spec, activation.folders, activation.endpoints
        )
        host = CodePackageHost(activation, spec, env, old.supervisor.policy)
        activation.hosts[name] = host
        await host.supervisor.start()
        log.info(
            "%s: code package %s of %s restarted at version %s",
            activation.identity.node_name,
            name,
            package.name,
            spec.version,
        )
        return True

    wanted = list(dict.fromkeys(names))
    # Side by side: one restart costs the slowest stop, not all of them added together.
    done = await asyncio.gather(*(restart(name) for name in wanted))
    return [name for name, ok in zip(wanted, done, strict=True) if ok]
