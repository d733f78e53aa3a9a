"""Runtime hosts forked from the fork server behave as spawned ones (docs/fork-server.md).

Real agents (``python -m fabrichost.daemon``, a child subreaper) run a probe package whose
launcher is the samples' shape (``exec python3 -m probe_host "$@"``). The probe writes what it
is (pid, session, folder, descriptors, environment, ``sys`` state) to a file before it serves,
so a forked host is compared with a spawned one of an agent started with
``--no-fork-server``. Every agent is stopped in a ``finally`` and nothing marked is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from fabrichost.agent import processes_carrying
from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.wire import ActivationMode, ServiceDescription, ServiceKind
from tests.integration.conftest import agents_serving, marked_processes
from tests.integration.leftovers import DEADLINE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

PROBE = r"""
import json, os, random, subprocess, sys, tempfile, threading
from pathlib import Path

from fabrichost.runtime import StatelessService, run_host

WORK = Path(os.environ["Fabric_Folder_App_Work"])
ORDERS = Path(os.environ["FABRICHOST_AGENT_STATE_DIR"]) / "probe-orders"  # from the test


def _fds():
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return found


report = {
    "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
    "cwd": os.getcwd(), "argv": sys.argv, "orig_argv": sys.orig_argv, "path0": sys.path[0],
    "executable": sys.executable, "name": __name__, "env": dict(os.environ), "fds": _fds(),
    "tmp": tempfile.gettempdir(), "main": sorted(vars(sys.modules["__main__"])),
    "random": random.random(), "threads": threading.active_count(),
}
(WORK / f"probe-{os.getpid()}.json").write_text(json.dumps(report))
if (ORDERS / "linger").exists():  # a daemonised grandchild that outlives this host
    subprocess.Popen(["sleep", "600"], start_new_session=True)
order = ORDERS / "exit-next"
if order.exists():
    how = order.read_text()
    order.unlink()
    if how == "abort":
        os.abort()
    if how == "raise":
        raise RuntimeError("the probe was asked to fail")
    sys.exit(int(how))
print("probe out", flush=True)
print("probe err", file=sys.stderr, flush=True)


class Probe(StatelessService):
    def open(self):
        return f"probe://{os.getpid()}"


if __name__ == "__main__":
    run_host({"ProbeType": Probe})
"""


def write_probe_package(root: Path) -> Path:
    code = root / "ProbePkg" / "Code"
    code.mkdir(parents=True)
    (code / "probe_host.py").write_text(PROBE)
    launcher = code / "launch.sh"
    launcher.write_text('#!/bin/sh\n# the samples\' shape\nexec python3 -m probe_host "$@"\n')
    launcher.chmod(0o755)
    (root / "ApplicationManifest.xml").write_text("""<?xml version="1.0" encoding="utf-8"?>
<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    ApplicationTypeName="ProbeAppType" ApplicationTypeVersion="1.0.0">
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="ProbePkg" ServiceManifestVersion="1.0.0" />
  </ServiceManifestImport>
</ApplicationManifest>
""")
    (root / "ProbePkg" / "ServiceManifest.xml").write_text("""<?xml version="1.0" encoding="utf-8"?>
<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    Name="ProbePkg" Version="1.0.0">
  <ServiceTypes><StatelessServiceType ServiceTypeName="ProbeType" /></ServiceTypes>
  <CodePackage Name="Code" Version="1.0.0"><EntryPoint><ExeHost>
    <Program>launch.sh</Program><WorkingFolder>CodePackage</WorkingFolder>
  </ExeHost></EntryPoint></CodePackage>
