"""`fabrichost dev` end to end, as a subprocess on a copy of the example WebApp package and of
the shipped HelloWeb sample: a saved edit is served with the new code, a saved Settings.xml
reaches the running process, a broken manifest keeps the running version until it is fixed, and
Ctrl-C (or a SIGKILL of `dev`) leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.client import FabricClient
from fabrichost.daemon import stop_background
from fabrichost.dev import running_code_packages
from fabrichost.errors import FabricHostError
from fabrichost.scenario import manifests_dir
from tests.integration.conftest import agents_serving, marked_processes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.conftest import Cluster

# Each test waits for several events, each with its own generous deadline.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testing" / "WebApp"
WAIT = 60.0  # seconds an expected line may take on a loaded machine
SERVICE = "fabric:/WebApp/Web"


class Dev:
    """A running `fabrichost dev`, its output read as it comes."""

    def __init__(self, package: Path, state: Path) -> None:
        self.state = state
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fabrichost",
                "dev",
                str(package),
                "--port",
                "0",
                "--state-dir",
                str(state),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output = ""
        self.read_to = 0  # where the next wait starts looking

    def wait_for(
        self, pattern: str, timeout: float = WAIT, *, anywhere: bool = False
    ) -> re.Match[str]:
        """The first match of ``pattern`` in the output after the last one waited for (or,
        ``anywhere``, in the whole output: lines of the services and of `dev` come in either
        order)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        start = 0 if anywhere else self.read_to
        while (found := re.compile(pattern, re.M).search(self.output, start)) is None:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"{pattern!r} not seen in time; output:\n{self.output}")
            self.output += chunk.decode(errors="replace")
        self.read_to = max(self.read_to, found.end())
        return found

    def answer(self, service: str = SERVICE) -> str:
        """What the web service answers now (resolved again: a restart may move its port)."""
        with FabricClient.for_state_dir(self.state) as client:
            url = client.endpoints(service)["Web"]
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return str(response.read().decode())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=WAIT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "WebApp"))


@contextlib.contextmanager
def dev_running(package: Path, state: Path) -> Iterator[Dev]:
    dev = Dev(package, state)
    try:
        yield dev
    finally:
        dev.close()
        # Whatever a failed test left: the agent (tied to `dev`, so it stops by itself, but a
        # reused one does not) and its processes.
        if not agents_serving(state):
            stop_background(state)
        for leftover in marked_processes(state):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_an_edit_is_served_a_broken_manifest_keeps_the_old_code_and_the_fix_deploys(
    package: Path, tmp_path: Path
) -> None:
    state = (tmp_path / "state").resolve()
    web = package / "WebPkg" / "Code" / "web.py"
    manifest = package / "WebPkg" / "ServiceManifest.xml"
    with dev_running(package, state) as dev:
        dev.wait_for(r"^dev \| watching ")
        assert dev.answer() == "hello"

        edit(web, "body = os.environ", 'body = b"v2 " + os.environ')
        line = dev.wait_for(r"^dev \| WebPkg/Code/web\.py: .*$")[0]
        assert "WebPkg/Code → 1.0.0-dev.2" in line, line
        assert "restarted WebPkg/Code on _Node_0" in line, line
        assert dev.answer() == "v2 hello"
        assert 'Version="1.0.0"' in manifest.read_text()

        # A broken manifest, saved with new code: neither is applied, the old code serves.
        edit(manifest, "<WorkingFolder>", "<Unknown/><WorkingFolder>")
        edit(web, 'b"v2 "', 'b"v3 "')
        error = dev.wait_for(rf"^{re.escape(str(manifest))}:(\d+): .*Unknown.*$")
        lines = manifest.read_text().splitlines()
        assert int(error[1]) == next(i for i, t in enumerate(lines, 1) if "<Unknown/>" in t)
        assert dev.answer() == "v2 hello"

        edit(manifest, "<Unknown/>", "")
        line = dev.wait_for(r"^dev \| WebPkg/.*: .*$")[0]
        assert line.startswith("dev | WebPkg/Code/web.py, WebPkg/ServiceManifest.xml: "), line
        assert "WebPkg/Code → 1.0.0-dev." in line, line
        assert dev.answer() == "v3 hello"

        # A valid package the running application cannot become: refused, nothing changes.
        app_manifest = package / "ApplicationManifest.xml"
        edit(app_manifest, 'ApplicationTypeName="WebAppType"', 'ApplicationTypeName="Other"')
        line = dev.wait_for(r"^dev \| ApplicationManifest\.xml: .*$")[0]
        assert "not applied" in line, line
        assert "keeps its type (WebAppType)" in line, line
        assert dev.answer() == "v3 hello"
        edit(app_manifest, 'ApplicationTypeName="Other"', 'ApplicationTypeName="WebAppType"')
        line = dev.wait_for(r"^dev \| ApplicationManifest\.xml: .*$")[0]
        assert "nothing deployed changed" in line, line

        # The services' output is followed, labelled.
        dev.wait_for(r"^_Node_0 fabric:/WebApp WebPkg/Code \| serving on port", anywhere=True)
        (agent,) = agents_serving(state)
        assert dev.stop() == 0
        dev.wait_for(rf"^dev \| stopped: deleted fabric:/WebApp; stopped agent {agent.pid}$")
        psutil.wait_procs([agent], timeout=WAIT)
        assert not agents_serving(state)
        assert marked_processes(state) == []


