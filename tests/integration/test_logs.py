"""`fabrichost logs`: every node by default, each line labelled, --json, --since, --follow."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from tests.integration.conftest import Cluster, fh, write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

# A guest that says where it runs, then one numbered line every 0.2 s.
TICKING = """import os, sys, time
node = os.environ["Fabric_NodeName"]
print(f"started on {node}", flush=True)
print(f"warming up on {node}", file=sys.stderr, flush=True)
n = 0
while True:
    n += 1
    print(f"tick {n} on {node}", flush=True)
    time.sleep(0.2)
"""
NODES = ("_Node_0", "_Node_1", "_Node_2")


def _deploy_everywhere(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """fabric:/Tick with one guest instance on every node."""
    package = write_guest_package(tmp_path / "Tick", script=TICKING)
    code, _, err = fh(cluster, capsys, "app", "deploy", str(package), "--name", "fabric:/Tick")
    assert code == 0, err
    create = ["service", "create", "fabric:/Tick/Web", "--type", "GuestType", "--stateless"]
    code, _, err = fh(cluster, capsys, *create, "--instances", "-1", "--wait")
    assert code == 0, err


def _logs_until(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], wanted: list[str], *argv: str
) -> str:
    """Run `logs` until its output holds every ``wanted`` string (the agent writes the console
    files as the guests print)."""
    deadline = time.monotonic() + 30
    while True:
        code, out, err = fh(cluster, capsys, "logs", *argv)
        assert code == 0, err
        if all(w in out for w in wanted):
            return out
        assert time.monotonic() < deadline, f"missing {wanted} in:\n{out}\n{err}"
        time.sleep(0.1)


def test_logs_shows_every_node_with_each_line_labelled(
    cluster3: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _deploy_everywhere(cluster3, capsys, tmp_path)

    wanted = [f"{n} fabric:/Tick GuestPkg/Code | started on {n}" for n in NODES]
    out = _logs_until(cluster3, capsys, wanted)
    assert "_Node_1 fabric:/Tick GuestPkg/Code | warming up on _Node_1" in out  # stderr too
    for line in out.splitlines():
        assert line.startswith(NODES), line  # no headers, nothing unlabelled

    # One node, one code package, and only the last line of each file.
    out = _logs_until(
        cluster3, capsys, ["_Node_2"], "--node", "_Node_2", "--code-package", "Code", "--tail", "1"
    )
    assert {line.split(" ", 1)[0] for line in out.splitlines()} == {"_Node_2"}
    assert len(out.splitlines()) == 2  # .out and .err


def test_logs_json_lines_say_where_each_line_came_from(
    cluster3: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _deploy_everywhere(cluster3, capsys, tmp_path)
    out = _logs_until(cluster3, capsys, ["started on _Node_2"], "--json", "--app", "fabric:/Tick")

    records = [json.loads(line) for line in out.splitlines()]
    started = [r for r in records if r["Line"].startswith("started on")]
    assert {r["Node"] for r in started} == set(NODES)
    first = started[0]
    assert first["Application"] == "fabric:/Tick"
    assert first["CodePackage"] == "GuestPkg/Code"
    assert first["EntryPoint"] == "Main"
    assert first["Stream"] == "out"
    assert first["File"].endswith(".out")
    assert first["Line"] == f"started on {first['Node']}"


def test_logs_since_leaves_out_files_written_before(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _deploy_everywhere(cluster, capsys, tmp_path)
    _logs_until(cluster, capsys, ["warming up"])

    # The .err file was written once, at start; the .out file is written every 0.2 s.
    out = _logs_until(cluster, capsys, ["tick"], "--since", "1m")
    assert "warming up" in out
    code, out, err = fh(cluster, capsys, "logs", "--since", "2999-01-01T00:00:00")
    assert code == 0
    assert out == ""
    assert "no console output" in err

    code, _, err = fh(cluster, capsys, "logs", "--since", "yesterday")
    assert code == 2
    assert "neither a duration (30s, 5m, 2h, 1d) nor an ISO 8601 time" in err


def test_logs_refuses_names_that_exist_nowhere(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = fh(cluster, capsys, "logs", "--node", "_Node_9")
    assert code == 1
    assert "no node _Node_9; nodes: _Node_0" in err

    _deploy_everywhere(cluster, capsys, tmp_path)
    code, _, err = fh(cluster, capsys, "logs", "--app", "fabric:/Tick", "--code-package", "Cod")
    assert code == 1
    assert "fabric:/Tick has no code package 'Cod'; its code packages: Code" in err


def _read_until(proc: subprocess.Popen[bytes], wanted: list[str], seen: list[str]) -> None:
    """Read proc's stdout until every ``wanted`` string has appeared (generous deadline)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + 60
    while not all(w in "".join(seen) for w in wanted):
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"{wanted} not all seen in time; output:\n{''.join(seen)}")
        seen.append(chunk.decode(errors="replace"))


def test_logs_follow_shows_lines_of_every_node_as_they_are_written(
    cluster3: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _deploy_everywhere(cluster3, capsys, tmp_path)
    _logs_until(cluster3, capsys, [f"started on {n}" for n in NODES])

    # --tail 0: nothing already written is shown, so every line seen was followed.
    argv = ["logs", "--follow", "--tail", "0", "--state-dir", str(cluster3.state_dir)]
    with subprocess.Popen(
        [sys.executable, "-m", "fabrichost", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            seen: list[str] = []
            wanted = [f"{n} fabric:/Tick GuestPkg/Code | tick" for n in NODES]
            _read_until(proc, wanted, seen)
            lines = "".join(seen).splitlines()
            assert not any("started on" in line for line in lines)  # the tail was left out
            # A guest restarted while following: its new file is followed from its start.
            cluster3.client.restart_code_package("_Node_1", "fabric:/Tick", "GuestPkg", "Code")
            _read_until(proc, ["_Node_1 fabric:/Tick GuestPkg/Code | started on _Node_1"], seen)

            proc.send_signal(signal.SIGINT)  # Ctrl-C: stops quietly
            assert proc.wait(timeout=30) == 0
            assert proc.stderr is not None
            assert "Traceback" not in proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
