"""Which code package processes a change restarted, and which took a new config package while
they ran: the application's code packages on every node, before and after, compared by process
id and instance id (the agent counts every start of a code package's entry point)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fabrichost.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from fabrichost.client import FabricClient


@dataclass(frozen=True, slots=True, order=True)
class CodePackageSlot:
    """One code package of one service package activation on one node."""

    node: str
    service_manifest: str
    code_package: str
    activation_id: str

    def __str__(self) -> str:
        return f"{self.service_manifest}/{self.code_package} on {self.node}"


#: slot → (process id, instance id) of its main entry point
Processes = dict[CodePackageSlot, tuple[str, str]]


def running_code_packages(client: FabricClient, app_name: str) -> Processes:
    """Every code package of ``app_name`` deployed now, on every node."""
    found: Processes = {}
    for node in client.nodes():
        name = node["Name"]
        try:
            deployed = client.deployed_code_packages(name, app_name)
        except NotFoundError:
            continue  # not placed on this node (or the node is down)
        for cp in deployed:
            main = cp.get("MainEntryPoint") or {}
            slot = CodePackageSlot(
                name, cp["ServiceManifestName"], cp["Name"], cp["ServicePackageActivationId"]
            )
            found[slot] = (str(main.get("ProcessId", "")), str(main.get("InstanceId", "")))
    return found


def restarted(
    before: Mapping[CodePackageSlot, tuple[str, str]],
    after: Mapping[CodePackageSlot, tuple[str, str]],
) -> list[CodePackageSlot]:
    """The slots whose process is not the one it was (restarted, or new), in order."""
    return sorted(slot for slot, process in after.items() if before.get(slot) != process)


def kept_running(
    before: Mapping[CodePackageSlot, tuple[str, str]],
    after: Mapping[CodePackageSlot, tuple[str, str]],
    service_manifests: Collection[str],
) -> list[CodePackageSlot]:
    """The slots of ``service_manifests`` whose process is the one it was, in order. After an
    upgrade that changed those packages' config, these are the processes the agent handed the
    new settings to: a host that does not take config changes is restarted instead."""
    return sorted(
        slot
        for slot, process in after.items()
        if slot.service_manifest in service_manifests and before.get(slot) == process
    )
