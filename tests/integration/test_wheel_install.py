"""A real install (issue 9): the wheel built from this checkout, installed into a fresh virtual
environment, plays ``fabrichost demo`` from a folder that is not the checkout.

An editable install reads ``manifests/`` and ``sample_services/`` in the checkout, so only a
built wheel shows whether they ship. The steps are what a user does: ``pip wheel`` (with build
isolation, so the build backend comes from the package index as it would for them), a new venv,
``pip install`` of the wheel, ``fabrichost demo`` from a temporary folder; then a sample
deployed the documented way, ``app deploy "$(fabrichost samples)/MyApp"``.

Timing (2 shared cores): ~12 s in all; build ~3 s, venv + install ~4 s (the dependencies come
from pip's cache after the first run), demo ~3 s, up + deploy + down ~2 s.

Strategy for the venv: ``--without-pip``, and this environment's pip (>= 22.3, which
``.ci/run`` upgrades to) drives it with ``--python``: that saves seeding pip into it (~3 s) and
installs nothing but the wheel and its dependencies. ``--system-site-packages`` would not help
(the base interpreter has none of them) and could find this checkout instead of the wheel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import psutil
import pytest

from tests.integration.conftest import REPO, agents_serving, marked_processes

pytestmark = pytest.mark.integration

#: Generous: a cold pip cache downloads the build backend and nine dependencies.
STEP_DEADLINE: Final = 180.0
#: Never what the checkout keeps beside the sources: a copied build/ or egg-info could hide a
#: file the build forgets.
NOT_SOURCES: Final = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".fabrichost-state",
    "bench",
)


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    """Run one step to completion within ``STEP_DEADLINE``; its output, or a failure with it."""
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_DEADLINE,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{output[-4000:]}"
    return output


def _stop_everything(fabrichost: Path, state: Path, env: dict[str, str]) -> None:
    """``down`` with the installed command, then kill whatever it missed: a failed or timed-out
    demo leaves its background agent and hosts running."""
    if fabrichost.exists() and state.exists():
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [str(fabrichost), "down", "--state-dir", str(state)],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
    for proc in [*agents_serving(state), *marked_processes(state)]:
        with contextlib.suppress(psutil.Error):
            proc.kill()


@pytest.mark.timeout(4 * STEP_DEADLINE)
def test_issue_9_the_installed_wheel_plays_the_demo_from_any_folder(tmp_path: Path) -> None:
    # pip builds in the source tree (build/, *.egg-info): build a copy, never the checkout.
    sources = tmp_path / "sources"
    shutil.copytree(REPO, sources, ignore=NOT_SOURCES)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    venv = tmp_path / "venv"
    fabrichost = venv / "bin" / "fabrichost"
    state = (tmp_path / "state").resolve()
    deployed = (tmp_path / "deployed").resolve()
    # Nothing of this checkout or of the test environment may leak into the installed one.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    pip = [sys.executable, "-m", "pip"]
    try:
        _run(
            [*pip, "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", sources], tmp_path, env
        )
        (wheel,) = (tmp_path / "dist").glob("fabrichost-*.whl")
        _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
        _run(
            [*pip, "--python", venv / "bin" / "python", "install", "--quiet", wheel], tmp_path, env
        )

        where = _run(
            [
                venv / "bin" / "python",
                "-c",
                "import fabrichost.scenario as s, sample_services as m;"
                "print(s.manifests_dir()); print(m.__file__)",
            ],
            elsewhere,
            env,
        )
        site = (venv / "lib").resolve()
        for line in where.splitlines():
            assert Path(line).resolve().is_relative_to(site), where  # the wheel's, not ours

        out = _run([fabrichost, "demo", "--state-dir", state], elsewhere, env)
        for step in range(1, 6):
            assert f"Step {step}:" in out, out
        assert "MyCodePackageB" in out, out
        assert marked_processes(state) == []
        assert agents_serving(state) == []

        # The documented way to deploy a sample from an install: `fabrichost samples`.
        folder = Path(_run([fabrichost, "samples"], elsewhere, env).strip())
        assert folder.resolve().is_relative_to(site), folder
        # The sample for `dev` carries its code and config, its launcher still executable.
        hello = folder / "HelloWeb" / "HelloPkg"
        assert (hello / "Code" / "hello.py").is_file()
        assert (hello / "Config" / "Settings.xml").is_file()
        assert os.access(hello / "Code" / "run.sh", os.X_OK)
        _run([fabrichost, "up", "--state-dir", deployed, "--port", "0"], elsewhere, env)
        _run(
            [
                fabrichost,
                "app",
                "deploy",
                folder / "MyApp",
                "--name",
                "fabric:/App1",
                "--state-dir",
                deployed,
            ],
            elsewhere,
            env,
        )
        _run([fabrichost, "down", "--state-dir", deployed], elsewhere, env)
        assert marked_processes(deployed) == []
        assert agents_serving(deployed) == []
    finally:
        _stop_everything(fabrichost, state, env)
        _stop_everything(fabrichost, deployed, env)
