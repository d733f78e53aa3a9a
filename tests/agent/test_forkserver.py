"""A fork server under a subreaper, without an agent: what a fork request gives back.

The checks run in a child interpreter (``SCRIPT``) that adopts orphans as the agent does: the
test process itself must not become a subreaper. It prints one JSON object, checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = r"""
import asyncio, json, os, signal, sys
import psutil
from pathlib import Path

from fabrichost.agent._forkserver import ForkServer, ForkServerGone
from fabrichost.agent._orphans import adopt_orphans, reap_adopted, reaping_held
from fabrichost.agent._proctree import ChildProcess
from fabrichost.errors import ProcessError
from fabrichost.protocol import ForkRequest

folder = Path(sys.argv[1])
env = {"PATH": os.environ["PATH"]}


def request(module, cwd=str(folder), environment=env):
    return ForkRequest(module, ("x",), cwd, environment, (), "python3")


async def run(server, module):
    with reaping_held():
        child = ChildProcess.adopt(await server.fork(request(module), []), env=env)
    return await child.exited


async def main():
    adopt_orphans(asyncio.get_running_loop())
    server = await ForkServer.start(sys.executable, {}, folder)
    found = {"server_ppid": psutil.Process(server.pid).ppid() == os.getpid()}
    found["codes"] = {m: await run(server, m) for m in ("exits_5", "raises", "killed")}
    # Requests from many starts at once take turns on the one socket.
    found["concurrent"] = await asyncio.gather(*(run(server, "exits_5") for _ in range(8)))
    try:
        await server.fork(request("exits_5", cwd=str(folder / "missing")), [])
    except ProcessError as exc:
        found["missing_folder"] = str(exc)
    try:
        big = {"BIG": "x" * (server.ready.env_space)}
        await server.fork(request("exits_5", environment=big), [])
    except ProcessError as exc:
        found["too_large"] = str(exc)
    found["alive_after_failures"] = server.alive
    server.child.kill_tree()
    await server.child.exited
    try:
        await server.fork(request("exits_5"), [])
    except ForkServerGone as exc:
        found["gone"] = str(exc)
    await server.stop()
    print(json.dumps(found))


asyncio.run(main())
"""

STALLED = r"""
import asyncio, json, os, signal, sys
from pathlib import Path

from fabrichost.agent._forkserver import ForkServer, ForkServerGone
from fabrichost.agent._orphans import adopt_orphans, reap_adopted, reaping_held
from fabrichost.agent._proctree import ChildProcess
from fabrichost.protocol import ForkRequest

folder = Path(sys.argv[1])
env = {"PATH": os.environ["PATH"]}
request = ForkRequest("exits_5", (), str(folder), env, (), "python3")


def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


async def until(predicate):
    async with asyncio.timeout(60):
        while not predicate():
            await asyncio.sleep(0.01)


async def main():
    adopt_orphans(asyncio.get_running_loop())
    found = {}
    server = await ForkServer.start(sys.executable, {}, folder)
    # A stopped server holds up the start that asked, not the event loop.
    os.kill(server.pid, signal.SIGSTOP)
    with reaping_held():
        fork = asyncio.ensure_future(server.fork(request, []))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0)
            ticks += 1
        found["pending_while_stopped"] = not fork.done()
        found["loop_ran"] = ticks
        os.kill(server.pid, signal.SIGCONT)
        pid = await fork
        # The host exits at once; a SIGCHLD's reaping inside the hold leaves its status alone.
        await until(lambda: state(pid) == "Z")
        reap_adopted()
        child = ChildProcess.adopt(pid, env=env)
    found["code_after_stall"] = await child.exited
    # A server that never answers is given up (killed) after the timeout; the loop runs on.
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with reaping_held():
            await server.fork(request, [], timeout=0.5)
    except ForkServerGone as exc:
        found["hung"] = str(exc)
    found["hung_server_killed"] = await server.child.exited
    await server.stop()
    print(json.dumps(found))


