"""Applying a staged version to the running application: Service Fabric's application upgrade
(``FabricClient.upgrade_application``), node by node, restarting only the code packages whose
version changed, delivering a changed config package to hosts that subscribe, and rolling back
by itself when the new version does not come up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.client import FabricClient

COMPLETED: Final = "RollingForwardCompleted"


def upgrade_application(
    client: FabricClient,
    app_name: str,
    type_version: str,
    parameters: Mapping[str, str],
    timeout: float,
) -> None:
    """Upgrade ``app_name`` to ``type_version`` (provisioned; its parameters become
    ``parameters`` when there are any) and return once it has rolled through every node.

    Raises:
        FabricHostError: the upgrade was refused, did not finish within ``timeout`` seconds,
            or failed (and rolled back: the version before it is in force), saying why.
    """
    # No parameters given: the application keeps the ones it has (one `dev` did not create).
    client.upgrade_application(app_name, type_version, dict(parameters) or None)
    try:
        progress = client.wait_upgrade(app_name, timeout, until_pending=False)
    except TimeoutError as exc:
        raise FabricHostError(str(exc)) from exc
    state = progress.get("UpgradeState")
    if state != COMPLETED:
        cause = progress.get("UpgradeStatusDetails") or progress.get("FailureReason") or state
        current = progress.get("CurrentApplicationTypeVersion", "?")
        raise FabricHostError(
            f"the upgrade to {type_version} ended {state}, {current} in force: {cause}"
        )
