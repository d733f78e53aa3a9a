"""`fabrichost samples` prints the folder `app deploy` takes the sample packages from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fabrichost.cli import main

if TYPE_CHECKING:
    import pytest


def test_samples_prints_the_folder_holding_the_sample_packages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["samples"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    for package in ("MyApp", "SpecialApp", "SingletonJobs"):
        assert (folder / package / "ApplicationManifest.xml").is_file()
