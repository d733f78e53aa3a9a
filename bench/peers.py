"""The three process hosts measured the same way: supervisord, circus and fabrichost.

Each system runs ``count`` copies of one trivial Python program (``CHILD``), one program per
supervisord ``[program]``, per circus watcher and per fabrichost code package (one service
package with ``count`` code packages). Every system is driven through its own API:

* **up**: from starting the daemon to its API reporting every program running (supervisord
  ``RUNNING`` with ``startsecs=0``; circus watchers ``active`` with their process up;
  fabrichost code packages ``Started`` with a process id), the daemon's start included;
* **stop**: from asking it to stop them all (supervisord ``stopAllProcesses``, circus ``stop``,
  fabrichost ``app delete``) to every one of the programs' processes being gone;
* **rss**: the daemon's resident memory with every program running, and its CPU use while idle.

Each system runs in its own temporary folder on free loopback ports and is shut down (and its
processes killed) whatever happens.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CHILD = "import time\nwhile True:\n    time.sleep(3600)\n"
DEADLINE = 300.0


@dataclass
class Run:
    """One system's figures for one count."""

    up_s: float
    stop_s: float
    rss_mib: float
    idle_cpu_percent: float


class System(Protocol):
    name: str

    def run(self, count: int) -> Run: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {deadline:.0f} s")
        time.sleep(0.005)


def all_gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and _alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def idle_cpu_percent(pid: int, seconds: float = 2.0) -> float:
    """The share of one core ``pid`` used over ``seconds`` of doing nothing."""
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    return 100 * (sum(proc.cpu_times()[:2]) - before) / seconds


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    try:
        (root / "child.py").write_text(CHILD)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
    proc.kill()
    proc.wait()


