"""The reference scenario of the hosting-model documentation, as data, and a player for it.

``fabrichost demo`` plays it on a 3-node cluster and shows the node view after each step; the
integration tests play the same steps and assert the views. Step by step (3 replicas per
partition on 3 nodes, so every node shows the same view):

1. ``fabric:/App1/ServiceA``: 2 partitions, SharedProcess → one activation of MyServicePackage,
   one MyCodePackage process holding both partitions.
2. ``fabric:/App1/ServiceB``: 1 partition → its replica joins that same process.
3. ``fabric:/App2/ServiceA`` (App2, same type) → a second activation and a second process.
4. ``fabric:/App1/ServiceC``: 2 partitions, ExclusiveProcess → two more activations, each with
   its own activation id and its own process holding one replica.
5. ``fabric:/SpecialApp``: ServiceA (MyServiceTypeA) and ServiceB (MyServiceTypeB), 2 partitions
   each, ExclusiveProcess → 4 activations, each running BOTH code packages, the replica in the
   one that registered its type; ``fabric:/SpecialAppShared``, the same services SharedProcess →
   one activation, two processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fabrichost.errors import FabricHostError
from fabrichost.wire import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from fabrichost.client import FabricClient

SHARED = ActivationMode.SHARED_PROCESS
EXCLUSIVE = ActivationMode.EXCLUSIVE_PROCESS


def manifests_dir() -> Path:
    """The sample application packages: those a wheel ships, else those of the checkout.

    A built wheel carries a copy of the repository's ``manifests/`` as ``fabrichost/_samples``
    (setup.py's build step); an editable install (``pip install -e .``) has none and reads the
    checkout's ``manifests/`` beside the package. Their code, ``sample_services``, is installed
    as a top-level package either way; the launchers run it with the agent's interpreter.

    Raises:
        FabricHostError: neither place has them, with what to do about it.
    """
    shipped = resources.files("fabrichost") / "_samples"
    checkout = Path(__file__).resolve().parents[1] / "manifests"
    # pip unpacks a wheel to disk, so the shipped folder is a real path; the agent copies it
    # into its image store like any other package folder.
    candidates = ([shipped] if isinstance(shipped, Path) else []) + [checkout]
    for folder in candidates:
        if (folder / "MyApp" / "ApplicationManifest.xml").is_file():
            return folder
    raise FabricHostError(
        f"the sample packages are in neither {shipped} (an installed wheel) nor {checkout} "
        "(a checkout); reinstall fabrichost from a wheel built by setup.py "
        "(pip install . or pip install fabrichost-*.whl), or install a checkout with "
        "pip install -e ."
    )


def _stateful(
    name: str, type_name: str, partitions: int, mode: ActivationMode
) -> ServiceDescription:
    scheme = PartitionScheme.UNIFORM_INT64_RANGE if partitions > 1 else PartitionScheme.SINGLETON
    return ServiceDescription(
        name=name,
        type_name=type_name,
        kind=ServiceKind.STATEFUL,
        activation_mode=mode,
        partition_scheme=scheme,
        partition_count=partitions,
        low_key=0,
        high_key=partitions * 100 - 1 if partitions > 1 else 0,
        target_replica_set_size=3,
        min_replica_set_size=2,
        has_persisted_state=True,
    )


@dataclass(frozen=True)
class Step:
    title: str
    deploy: tuple[tuple[str, str], ...] = ()  # (package folder name, application name)
    services: tuple[tuple[str, ServiceDescription], ...] = field(default=())


STEPS: tuple[Step, ...] = (
    Step(
        "fabric:/App1/ServiceA: 2 partitions, SharedProcess",
        deploy=(("MyApp", "fabric:/App1"),),
        services=(
            ("fabric:/App1", _stateful("fabric:/App1/ServiceA", "MyServiceType", 2, SHARED)),
        ),
    ),
    Step(
        "fabric:/App1/ServiceB: 1 partition, joins the same process",
        services=(
            ("fabric:/App1", _stateful("fabric:/App1/ServiceB", "MyServiceType", 1, SHARED)),
        ),
    ),
    Step(
        "fabric:/App2/ServiceA: another application of MyAppType, another process",
        deploy=(("MyApp", "fabric:/App2"),),
        services=(
            ("fabric:/App2", _stateful("fabric:/App2/ServiceA", "MyServiceType", 2, SHARED)),
        ),
    ),
    Step(
        "fabric:/App1/ServiceC: 2 partitions, ExclusiveProcess",
        services=(
            ("fabric:/App1", _stateful("fabric:/App1/ServiceC", "MyServiceType", 2, EXCLUSIVE)),
        ),
    ),
    Step(
        "fabric:/SpecialApp (ExclusiveProcess) and fabric:/SpecialAppShared (SharedProcess)",
        deploy=(("SpecialApp", "fabric:/SpecialApp"), ("SpecialApp", "fabric:/SpecialAppShared")),
        services=(
            (
                "fabric:/SpecialApp",
                _stateful("fabric:/SpecialApp/ServiceA", "MyServiceTypeA", 2, EXCLUSIVE),
            ),
            (
                "fabric:/SpecialApp",
                _stateful("fabric:/SpecialApp/ServiceB", "MyServiceTypeB", 2, EXCLUSIVE),
            ),
            (
                "fabric:/SpecialAppShared",
                _stateful("fabric:/SpecialAppShared/ServiceA", "MyServiceTypeA", 2, SHARED),
            ),
            (
                "fabric:/SpecialAppShared",
                _stateful("fabric:/SpecialAppShared/ServiceB", "MyServiceTypeB", 2, SHARED),
            ),
        ),
    ),
)


def play(
    client: FabricClient,
    manifests: Path,
    *,
    wait_timeout: float = 60.0,
    after_step: Callable[[int, Step], None] | None = None,
) -> None:
    """Play every step against ``client``, waiting until each step's replicas are Ready."""
    for number, step in enumerate(STEPS, start=1):
        for folder, app_name in step.deploy:
            client.deploy(manifests / folder, app_name)
        for app_name, description in step.services:
            client.create_service(app_name, description)
        for _, description in step.services:
            client.wait_service_ready(description.name, wait_timeout)
        if after_step is not None:
            after_step(number, step)
