"""Fixtures that run a real agent daemon in a temporary state directory.

Every cluster is torn down in a ``finally``: ``down`` stops the agent and every process it
started, then the test asserts that no process carrying the state directory's marker is left.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.agent import ENV_MARKER, processes_carrying
from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from tests.integration.beacon import Beacon

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"

pytestmark = pytest.mark.integration


def marked_processes(state_dir: Path) -> list[psutil.Process]:
    """Live processes started by the agent of ``state_dir`` (they carry its marker)."""
    return processes_carrying(ENV_MARKER, str(state_dir))


def agents_serving(state_dir: Path) -> list[psutil.Process]:
    """Live agent daemons started with ``--state-dir state_dir``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "fabrichost.daemon" in cmdline and str(state_dir) in cmdline:
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


def job_processes(state_dir: Path, instance_id: str) -> list[psutil.Process]:
    """Live processes of ``state_dir``'s agent that run singleton instance ``instance_id``."""
    found = []
    for proc in marked_processes(state_dir):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("Fabric_ServiceName", "").endswith(f"/{instance_id}"):
                found.append(proc)
    return found


@dataclass
class Cluster:
    state_dir: Path
    client: FabricClient
    agent_pid: int

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "FABRICHOST_STATE_DIR": str(self.state_dir)}


def fh(cluster: Cluster, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``fabrichost <argv> --state-dir <the cluster's>`` in-process: (exit code, stdout,
    stderr of this command alone)."""
    from fabrichost.cli import main

    capsys.readouterr()  # drop what earlier commands printed
    code = main([*argv, "--state-dir", str(cluster.state_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def _start(tmp_path: Path, nodes: int) -> Iterator[Cluster]:
    state_dir = (tmp_path / "state").resolve()
    record = start_background(state_dir, nodes=nodes, port=0)
    client = FabricClient(record.Endpoint, timeout=30.0)
    try:
        yield Cluster(state_dir, client, record.AgentProcessId)
    finally:
        client.close()
        stop_background(state_dir)
        # An agent the test started itself (a restart) and could not stop, e.g. because the
        # test timed out while it started, is found by its command line.
        left = marked_processes(state_dir) + agents_serving(state_dir)
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        assert not left, f"processes left behind: {left}"
        assert not psutil.pid_exists(record.AgentProcessId) or (
            psutil.Process(record.AgentProcessId).status() == "zombie"
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A one-node cluster."""
    yield from _start(tmp_path, nodes=1)


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[Cluster]:
    """A three-node cluster, as in the reference scenario."""
    yield from _start(tmp_path, nodes=3)