class Supervisord:
    name = "supervisord"

    def __init__(self, bin_dir: Path) -> None:
        self.supervisord = bin_dir / "supervisord"

    def run(self, count: int) -> Run:
        with workdir(self.name) as root:
            port = free_port()
            programs = "".join(
                f"[program:p{i}]\ncommand={sys.executable} {root / 'child.py'}\n"
                "startsecs=0\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n"
                for i in range(count)
            )
            (root / "supervisord.conf").write_text(
                f"[supervisord]\nlogfile={root / 'supervisord.log'}\npidfile={root / 'pid'}\n"
                f"nodaemon=true\n\n[inet_http_server]\nport=127.0.0.1:{port}\n\n"
                "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                "supervisor.rpcinterface:make_main_rpcinterface\n\n" + programs
            )
            api: Any = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2").supervisor
            start = time.perf_counter()
            daemon = subprocess.Popen(
                [str(self.supervisord), "-c", str(root / "supervisord.conf")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for("supervisord up", lambda: self._running(api, count))
                up = time.perf_counter() - start
                rss = rss_mib(daemon.pid)
                idle = idle_cpu_percent(daemon.pid)
                pids = [int(p["pid"]) for p in api.getAllProcessInfo()]
                start = time.perf_counter()
                api.stopAllProcesses(True)
                wait_for("supervisord stop", lambda: all_gone(pids))
                stop = time.perf_counter() - start
                with contextlib.suppress(Exception):
                    api.shutdown()
                daemon.wait(timeout=60)
            finally:
                if daemon.poll() is None:
                    _kill_tree(daemon)
        return Run(up, stop, rss, idle)

    @staticmethod
    def _running(api: Any, count: int) -> bool:
        try:
            infos = api.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return False  # not listening yet
        return len(infos) == count and all(p["statename"] == "RUNNING" for p in infos)


class Circus:
    name = "circus"

    def __init__(self, bin_dir: Path) -> None:
        self.circusd = bin_dir / "circusd"

    def run(self, count: int) -> Run:
        # The bench extra (untyped): imported only when circus is measured.
        circus_client: Any = importlib.import_module("circus.client")

        with workdir(self.name) as root:
            endpoint = f"tcp://127.0.0.1:{free_port()}"
            watchers = "".join(
                f"[watcher:p{i}]\ncmd = {sys.executable} {root / 'child.py'}\nnumprocesses = 1\n\n"
                for i in range(count)
            )
            (root / "circus.ini").write_text(
                f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = "
                f"tcp://127.0.0.1:{free_port()}\nstatsd = False\ncheck_delay = 0\n\n" + watchers
            )
            client = circus_client.CircusClient(endpoint=endpoint, timeout=30)
            start = time.perf_counter()
            daemon = subprocess.Popen(
                [str(self.circusd), str(root / "circus.ini")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                pids: list[int] = []
                wait_for("circus up", lambda: self._running(client, count, pids, daemon.pid))
                up = time.perf_counter() - start
                rss = rss_mib(daemon.pid)
                idle = idle_cpu_percent(daemon.pid)
                start = time.perf_counter()
                client.call({"command": "stop", "properties": {"waiting": True}})
                wait_for("circus stop", lambda: all_gone(pids))
                stop = time.perf_counter() - start
                client.call({"command": "quit", "properties": {"waiting": True}})
                daemon.wait(timeout=60)
            finally:
                client.stop()
                if daemon.poll() is None:
                    _kill_tree(daemon)
        return Run(up, stop, rss, idle)

    @staticmethod
    def _running(client: Any, count: int, pids: list[int], daemon_pid: int) -> bool:
        try:
            statuses = client.call({"command": "status"}).get("statuses", {})
        except Exception:  # circus' client raises CallError while circusd starts
            return False
        if len(statuses) < count or any(s != "active" for s in statuses.values()):
            return False
        # "active" says the watcher started; its process is up once circusd has the child.
        pids[:] = [c.pid for c in psutil.Process(daemon_pid).children()]
        return len(pids) >= count


class FabricHost:
    name = "fabrichost"

    def run(self, count: int) -> Run:
        from fabrichost.client import FabricClient
        from fabrichost.daemon import start_background, stop_background
        from fabrichost.wire import AgentRecord

        with workdir(self.name) as root:
            package = _guest_package(root / "Bench", count)
            state = root / "state"
            start = time.perf_counter()
            record = start_background(state, nodes=1, port=0)
            try:
                with FabricClient(record.Endpoint, timeout=120) as client:
                    client.deploy(package, "fabric:/Bench")
                    pids: list[int] = []
                    wait_for("fabrichost up", lambda: self._running(client, count, pids))
                    up = time.perf_counter() - start
                    agent = AgentRecord.read(state)
                    assert agent is not None
                    rss = rss_mib(agent.AgentProcessId)
                    idle = idle_cpu_percent(agent.AgentProcessId)
                    start = time.perf_counter()
                    client.delete_application("fabric:/Bench")
                    wait_for("fabrichost stop", lambda: all_gone(pids))
                    stop = time.perf_counter() - start
            finally:
                stop_background(state)
        return Run(up, stop, rss, idle)

    @staticmethod
    def _running(client: Any, count: int, pids: list[int]) -> bool:
        cps = client.deployed_code_packages("_Node_0", "fabric:/Bench")
        main = [cp["MainEntryPoint"] for cp in cps]
        started = [int(m["ProcessId"]) for m in main if m["Status"] == "Started"]
        pids[:] = [p for p in started if p]
        return len(pids) == count


def _guest_package(root: Path, count: int) -> Path:
    """An application whose one service package has ``count`` code packages running CHILD."""
    pkg = root / "BenchPkg"
    code_packages = []
    for i in range(count):
        code = pkg / f"C{i}"
        code.mkdir(parents=True)
        (code / "child.py").write_text(CHILD)
        run = code / "run.sh"
        run.write_text(f'#!/bin/sh\nexec "{sys.executable}" child.py\n')
        run.chmod(0o755)
        code_packages.append(
            f'  <CodePackage Name="C{i}" Version="1.0.0"><EntryPoint><ExeHost>'
            "<Program>run.sh</Program><WorkingFolder>CodePackage</WorkingFolder>"
            "</ExeHost></EntryPoint></CodePackage>\n"
        )
    (pkg / "ServiceManifest.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric" Name="BenchPkg" '
        'Version="1.0.0">\n  <ServiceTypes><StatelessServiceType ServiceTypeName="BenchType" '
        'UseImplicitHost="true" /></ServiceTypes>\n'
        + "".join(code_packages)
        + "</ServiceManifest>\n"
    )
    (root / "ApplicationManifest.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric" '
        'ApplicationTypeName="BenchAppType" ApplicationTypeVersion="1.0.0">\n'
        '  <ServiceManifestImport><ServiceManifestRef ServiceManifestName="BenchPkg" '
        'ServiceManifestVersion="1.0.0" /></ServiceManifestImport>\n'
        '  <DefaultServices><Service Name="Bench"><StatelessService ServiceTypeName="BenchType" '
        'InstanceCount="1"><SingletonPartition /></StatelessService></Service></DefaultServices>\n'
        "</ApplicationManifest>\n"
    )
    return root