</ServiceManifest>
""")
    return root


class Agent:
    """One agent daemon of a state directory, and its probe application."""

    def __init__(self, state_dir: Path, *, fork_server: bool = True) -> None:
        self.state_dir = state_dir
        self.fork_server = fork_server
        self.pid = 0
        self.client: FabricClient | None = None
        self.start()

    def start(self) -> None:
        record = start_background(self.state_dir, nodes=1, port=0, fork_server=self.fork_server)
        self.pid = record.AgentProcessId
        if self.client is not None:
            self.client.close()
        self.client = FabricClient(record.Endpoint, timeout=60.0)

    @property
    def api(self) -> FabricClient:
        assert self.client is not None
        return self.client

    def deploy_probe(self, tmp: Path) -> None:
        self.api.deploy(write_probe_package(tmp / "ProbeApp"), "fabric:/Probe")

    def create_exclusive(self, name: str) -> int:
        """Create an ExclusiveProcess probe service; its host's pid once it is Ready."""
        self.api.create_service(
            "fabric:/Probe",
            ServiceDescription(
                name=f"fabric:/Probe/{name}",
                type_name="ProbeType",
                kind=ServiceKind.STATELESS,
                instance_count=1,
                activation_mode=ActivationMode.EXCLUSIVE_PROCESS,
            ),
            wait=True,
            wait_timeout=DEADLINE,
        )
        return self.host_pid(name)

    def host_pid(self, name: str) -> int:
        for replica in self.api.deployed_replicas("_Node_0", "fabric:/Probe"):
            if (
                replica["ServiceName"] == f"fabric:/Probe/{name}"
                and replica["ReplicaStatus"] == "Ready"
            ):
                return int(replica["HostProcessId"])
        return 0

    def fork_servers(self) -> list[psutil.Process]:
        found = []
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children():
                with contextlib.suppress(psutil.Error):
                    if "r.serve_forks()" in " ".join(child.cmdline()):
                        found.append(child)
        return found

    def report(self, pid: int) -> dict[str, Any]:
        work = next((self.state_dir / "_App" / "_Node_0").glob("ProbeAppType_App*/work"))
        path = work / f"probe-{pid}.json"
        wait_for(path.exists, f"probe {pid} reported")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def orders(self) -> Path:
        """Where the test tells the probe what to do next."""
        folder = self.state_dir / "probe-orders"
        folder.mkdir(exist_ok=True)
        return folder

    def work(self) -> Path:
        return next((self.state_dir / "_App" / "_Node_0").glob("ProbeAppType_App*/work"))

    def log(self) -> str:
        return (self.state_dir / "agent.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        stop_background(self.state_dir)


def wait_for(condition: Callable[[], object], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"still not {what} after {DEADLINE:.0f} s"
        time.sleep(0.05)  # other processes change what is looked at: bounded poll


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def agents(tmp_path: Path, *fork: bool) -> Iterator[list[Agent]]:
    """Agents (fork server on or off) that are stopped, leaving nothing, however the test ends."""
    started: list[Agent] = []
    try:
        for i, on in enumerate(fork):
            started.append(Agent((tmp_path / f"state{i}").resolve(), fork_server=on))
        yield started
    finally:
        for agent in started:
            agent.stop()
            left = marked_processes(agent.state_dir) + agents_serving(agent.state_dir)
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            assert not left, f"processes left behind: {left}"


# Values that differ from process to process (or name descriptors, compared by kind).
_PER_PROCESS = {
    "Fabric_ApplicationHostId",
    "FABRICHOST_INCARNATION",
    "FABRICHOST_LOCK_FD",
    "FABRICHOST_CHANNEL_FD",
    "Fabric_ServicePackageActivationId",
    "Fabric_ServicePackageActivationGuid",
    "Fabric_PartitionId",
}


def _normal(report: dict[str, Any], state_dir: Path) -> dict[str, Any]:
    """The report with the state directory spelt <state> and per-process values left out."""
    text = json.dumps(report).replace(str(state_dir), "<state>")
    data: dict[str, Any] = json.loads(text)
    data["env"] = {k: v for k, v in data["env"].items() if k not in _PER_PROCESS}
    kinds = [re.sub(r"^(pipe|socket|anon_inode):.*", r"\1", t) for t in data.pop("fds").values()]
    data["fd_kinds"] = sorted(re.sub(r"\.[0-9a-f-]{36}\.", ".<partition>.", k) for k in kinds)
    for key in ("pid", "ppid", "sid", "pgid", "random"):
        data.pop(key)
    return data


@pytest.mark.timeout(240)
def test_a_forked_host_is_the_python_a_spawn_would_start(tmp_path: Path) -> None:
    with agents(tmp_path, True, False) as (forking, spawning):
        for agent in (forking, spawning):
            agent.deploy_probe(tmp_path / agent.state_dir.name)
        forked = [forking.create_exclusive("A"), forking.create_exclusive("B")]
        spawned = spawning.create_exclusive("A")
        assert len(forking.fork_servers()) == 1
        assert spawning.fork_servers() == []  # so the comparison is fork against spawn

        reports = [forking.report(pid) for pid in forked]
        spawn_report = spawning.report(spawned)
        for pid, report in zip(forked, reports, strict=True):
            proc = psutil.Process(pid)
            # Its own process, session and group, a child of the agent as a spawned host is.
            assert report["pid"] == report["sid"] == report["pgid"] == pid
            assert report["ppid"] == forking.pid == proc.ppid()
            # What the kernel shows (fencing and `ps` read it) is the host's, not the server's.
            assert proc.environ() == report["env"]
            assert proc.cmdline() == ["python3", "-m", "probe_host"]
            # Only stdin, stdout, stderr, its lock and its channel (the listing's own is closed
            # by the time it is read).
            numbers = {int(n) for n in report["fds"]}
            env = report["env"]
            lock, channel = int(env["FABRICHOST_LOCK_FD"]), int(env["FABRICHOST_CHANNEL_FD"])
            assert numbers == {0, 1, 2, lock, channel}
            assert report["fds"]["0"] == "/dev/null"
            assert report["fds"][str(lock)].endswith(".Code.lock")
            assert report["fds"][str(channel)].startswith("socket:")
            assert report["tmp"] == env["TMPDIR"]
            assert report["threads"] == 1
            assert report["name"] == "__main__"
        assert len({r["pid"] for r in reports}) == len({r["sid"] for r in reports}) == 2
        assert reports[0]["random"] != reports[1]["random"]  # reseeded in each host
        assert reports[0]["env"]["Fabric_ServiceName"] == "fabric:/Probe/A"
        assert reports[1]["env"]["Fabric_ServiceName"] == "fabric:/Probe/B"
        expected = _normal(spawn_report, spawning.state_dir)
        del expected["env"]["Fabric_ServiceName"]  # A or B: compared above
        for report in reports:
            found = _normal(report, forking.state_dir)
            del found["env"]["Fabric_ServiceName"]
            assert set(found["env"].items()) ^ set(expected["env"].items()) == set()
            assert found == expected
        assert psutil.Process(spawned).cmdline() == ["python3", "-m", "probe_host"]

        # stdout and stderr went to the same rotated console files a spawn writes.
        logs = forking.work().parent / "log"
        outs = [p.read_text() for p in logs.glob("Code_ProbePkg.*_M_*.out")]
        errs = [p.read_text() for p in logs.glob("Code_ProbePkg.*_M_*.err")]
        assert sum("probe out" in text for text in outs) == 2
        assert sum("probe err" in text for text in errs) == 2


def _exit_lines(agent: Agent, pid: int) -> list[int]:
    return [int(c) for c in re.findall(rf"\(pid {pid}\) exited with (-?\d+)", agent.log())]


@pytest.mark.timeout(240)
def test_a_forked_host_restarts_after_a_crash_with_its_exit_code_and_lock(
    tmp_path: Path,
) -> None:
    with agents(tmp_path, True) as (agent,):
        agent.deploy_probe(tmp_path)
        pid = agent.create_exclusive("A")
        server = agent.fork_servers()[0]
        (lock,) = (agent.state_dir / "locks" / "_Node_0").glob("*.Code.lock")
        for how, code in (("3", 3), ("raise", 1), ("abort", -signal.SIGABRT)):
            # The host holds its incarnation lock; the fork server never keeps a copy.
            assert str(lock) in {f.path for f in psutil.Process(pid).open_files()}
            assert str(lock) not in {f.path for f in server.open_files()}
            pid = _crash_then_exit(agent, pid, how, code)
            if how == "raise":  # the traceback went to its console file, as from a spawn
                errs = (agent.work().parent / "log").glob("Code_ProbePkg.*.err")
                assert "RuntimeError: the probe was asked to fail" in "".join(
                    p.read_text() for p in errs
                )
            assert psutil.Process(pid).ppid() == agent.pid
            assert agent.report(pid)["sid"] == pid
        (code_package,) = agent.api.deployed_code_packages("_Node_0", "fabric:/Probe")
        stats = code_package["MainEntryPoint"]["CodePackageEntryPointStatistics"]
        assert stats["ExitCount"] == stats["ExitFailureCount"] == "6"
        assert agent.fork_servers() == [server]  # every incarnation came from the one server


def _crash_then_exit(agent: Agent, pid: int, how: str, code: int) -> int:
    """SIGKILL host ``pid``, whose next incarnation exits as ``how`` says (``code``); return
    the pid of the one after, once it is Ready."""
    (agent.orders() / "exit-next").write_text(how)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _exit_lines(agent, pid) == [-signal.SIGKILL], f"{pid} reaped")
    # The next incarnation, forked again, exits as asked; the one after serves.
    wait_for(lambda: code in _exit_lines_after(agent, pid), f"an exit with {code}")
    wait_for(lambda: agent.host_pid("A") not in (0, pid), "a new host Ready")
    return agent.host_pid("A")


def _exit_lines_after(agent: Agent, pid: int) -> list[int]:
    """Exit codes logged for hosts started after ``pid``."""
    codes = []
    for found_pid, code in re.findall(r"\(pid (\d+)\) exited with (-?\d+)", agent.log()):
        if int(found_pid) != pid:
            codes.append(int(code))
    return codes


@pytest.mark.timeout(240)
def test_an_agent_killed_takes_its_fork_server_and_the_restart_fences_forked_hosts(
    tmp_path: Path,
) -> None:
    with agents(tmp_path, True) as (agent,):
        agent.deploy_probe(tmp_path)
        (agent.orders() / "linger").write_text("")
        hosts = [agent.create_exclusive("A"), agent.create_exclusive("B")]
        (server,) = agent.fork_servers()
        marked = {p.pid for p in marked_processes(agent.state_dir)}
        assert set(hosts) <= marked  # fencing finds forked hosts by their marker
        assert server.pid not in marked  # it is no code package's: it goes with its agent
        lingering = [
            p.pid for p in marked_processes(agent.state_dir) if p.cmdline()[:1] == ["sleep"]
        ]
        assert len(lingering) == 2
        # What a forked host starts inherits its incarnation, as from a spawned one.
        incarnations = {psutil.Process(p).environ()["FABRICHOST_INCARNATION"] for p in hosts}
        assert len(incarnations) == 2
        for incarnation in incarnations:
            carriers = {p.pid for p in processes_carrying("FABRICHOST_INCARNATION", incarnation)}
            assert len(carriers & set(hosts)) == len(carriers & set(lingering)) == 1

        os.kill(agent.pid, signal.SIGKILL)
        wait_for(lambda: _dead(server.pid), "the fork server gone with its agent")
        # A runtime host ends at its channel's end, forked or spawned.
        wait_for(lambda: all(_dead(p) for p in hosts), "the hosts gone")
        assert not any(_dead(p) for p in lingering)  # out of reach until the restart

        (agent.orders() / "linger").unlink()
        agent.start()  # fences the earlier run, then starts its services again
        for pid in lingering:
            assert _dead(pid)
        wait_for(lambda: agent.host_pid("A") and agent.host_pid("B"), "A and B Ready again")
        assert not {agent.host_pid("A"), agent.host_pid("B")} & set(hosts)
        (new_server,) = agent.fork_servers()
        assert new_server.pid != server.pid


@pytest.mark.timeout(240)
def test_a_killed_fork_server_costs_no_host_and_the_next_host_gets_a_new_one(
    tmp_path: Path,
) -> None:
    with agents(tmp_path, True) as (agent,):
        agent.deploy_probe(tmp_path)
        hosts = [agent.create_exclusive("A"), agent.create_exclusive("B")]
        (server,) = agent.fork_servers()
        server.kill()
        wait_for(lambda: _dead(server.pid), "the fork server killed")
        assert [agent.host_pid("A"), agent.host_pid("B")] == hosts  # still Ready, same hosts
        assert all(not _dead(pid) for pid in hosts)

        pid = agent.create_exclusive("C")
        assert psutil.Process(pid).ppid() == agent.pid
        (new_server,) = agent.fork_servers()
        assert new_server.pid != server.pid
        assert psutil.Process(pid).cmdline() == ["python3", "-m", "probe_host"]
        os.kill(hosts[0], signal.SIGKILL)  # a host forked by the dead server still restarts
        wait_for(lambda: agent.host_pid("A") not in (0, hosts[0]), "A restarted")
