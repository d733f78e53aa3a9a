"""Applying a staged version to the running application: Service Fabric's application upgrade
(``FabricClient.upgrade_application``), node by node, restarting only the code packages whose
version changed, and rolling back by itself when the new version does not come up."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.client import FabricClient


def upgrade_application(
    client: FabricClient,
    app_name: str,
    type_version: str,
    parameters: Mapping[str, str],
    timeout: float,
) -> None:
    """Upgrade ``app_name`` to ``type_version`` (provisioned) and wait until it is done.

    Raises:
        FabricHostError: the upgrade was refused, or failed and was rolled back (why).
    """
    client.upgrade_application(app_name, type_version, parameters)
    client.wait_upgrade(app_name, timeout)


def recreate_application(
    client: FabricClient,
    app_name: str,
    type_version: str,
    parameters: Mapping[str, str],
    timeout: float,
) -> None:
    """Delete ``app_name`` and create it again at ``type_version``: every process restarts
    and stateful services lose what they held. Only for an agent without upgrades."""
    type_name = client.application(app_name)["TypeName"]
    client.delete_application(app_name)
    client.create_application(app_name, type_name, type_version, parameters)
