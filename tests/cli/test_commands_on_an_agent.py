"""The command line against a real agent: what deploy, create, the deployed queries and the
view report (and what they did not do), and who may drive the agent's HTTP API.

Runs the command line in-process against a real agent (the ``cluster`` fixture of
``tests/integration/conftest.py``, which stops it and checks that no process is left behind).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

from tests.integration.conftest import MANIFESTS, cluster, fh, write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

__all__ = ("cluster",)  # the fixture, re-exported for the tests below

pytestmark = pytest.mark.integration


def deploy_myapp(cluster: Cluster, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, _, err = fh(cluster, capsys, "app", "deploy", str(MANIFESTS / "MyApp"), "--name", name)
    assert code == 0, err


def test_deployed_queries_without_app_list_every_application_on_the_node(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    for app in ("fabric:/A1", "fabric:/A2"):
        deploy_myapp(cluster, capsys, app)
        create = ["service", "create", f"{app}/S", "--type", "MyServiceType", "--stateful"]
        code, _, err = fh(cluster, capsys, *create, "--replicas", "1", "--wait")
        assert code == 0, err
    for what in ("service-packages", "code-packages", "replicas"):
        code, out, err = fh(cluster, capsys, "deployed", what, "--node", "_Node_0", "--json")
        assert code == 0, (what, err)
        items = json.loads(out)
        assert sorted({i["ApplicationName"] for i in items}) == ["fabric:/A1", "fabric:/A2"]
        code, out, _ = fh(cluster, capsys, "deployed", what, "--app", "fabric:/A2", "--json")
        assert code == 0
        assert len(json.loads(out)) == len(items) // 2
    code, out, _ = fh(cluster, capsys, "deployed", "replicas")
    assert code == 0
    assert "fabric:/A1/S" in out
    assert "fabric:/A2/S" in out


def test_create_and_deploy_say_what_they_did_not_do(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_myapp(cluster, capsys, "fabric:/App1")
    create = ["service", "create", "fabric:/App1/S", "--type", "MyServiceType", "--stateful"]
    code, out, err = fh(cluster, capsys, *create, "--replicas", "3", "--wait", "--timeout", "30")
    assert code == 0, err
    assert "created fabric:/App1/S" in out
    assert "warning:" in err
    assert "2 replica(s) could not be placed" in err

    code, out, err = fh(cluster, capsys, *create, "--replicas", "2", "--if-exists", "use-existing")
    assert code == 0, err
    assert "created" not in out
    assert "exists already: fabric:/App1/S (kept)" in out
    assert "target replicas is 3, not 2" in err

    jobs = ["app", "deploy", str(MANIFESTS / "SingletonJobs"), "--name", "fabric:/App1"]
    code, out, err = fh(cluster, capsys, *jobs, "--if-exists", "use-existing")
    assert code == 0, err
    assert "exists already: fabric:/App1 (MyAppType 1.0.0) (kept)" in out
    assert "not the package's SingletonJobsType 1.0.0" in err
    # The type this deploy provisioned for nothing is not left behind.
    types = {t["Name"] for t in cluster.client.application_types()}
    assert types == {"MyAppType"}

    code, out, err = fh(cluster, capsys, "logs", "--app", "fabric:/App1", "--code-package", "Nope")
    assert code == 1
    assert "Nope" in err
    assert "MyCodePackage" in err


def test_a_deploy_refused_for_a_bad_parameter_leaves_no_type_behind(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["app", "deploy", str(MANIFESTS / "MyApp"), "--name", "fabric:/Bad"]
    code, _, err = fh(cluster, capsys, *argv, "--param", "NoSuchParameter=1")
    assert code == 1
    assert "NoSuchParameter" in err
    assert cluster.client.application_types() == []
    assert cluster.client.applications() == []
    # A type that was there before stays.
    deploy_myapp(cluster, capsys, "fabric:/Good")
    assert fh(cluster, capsys, *argv, "--param", "NoSuchParameter=1")[0] == 1
    assert [t["Name"] for t in cluster.client.application_types()] == ["MyAppType"]


def test_the_first_view_shows_the_cpu_a_busy_process_uses(cluster: Cluster, tmp_path: Path) -> None:
    busy = "while True:\n    pass\n"
    package = write_guest_package(tmp_path / "Busy", script=busy, default_service=True)
    cluster.client.deploy(package, "fabric:/Busy")
    cluster.client.wait_service_ready("fabric:/Busy/Web", 30)
    deadline = time.monotonic() + 30
    while not (
        pid := int(
            cluster.client.deployed_code_packages("_Node_0", "fabric:/Busy")[0]["MainEntryPoint"][
                "ProcessId"
            ]
        )
    ):
        assert time.monotonic() < deadline, "the busy process never started"
        time.sleep(0.05)
    # The process has spent some CPU (the kernel counts it in 10 ms ticks) before the view.
    while sum(psutil.Process(pid).cpu_times()[:2]) < 0.05:
        assert time.monotonic() < deadline, "the busy process never ran"
        time.sleep(0.05)
    view = cluster.client.view("_Node_0")
    (process,) = [
        cp
        for app in view["Nodes"][0]["Applications"]
        for act in app["Activations"]
        for cp in act["CodePackages"]
    ]
    assert process["ProcessId"] > 0
    # A process the view has not seen before shows its lifetime average (as `ps` does), not
    # psutil's meaningless first 0.0: the interpreter's start alone spent CPU. (A share of a core
    # is not asserted: it depends on the machine's load, and CI once saw 9.8 %.)
    assert process["CpuPercent"] > 0.0, process


def test_only_the_agents_own_origin_may_drive_it(cluster: Cluster) -> None:
    endpoint = cluster.client.endpoint
    port = endpoint.rsplit(":", 1)[1]
    stop = f"{endpoint}/Nodes/_Node_0/$/Stop"
    # The agent listens on 127.0.0.1 only: a page from [::1]:<port> (where a browser may take
    # `localhost`) is some other program's.
    refused = ["http://localhost:1234", "http://127.0.0.1:1", "null", "https://localhost"]
    refused += [f"http://[::1]:{port}", f"http://localhost:{port}"]
    for origin in refused:
        response = httpx.post(stop, headers={"Origin": origin}, timeout=10)
        assert response.status_code == 403, (origin, response.text)
    assert [n["NodeStatus"] for n in cluster.client.nodes()] == ["Up"]
    response = httpx.get(f"{endpoint}/Nodes", headers={"Origin": endpoint}, timeout=10)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{endpoint}/Nodes", timeout=10).status_code == 200  # no Origin: a CLI


def test_a_query_against_an_agent_loads_no_httpx_rich_or_daemon(cluster: Cluster) -> None:
    # What a query's start-up costs is mostly imports (docs/PERFORMANCE.md): the status path
    # talks to the agent with the standard library and prints its small table itself.
    code = (
        "import sys\nfrom fabrichost.cli import main\n"
        f"code = main(['status', '--state-dir', {str(cluster.state_dir)!r}])\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\nsys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "_Node_0" in result.stdout
    loaded = set(result.stdout.split("MODULES", 1)[1].split())
    heavy = {"httpx", "rich", "fabrichost.daemon", "psutil", "fabrichost.agent", "starlette"}
    assert not heavy & loaded, heavy & loaded
