"""The folders and environment variables a code package gets, as Service Fabric gives them.

Layout in the state directory (SF's dev cluster uses ``Data/_App/_Node_0/<AppType>_App<N>``)::

    <state>/_App/<node>/<ApplicationId>/{work,log,temp}

The environment is the agent's own, then the ``Fabric_*`` variables, then the manifest's
``EnvironmentVariables`` with the application's ``EnvironmentOverrides`` already applied. Like SF
adds its bin folder to ``Path``, the agent puts its own interpreter's folder first on ``PATH`` so
that ``python3`` in a code package launcher is the interpreter that has fabrichost installed.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.agent._spec import CodePackageSpec

# Every process the agent starts carries this variable, so `down` can find strays even when the
# agent itself was killed (see _fence).
ENV_MARKER: Final = "FABRICHOST_AGENT_STATE_DIR"

# The IP of every endpoint: given to the process (Fabric_Endpoint_IPOrFQDN_<Name>) and published
# in a guest's address. 127.0.0.1, not ``localhost``: the ports are reserved for IPv4 loopback,
# and ``localhost`` may resolve to [::1], where another program may hold the same port.
ENDPOINT_HOST: Final = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ApplicationFolders:
    state_dir: Path
    root: Path
    work: Path
    log: Path
    temp: Path

    @classmethod
    def for_node(cls, state_dir: Path, node_name: str, application_id: str) -> ApplicationFolders:
        root = state_dir / "_App" / node_name / application_id
        return cls(state_dir, root, root / "work", root / "log", root / "temp")

    def create(self) -> None:
        for folder in (self.work, self.log, self.temp):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True, slots=True)
class ActivationIdentity:
    """Who a code package process is: the values behind the Fabric_* variables."""

    node_name: str
    application_name: str
    application_id: str
    service_package_name: str
    activation_id: str  # "" for SharedProcess
    partition_id: str = ""  # ExclusiveProcess only: the partition the activation exists for
    service_name: str = ""  # ExclusiveProcess only


def code_package_environment(
    identity: ActivationIdentity,
    code_package: CodePackageSpec,
    folders: ApplicationFolders,
    endpoints: Mapping[str, int],
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the environment of one code package process (without the channel variables)."""
    env = dict(os.environ if base is None else base)
    interpreter_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (interpreter_dir, env.get("PATH", "")) if p)
    env[ENV_MARKER] = str(folders.state_dir)
    env["TEMP"] = env["TMP"] = env["TMPDIR"] = str(folders.temp)
    env.update(
        {
            "Fabric_NodeName": identity.node_name,
            "Fabric_NodeIPOrFQDN": "localhost",
            "Fabric_ApplicationName": identity.application_name,
            "Fabric_ApplicationId": identity.application_id,
            "Fabric_CodePackageName": code_package.name,
            "Fabric_ServicePackageName": identity.service_package_name,
            "Fabric_ServicePackageActivationId": identity.activation_id,
            "Fabric_ApplicationHostId": str(uuid.uuid4()),
            "Fabric_ApplicationHostType": "Activated_SingleCodePackage",
            "Fabric_IsContainerHost": "false",
            "Fabric_Folder_App_Work": str(folders.work),
            "Fabric_Folder_App_Log": str(folders.log),
            "Fabric_Folder_App_Temp": str(folders.temp),
            "Fabric_Folder_Application": str(folders.root),
        }
    )
    if identity.activation_id:
        env["Fabric_ServicePackageActivationGuid"] = identity.partition_id
        env["Fabric_PartitionId"] = identity.partition_id
        env["Fabric_ServiceName"] = identity.service_name
    for name, port in endpoints.items():
        env[f"Fabric_Endpoint_{name}"] = str(port)
        env[f"Fabric_Endpoint_IPOrFQDN_{name}"] = ENDPOINT_HOST
    env.update(dict(code_package.environment))
    return env
