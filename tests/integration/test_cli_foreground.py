"""`fabrichost run` (Ctrl-C cleans up), `fabrichost demo` and `fabrichost logs`, end to end."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from fabrichost.cli import main
from tests.integration.conftest import (
    marked_processes,
    runtime_host_script,
    write_guest_package,
    write_runtime_package,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

CHATTY = "import signal, sys\nprint('hello from the guest', flush=True)\nsignal.pause()\n"


def _read_until(
    proc: subprocess.Popen[bytes], marker: str, timeout: float, seen: list[str]
) -> None:
    """Read proc's stdout until ``marker`` appears (with a deadline).

    Raw ``os.read`` on the pipe: ``select`` and a buffered reader disagree about what is ready.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while marker not in "".join(seen):
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"{marker!r} not seen in time; output:\n{''.join(seen)}")
        seen.append(chunk.decode(errors="replace"))


def test_ctrl_c_on_run_stops_everything(tmp_path: Path) -> None:
    package = write_guest_package(tmp_path / "Chatty", script=CHATTY, default_service=True)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabrichost", "run", str(package), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen: list[str] = []
        _read_until(proc, "Ctrl-C stops everything", 30, seen)
        _read_until(proc, "hello from the guest", 30, seen)  # console output is followed
        assert len(marked_processes(state.resolve())) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert marked_processes(state.resolve()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for leftover in marked_processes(state.resolve()):
            leftover.kill()


def _runtime_package_with_a_default_service(root: Path) -> Path:
    package = write_runtime_package(root, {"Code": ("RtType", runtime_host_script("RtType"))})
    manifest = package / "ApplicationManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            "</ApplicationManifest>",
            '<DefaultServices><Service Name="S"><StatefulService ServiceTypeName="RtType" '
            'TargetReplicaSetSize="1" MinReplicaSetSize="1"><SingletonPartition />'
            "</StatefulService></Service></DefaultServices></ApplicationManifest>",
        )
    )
    return package


def test_ctrl_c_on_run_closes_a_runtime_host_without_a_fault_warning(tmp_path: Path) -> None:
    package = _runtime_package_with_a_default_service(tmp_path / "Rt")
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabrichost", "run", str(package), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen: list[str] = []
        # `run` says this once the default service's replica is open in the host.
        _read_until(proc, "Ctrl-C stops everything", 30, seen)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout is not None
        output = "".join(seen) + proc.stdout.read().decode(errors="replace")
        assert "received SIGINT" in output  # the host was told, and closed its channel
        assert "faulting host" not in output, output
        assert marked_processes(state.resolve()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for leftover in marked_processes(state.resolve()):
            leftover.kill()


def test_demo_plays_the_reference_scenario_and_cleans_up(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "demo"
    assert main(["demo", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    for step in range(1, 6):
        assert f"Step {step}:" in out
    assert 'MyServicePackage  activation ""' in out
    assert "MyCodePackageA" in out
    assert "MyCodePackageB" in out
    assert marked_processes(state.resolve()) == []


def test_logs_shows_a_code_packages_console_output(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_guest_package(tmp_path / "Chatty", script=CHATTY, default_service=True)
    assert (
        main(
            [
                "app",
                "deploy",
                str(package),
                "--name",
                "fabric:/Chatty",
                "--state-dir",
                str(cluster.state_dir),
            ]
        )
        == 0
    )
    args = ["logs", "--app", "fabric:/Chatty", "--state-dir", str(cluster.state_dir)]
    deadline = time.monotonic() + 15
    out = ""
    while "hello from the guest" not in out:  # the agent drains the pipe asynchronously
        assert time.monotonic() < deadline, out
        capsys.readouterr()
        assert main(args) == 0
        out = capsys.readouterr().out
    assert "_Node_0 fabric:/Chatty GuestPkg/Code | hello from the guest" in out
