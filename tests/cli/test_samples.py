"""`fabrichost samples` prints the folder `app deploy` and `dev` take the sample packages from;
every sample there checks and its launchers can run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fabrichost.cli import main
from fabrichost.scenario import manifests_dir

SAMPLES = ("HelloWeb", "MyApp", "SpecialApp", "SingletonJobs")


def test_samples_prints_the_folder_holding_the_sample_packages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["samples"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(SAMPLES)
    for package in SAMPLES:
        assert (folder / package / "ApplicationManifest.xml").is_file()


@pytest.mark.parametrize("package", SAMPLES)
def test_every_sample_checks(package: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "check", str(manifests_dir() / package)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


@pytest.mark.parametrize("package", SAMPLES)
def test_every_sample_launcher_is_an_executable_shell_script(package: str) -> None:
    launchers = list((manifests_dir() / package).rglob("*.sh"))
    assert launchers
    for launcher in launchers:
        assert os.access(launcher, os.X_OK), launcher
        assert launcher.read_bytes().startswith(b"#!/bin/sh\n"), launcher


def test_the_hello_web_sample_carries_its_own_code() -> None:
    # What `dev` can restart with a user's edit: code inside the package, not an installed module.
    code = manifests_dir() / "HelloWeb" / "HelloPkg" / "Code"
    assert "exec python3 hello.py" in (code / "run.sh").read_text()
    assert "run_host(" in (code / "hello.py").read_text()