@pytest.fixture
def other_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Another one-node cluster with a state directory of its own, as another developer's
    project or another pytest-xdist worker has."""
    yield from _start(tmp_path / "other", nodes=1)


def write_guest_package(
    root: Path,
    *,
    script: str,
    type_name: str = "GuestType",
    app_type: str = "GuestAppType",
    setup: str | None = None,
    default_service: bool = False,
) -> Path:
    """A guest-executable application package whose program is a Python script."""
    pkg = root / "GuestPkg"
    (pkg / "Code").mkdir(parents=True)
    setup_xml = ""
    if setup is not None:
        (pkg / "Code" / "setup.py").write_text(setup)
        launcher = pkg / "Code" / "setup.sh"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" setup.py\n')
        launcher.chmod(0o755)
        setup_xml = (
            "<SetupEntryPoint><ExeHost><Program>setup.sh</Program>"
            "<WorkingFolder>CodePackage</WorkingFolder></ExeHost></SetupEntryPoint>"
        )
    default_services = ""
    if default_service:
        default_services = f"""
  <DefaultServices>
    <Service Name="Web">
      <StatelessService ServiceTypeName="{type_name}" InstanceCount="1">
        <SingletonPartition />
      </StatelessService>
    </Service>
  </DefaultServices>"""
    (root / "ApplicationManifest.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    ApplicationTypeName="{app_type}" ApplicationTypeVersion="1.0.0">
  <Parameters><Parameter Name="Greeting" DefaultValue="hello" /></Parameters>
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="GuestPkg" ServiceManifestVersion="1.0.0" />
    <EnvironmentOverrides CodePackageRef="Code">
      <EnvironmentVariable Name="GREETING" Value="[Greeting]" />
    </EnvironmentOverrides>
  </ServiceManifestImport>{default_services}
</ApplicationManifest>
""")
    (pkg / "ServiceManifest.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    Name="GuestPkg" Version="1.0.0">
  <ServiceTypes>
    <StatelessServiceType ServiceTypeName="{type_name}" UseImplicitHost="true" />
  </ServiceTypes>
  <CodePackage Name="Code" Version="1.0.0">
    {setup_xml}
    <EntryPoint>
      <ExeHost>
        <Program>run.sh</Program>
        <WorkingFolder>CodePackage</WorkingFolder>
      </ExeHost>
    </EntryPoint>
    <EnvironmentVariables>
      <EnvironmentVariable Name="GREETING" Value="unset" />
    </EnvironmentVariables>
  </CodePackage>
  <Resources>
    <Endpoints><Endpoint Name="Web" /></Endpoints>
  </Resources>
</ServiceManifest>
""")
    (pkg / "Code" / "main.py").write_text(script)
    run = pkg / "Code" / "run.sh"
    run.write_text(f'#!/bin/sh\nexec "{sys.executable}" main.py "$@"\n')
    run.chmod(0o755)
    return root


def write_runtime_package(
    root: Path, hosts: dict[str, tuple[str, str]], app_type: str = "RtAppType"
) -> Path:
    """An application package whose code packages run Python scripts.

    ``hosts`` maps a code package name to (stateful service type it declares, script).
    """
    pkg = root / "RtPkg"
    types = "\n    ".join(
        f'<StatefulServiceType ServiceTypeName="{t}" HasPersistedState="true" />'
        for t, _ in hosts.values()
    )
    code_packages = []
    for name, (_, script) in hosts.items():
        (pkg / name).mkdir(parents=True)
        (pkg / name / "host.py").write_text(script)
        run = pkg / name / "run.sh"
        run.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$(dirname "$0")/host.py"\n')
        run.chmod(0o755)
        code_packages.append(
            f'<CodePackage Name="{name}" Version="1.0.0"><EntryPoint><ExeHost>'
            "<Program>run.sh</Program></ExeHost></EntryPoint></CodePackage>"
        )
    (root / "ApplicationManifest.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    ApplicationTypeName="{app_type}" ApplicationTypeVersion="1.0.0">
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="RtPkg" ServiceManifestVersion="1.0.0" />
  </ServiceManifestImport>
</ApplicationManifest>
""")
    (pkg / "ServiceManifest.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    Name="RtPkg" Version="1.0.0">
  <ServiceTypes>
    {types}
  </ServiceTypes>
  {"".join(code_packages)}
</ServiceManifest>
""")
    return root


def write_stateless_host_package(
    root: Path, *, script: str, types: Sequence[str], app_type: str, package: str = "HostPkg"
) -> Path:
    """An application package with one code package running ``script``, which registers the
    stateless service ``types`` (singleton instances are stateless services)."""
    pkg = root / package
    (pkg / "Code").mkdir(parents=True)
    (pkg / "Code" / "host.py").write_text(script)
    run = pkg / "Code" / "run.sh"
    run.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$(dirname "$0")/host.py"\n')
    run.chmod(0o755)
    (root / "ApplicationManifest.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    ApplicationTypeName="{app_type}" ApplicationTypeVersion="1.0.0">
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="{package}" ServiceManifestVersion="1.0.0" />
  </ServiceManifestImport>
</ApplicationManifest>
""")
    declared = "\n    ".join(f'<StatelessServiceType ServiceTypeName="{t}" />' for t in types)
    (pkg / "ServiceManifest.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    Name="{package}" Version="1.0.0">
  <ServiceTypes>
    {declared}
  </ServiceTypes>
  <CodePackage Name="Code" Version="1.0.0"><EntryPoint><ExeHost>
    <Program>run.sh</Program></ExeHost></EntryPoint></CodePackage>
</ServiceManifest>
""")
    return root


def runtime_host_script(type_name: str) -> str:
    return f"""
from fabrichost.runtime import StatefulService, run_host

class Svc(StatefulService):
    def open(self):
        return f"replica://{{self.context.replica_id}}"

    def change_role(self, role):
        return f"replica://{{self.context.replica_id}}/{{role}}"

run_host({{"{type_name}": Svc}})
"""


@pytest.fixture
def beacon() -> Iterator[Beacon]:
    """A socket the test's guests report their start and their SIGINTs to."""
    b = Beacon()
    try:
        yield b
    finally:
        b.close()
