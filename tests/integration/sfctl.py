"""sfctl 11.2.1, Microsoft's CLI, installed for the tests in a virtual environment of its own.

Its pins clash with the project's, so it lives in its own venv, cached between runs under
``~/.cache/fabrichost-tests`` (or ``$XDG_CACHE_HOME``) and built under an ``flock``, so two
xdist workers never race. :func:`venv_bin` skips the calling test, saying why, when it cannot be
installed. The venv also holds the ``azure-servicefabric`` client sfctl uses, whose models the
tests check the agent's JSON with.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

SFCTL_VERSION: Final = "11.2.1"
#: A whole pip install on a loaded machine; the cache makes every later run instant.
INSTALL_TIMEOUT: Final = 600
COMMAND_TIMEOUT: Final = 120


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fabrichost-tests"


def _install(venv: Path) -> str | None:
    """Install sfctl into a fresh ``venv``; None on success, else why it failed."""
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"sfctl=={SFCTL_VERSION}"],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(step)}: {exc}"
        if done.returncode != 0:
            return f"{' '.join(step)} exited {done.returncode}: {done.stderr.strip()[-800:]}"
    return None


def venv_bin() -> Path:
    """The ``bin`` folder of the cached sfctl virtual environment (installed on first use)."""
    root = _cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        pytest.skip(f"no cache folder for sfctl {SFCTL_VERSION}: {exc}")
    venv = root / f"sfctl-{SFCTL_VERSION}"
    done_marker = venv / ".installed"
    with open(root / f"sfctl-{SFCTL_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker installing: wait for it
        if not done_marker.exists():
            failure = _install(venv)
            if failure is not None:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.skip(f"sfctl {SFCTL_VERSION} cannot be installed: {failure}")
            done_marker.write_text(SFCTL_VERSION)
    return venv / "bin"


class Sfctl:
    """Runs sfctl with a HOME of its own; every command must exit 0."""

    def __init__(self, executable: Path, home: Path) -> None:
        self.executable = executable
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            # sfctl sends telemetry unless told not to; a test talks to the agent only.
            "SFCTL_SERVICEFABRIC_USE_TELEMETRY": "false",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.executable), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, (
            f"sfctl {' '.join(args)} exited {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
        return done

    def json(self, *args: str) -> Any:
        out = self.run(*args).stdout
        return json.loads(out) if out.strip() else None