asyncio.run(main())
"""


UNANSWERED = r"""
import asyncio, json, os, socket, subprocess, sys
from pathlib import Path

import psutil

from fabrichost.agent._forkable import ForkPlan
from fabrichost.agent._forkserver import ForkServer, ForkServers
from fabrichost.agent._orphans import adopt_orphans
from fabrichost.agent._proctree import ChildProcess
from fabrichost.protocol import ForkServerReady

folder = Path(sys.argv[1])
env = {"PATH": os.environ["PATH"], "MARK": "incarnation-1"}
peers = []


async def start_mute_server(interpreter, startup_env, state_dir):
    # A server that takes the request, makes a host of that incarnation and never answers:
    # one that hung (or died) between its fork and its answer.
    agent_end, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    agent_end.setblocking(False)
    peers.append(peer)
    child = ChildProcess.spawn(["sleep", "600"], cwd="/", env=env)
    return ForkServer(child, agent_end, ForkServerReady(child.pid, 1 << 16, 1024), [])


async def main():
    adopt_orphans(asyncio.get_running_loop())
    forks = ForkServers(folder, start_server=start_mute_server, fork_timeout=0.5)
    plan = ForkPlan(sys.executable, "python3", "exits_5", (), False, ())
    await forks.prepare(plan)
    server = forks.server(plan)
    # The host it made: reparented to the agent, carrying the incarnation, never named.
    host = subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)
    proc = psutil.Process(host.pid)
    child = await forks.launch(
        plan, cwd=str(folder), env=env, pass_fds=(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, leftover_marker="MARK",
    )
    found = {"spawn_instead": child is None, "server": await server.child.exited}
    try:  # killed (and reaped by the agent's reaper, as an adopted orphan)
        async with asyncio.timeout(30):
            while proc.is_running():
                await asyncio.sleep(0.05)
        found["host_gone"] = True
    except TimeoutError:
        found["host_gone"] = False
    finally:
        if proc.is_running():
            proc.kill()
    await forks.close()
    print(json.dumps(found))


asyncio.run(main())
"""


def _run_script(script: str, folder: Path) -> dict[str, Any]:
    (folder / "exits_5.py").write_text("import sys\nsys.exit(5)\n")
    (folder / "raises.py").write_text("raise KeyError('no')\n")
    (folder / "killed.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.mark.timeout(120)
def test_exit_statuses_failed_starts_and_a_dead_server(tmp_path: Path) -> None:
    found = _run_script(SCRIPT, tmp_path)
    assert found["server_ppid"]
    # Exact exit statuses, from the kernel: the hosts are children of the subreaper.
    assert found["codes"] == {"exits_5": 5, "raises": 1, "killed": -15}
    assert found["concurrent"] == [5] * 8
    # A host that cannot become what was asked fails as a spawn fails, and the server lives.
    assert "missing" in found["missing_folder"]
    assert "does not fit" in found["too_large"]
    assert found["alive_after_failures"]
    assert "has exited" in found["gone"]


@pytest.mark.timeout(120)
def test_a_stopped_server_holds_up_its_request_not_the_event_loop(tmp_path: Path) -> None:
    found = _run_script(STALLED, tmp_path)
    assert found["pending_while_stopped"], found
    assert found["loop_ran"] == 20
    # Continued, it answers; the host's exit status is the kernel's, not the reaper's.
    assert found["code_after_stall"] == 5
    # One that never answers is given up: killed, so its hosts are spawned instead.
    assert "did not answer in 0.5 s" in found["hung"]
    assert found["hung_server_killed"] == -9


@pytest.mark.timeout(120)
def test_a_host_the_server_made_but_never_named_is_killed_before_the_spawn(
    tmp_path: Path,
) -> None:
    found = _run_script(UNANSWERED, tmp_path)
    assert found["spawn_instead"]
    assert found["server"] == -9  # given up: killed
    # It would hold the channel and the lock the spawned host gets.
    assert found["host_gone"]