def test_new_code_that_exits_at_once_is_rolled_back_and_the_old_code_keeps_serving(
    package: Path, tmp_path: Path
) -> None:
    state = (tmp_path / "state").resolve()
    web = package / "WebPkg" / "Code" / "web.py"
    with dev_running(package, state) as dev:
        dev.wait_for(r"^dev \| watching ")
        edit(web, "run_host(", "raise SystemExit(3)\nrun_host(")
        line = dev.wait_for(r"^dev \| WebPkg/Code/web\.py: .*$")[0]
        assert "not applied, WebAppType 1.0.0-dev.1 keeps running" in line, line
        assert "RollingBackCompleted" in line, line
        assert "exit code 3" in line, line  # why, as the agent says it
        assert dev.answer() == "hello"

        edit(web, "raise SystemExit(3)\n", "")
        line = dev.wait_for(r"^dev \| WebPkg/Code/web\.py: .*$")[0]
        assert "restarted WebPkg/Code on _Node_0" in line, line
        assert dev.answer() == "hello"
        assert dev.stop() == 0
        assert marked_processes(state) == []


def test_a_sigkill_of_dev_stops_the_agent_it_started(package: Path, tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    with dev_running(package, state) as dev:
        dev.wait_for(r"^dev \| watching ")
        hosts = marked_processes(state)
        assert hosts
        (agent,) = agents_serving(state)
        dev.proc.kill()
        dev.proc.wait()
        psutil.wait_procs([agent, *hosts], timeout=WAIT)
        assert not agents_serving(state)
        assert marked_processes(state) == []


def test_with_an_agent_already_serving_dev_uses_it_and_leaves_it_running(
    cluster: Cluster, package: Path
) -> None:
    with dev_running(package, cluster.state_dir) as dev:
        dev.wait_for(rf"^dev \| using agent {cluster.agent_pid} ")
        dev.wait_for(r"^dev \| watching ")
        assert dev.answer() == "hello"
        assert dev.stop() == 0
        pid = cluster.agent_pid
        dev.wait_for(rf"^dev \| stopped: deleted fabric:/WebApp; left agent {pid} running$")
    # The application dev created is gone with it; the agent serves on.
    assert [a["Name"] for a in cluster.client.applications()] == []
    assert [t["Version"] for t in cluster.client.application_types()] == []
    with pytest.raises(FabricHostError):
        cluster.client.service(SERVICE)
    assert psutil.pid_exists(cluster.agent_pid)
    assert marked_processes(cluster.state_dir) == []


def test_a_package_that_does_not_check_at_start_is_deployed_once_fixed(
    package: Path, tmp_path: Path
) -> None:
    state = (tmp_path / "state").resolve()
    app_manifest = package / "ApplicationManifest.xml"
    edit(app_manifest, 'InstanceCount="1"', 'InstanceCount="one"')
    with dev_running(package, state) as dev:
        dev.wait_for(r"^dev \| .* does not check; fix it and save:")
        dev.wait_for(rf"^{re.escape(str(app_manifest))}:\d+: .*one")
        edit(app_manifest, 'InstanceCount="one"', 'InstanceCount="1"')
        dev.wait_for(r"^dev \| fabric:/WebApp created: WebAppType 1\.0\.0-dev\.1")
        assert dev.answer() == "hello"
        assert dev.stop() == 0
        assert marked_processes(state) == []


def test_code_that_exits_at_start_is_deployed_once_fixed(package: Path, tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    web = package / "WebPkg" / "Code" / "web.py"
    edit(web, "run_host(", "raise SystemExit(3)\nrun_host(")
    with dev_running(package, state) as dev:
        line = dev.wait_for(r"^dev \| fabric:/WebApp could not be deployed; fix it and save: .*$")
        assert "exit code 3" in line[0], line[0]
        edit(web, "raise SystemExit(3)\n", "")
        dev.wait_for(r"^dev \| watching ")
        assert dev.answer() == "hello"
        assert dev.stop() == 0
        assert marked_processes(state) == []


def test_the_shipped_sample_serves_saved_code_and_takes_saved_settings_without_a_restart(
    tmp_path: Path,
) -> None:
    # What a user of a plain install does: cp -r "$(fabrichost samples)/HelloWeb" ./hello
    package = Path(shutil.copytree(manifests_dir() / "HelloWeb", tmp_path / "hello"))
    state = (tmp_path / "state").resolve()
    code = package / "HelloPkg" / "Code" / "hello.py"
    settings = package / "HelloPkg" / "Config" / "Settings.xml"
    service = "fabric:/hello/Hello"
    with dev_running(package, state) as dev:
        dev.wait_for(r"^dev \| watching ")
        assert dev.answer(service) == "Hello, world!\n"

        edit(code, "world!", "there!")
        line = dev.wait_for(r"^dev \| HelloPkg/Code/hello\.py: .*$")[0]
        assert "HelloPkg/Code → 1.0.0-dev.2; restarted HelloPkg/Code on _Node_0" in line, line
        assert dev.answer(service) == "Hello, there!\n"

        with FabricClient.for_state_dir(state) as client:
            (before,) = running_code_packages(client, "fabric:/hello").values()
        edit(settings, 'Value="Hello"', 'Value="Howdy"')
        line = dev.wait_for(r"^dev \| HelloPkg/Config/Settings\.xml: .*$")[0]
        assert "HelloPkg/Config → 1.0.0-dev.3" in line, line
        assert "config delivered to HelloPkg/Code on _Node_0" in line, line
        assert "; restarted " not in line, line
        dev.wait_for(r"\| Config changed: Greeting is now 'Howdy'$", anywhere=True)
        assert dev.answer(service) == "Howdy, there!\n"
        with FabricClient.for_state_dir(state) as client:
            (after,) = running_code_packages(client, "fabric:/hello").values()
        assert after == before  # the same process (id and instance): told, not restarted
        assert psutil.pid_exists(int(after[0]))

        # That process runs from 1.0.0-dev.2's copy, so that version stays provisioned until a
        # restart of the code package frees it: then it goes with the version before.
        edit(code, "there!", "again!")
        line = dev.wait_for(r"^dev \| HelloPkg/Code/hello\.py: .*$")[0]
        assert "restarted HelloPkg/Code on _Node_0" in line, line
        assert dev.answer(service) == "Howdy, again!\n"
        with FabricClient.for_state_dir(state) as client:
            types = [(t["Name"], t["Version"]) for t in client.application_types()]
        assert types == [("HelloWebType", "1.0.0-dev.4")]

        (agent,) = agents_serving(state)
        assert dev.stop() == 0
        dev.wait_for(rf"^dev \| stopped: deleted fabric:/hello; stopped agent {agent.pid}$")
        psutil.wait_procs([agent], timeout=WAIT)
        assert marked_processes(state) == []
    assert 'Value="Howdy"' in settings.read_text()  # the user's files keep their versions
    assert 'Version="1.0.0"' in (package / "HelloPkg" / "ServiceManifest.xml").read_text()


def test_a_second_dev_on_the_same_state_dir_shows_its_services_first_lines(
    tmp_path: Path,
) -> None:
    # The first run leaves its application's folder (and console files) behind, never named
    # again; the second run's service must still be followed from its first line on.
    package = Path(shutil.copytree(manifests_dir() / "HelloWeb", tmp_path / "hello"))
    state = (tmp_path / "state").resolve()
    for _ in range(2):
        with dev_running(package, state) as dev:
            dev.wait_for(r"^dev \| watching ")
            dev.wait_for(r"^_Node_0 fabric:/hello HelloPkg/Code \| serving http://", anywhere=True)
            assert dev.stop() == 0
            assert marked_processes(state) == []
