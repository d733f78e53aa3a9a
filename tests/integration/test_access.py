"""Who may talk to the agent: its own user (and root), users allowed on purpose, token holders.

The agent of these tests runs as the test's user; the other user is ``nobody``, switched to with
``runuser`` (only root can), so these tests run where the suite runs as root (CI) and are
skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
from typing import TYPE_CHECKING

import pytest

from fabrichost.cli import main as cli_main
from fabrichost.daemon import start_agent, stop_background
from fabrichost.wire import AGENT_FILE, TOKEN_FILE, read_token
from tests.integration.conftest import agents_serving, marked_processes

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

OTHER_USER = "nobody"


def _other_uid() -> int:
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    if shutil.which("runuser") is None:
        pytest.skip("runuser is not installed")
    try:
        return pwd.getpwnam(OTHER_USER).pw_uid
    except KeyError:
        pytest.skip(f"there is no user {OTHER_USER!r}")


# Run by the other user: one HTTP request, printing the status and the body as JSON. The system
# Python, with the standard library only: the other user may not read the test's environment.
_REQUEST = """
import json, sys, urllib.error, urllib.request
method, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Authorization": "Bearer " + token} if token else {}
body = b"{}" if method == "POST" else None
request = urllib.request.Request(url, method=method, headers=headers, data=body)
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print(json.dumps([answer.status, answer.read().decode()]))
except urllib.error.HTTPError as exc:
    print(json.dumps([exc.code, exc.read().decode()]))
"""


def _as_other_user(method: str, url: str, token: str = "") -> tuple[int, str]:
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    done = subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", python, "-c", _REQUEST, method, url, token],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=True,
    )
    status, body = json.loads(done.stdout)
    return status, body


def test_another_local_user_is_refused_and_changes_nothing(cluster: Cluster) -> None:
    _other_uid()
    endpoint = cluster.client.endpoint
    status, body = _as_other_user("POST", endpoint + "/Nodes/_Node_0/$/Stop")
    assert status == 403, body
    error = json.loads(body)["Error"]
    assert error["Code"] == "FABRIC_E_ACCESS_DENIED"
    assert "nobody" in error["Message"], error
    assert "--allow-user" in error["Message"], error
    assert [n["NodeStatus"] for n in cluster.client.nodes()] == ["Up"]
    # Nothing is served to that user, not even a read, nor a provision of their own package.
    assert _as_other_user("GET", endpoint + "/Nodes")[0] == 403
    assert _as_other_user("POST", endpoint + "/ApplicationTypes/$/Provision")[0] == 403
    assert cluster.client.application_types() == []


def test_the_agents_token_lets_another_user_in(cluster: Cluster) -> None:
    _other_uid()
    token = read_token(cluster.state_dir)
    assert token
    status, body = _as_other_user("GET", cluster.client.endpoint + "/Nodes", token)
    assert status == 200, body
    status, body = _as_other_user("GET", cluster.client.endpoint + "/Nodes", token + "x")
    assert status == 403, body
    assert "not this agent's token" in body


def test_the_state_directory_is_readable_by_its_user_only(cluster: Cluster) -> None:
    assert stat.S_IMODE(cluster.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((cluster.state_dir / TOKEN_FILE).stat().st_mode) == 0o600
    if os.geteuid() == 0 and shutil.which("runuser") and _has_other_user():
        done = subprocess.run(
            ["runuser", "-u", OTHER_USER, "--", "cat", str(cluster.state_dir / AGENT_FILE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0
        assert "Permission denied" in done.stderr


def test_an_allowed_user_is_served(tmp_path: Path) -> None:
    uid = _other_uid()
    state_dir = (tmp_path / "state").resolve()
    state_dir.mkdir(mode=0o755)  # an existing, open directory is made private on start
    try:
        record = start_agent(state_dir, nodes=1, port=0, allow_users=[uid]).record
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        status, body = _as_other_user("GET", record.Endpoint + "/Nodes")
        assert status == 200, body
        assert json.loads(body)["Items"][0]["Name"] == "_Node_0"
    finally:
        stop_background(state_dir)
        left = marked_processes(state_dir) + agents_serving(state_dir)
        for proc in left:
            proc.kill()
        assert not left


def test_an_unknown_user_to_allow_is_a_usage_error(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    code = cli_main(["up", "--state-dir", str(state_dir), "--allow-user", "no-such-user-42"])
    assert code == 2
    assert not (state_dir / AGENT_FILE).exists()


def _has_other_user() -> bool:
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        return False
    return True


def test_a_state_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    # Its owner could read the agent's token and logs, or rewrite agent.json.
    uid = _other_uid()
    state_dir = (tmp_path / "theirs").resolve()
    state_dir.mkdir(mode=0o777)
    os.chown(state_dir, uid, -1)
    code = cli_main(["up", "--state-dir", str(state_dir), "--port", "0"])
    assert code == 1
    assert not (state_dir / TOKEN_FILE).exists()
    assert not (state_dir / AGENT_FILE).exists()
    assert agents_serving(state_dir) == []
