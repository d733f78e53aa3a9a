"""A fork server under a subreaper, without an agent: what a fork request gives back.

The checks run in a child interpreter (``SCRIPT``) that adopts orphans as the agent does: the
test process itself must not become a subreaper. It prints one JSON object, checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = r"""
import asyncio, json, os, sys
import psutil
from pathlib import Path

from fabrichost.agent._forkserver import ForkServer, ForkServerGone
from fabrichost.agent._orphans import adopt_orphans
from fabrichost.agent._proctree import ChildProcess
from fabrichost.errors import ProcessError
from fabrichost.protocol import ForkRequest

folder = Path(sys.argv[1])


async def main():
    adopt_orphans(asyncio.get_running_loop())
    server = await ForkServer.start(sys.executable, {}, folder)
    env = {"PATH": os.environ["PATH"]}
    found = {"server_ppid": psutil.Process(server.pid).ppid() == os.getpid()}

    def request(module, cwd=str(folder), environment=env):
        return ForkRequest(module, ("x",), cwd, environment, (), "python3")

    codes = {}
    for module in ("exits_5", "raises", "killed"):
        pid = server.fork(request(module), [])
        codes[module] = await ChildProcess.adopt(pid, env=env).exited
    found["codes"] = codes
    try:
        server.fork(request("exits_5", cwd=str(folder / "missing")), [])
    except ProcessError as exc:
        found["missing_folder"] = str(exc)
    try:
        server.fork(request("exits_5", environment={"BIG": "x" * (server.ready.env_space)}), [])
    except ProcessError as exc:
        found["too_large"] = str(exc)
    found["alive_after_failures"] = server.alive
    server.child.kill_tree()
    await server.child.exited
    try:
        server.fork(request("exits_5"), [])
    except ForkServerGone as exc:
        found["gone"] = str(exc)
    await server.stop()
    print(json.dumps(found))


asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_exit_statuses_failed_starts_and_a_dead_server(tmp_path: Path) -> None:
    (tmp_path / "exits_5.py").write_text("import sys\nsys.exit(5)\n")
    (tmp_path / "raises.py").write_text("raise KeyError('no')\n")
    (tmp_path / "killed.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["server_ppid"]
    # Exact exit statuses, from the kernel: the hosts are children of the subreaper.
    assert found["codes"] == {"exits_5": 5, "raises": 1, "killed": -15}
    # A host that cannot become what was asked fails as a spawn fails, and the server lives.
    assert "missing" in found["missing_folder"]
    assert "does not fit" in found["too_large"]
    assert found["alive_after_failures"]
    assert "has exited" in found["gone"]
