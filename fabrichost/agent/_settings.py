"""The tunables of a local cluster, with short dev defaults (Service Fabric's in comments)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fabrichost.agent._backoff import RestartPolicy
from fabrichost.agent._ports import DEFAULT_RANGE


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """How many nodes, how processes restart, how long stops and deactivations may take."""

    node_count: int = 1
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    shared_deactivation_grace: float = 10.0  # SF DeactivationGraceInterval: 60 s
    exclusive_deactivation_grace: float = 0.5  # SF ExclusiveModeDeactivationGraceInterval: 1 s
    stop_grace: float = 5.0
    port_range: tuple[int, int] = DEFAULT_RANGE
    # A partition that lost replicas because an activation failed (a full disk, no free port, a
    # folder in the way) is filled again after these delays, doubling up to the cap, until it
    # is whole, its service is gone or the agent stops: Service Fabric's failover manager keeps
    # retrying too, instead of waiting for someone to restart a node.
    repair_first_delay: float = 1.0
    # A wait for a service counts a guest executable's replica Ready once its process has run
    # this long: Ready comes with the process start, so a program that exits at once (a
    # syntax error) would otherwise pass for a healthy one.
    guest_settle: float = 1.0
    repair_max_delay: float = 60.0
    # A runtime host that runs this long without registering a service type its package has
    # replicas of waiting gets System.Hosting's ServiceTypeRegistration Error (SF
    # ServiceTypeRegistrationTimeout: 300 s).
    type_registration_timeout: float = 30.0

    # A host with bytes unread on its channel that reads none of them (and answers nothing)
    # for this long has stopped reading: it is faulted (killed and restarted). A host that is
    # merely busy is paced instead (docs/protocol.md §7b). Tests shorten it.
    host_stall_timeout: float = 60.0

    # Start Python runtime hosts from a pre-warmed fork server (docs/fork-server.md) when the
    # manifest runs the agent's own Python on a module; off: every process is spawned.
    fork_server: bool = True
