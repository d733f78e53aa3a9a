"""Build hook: ship the sample application packages inside the wheel.

The project's metadata lives in pyproject.toml; this file only adds one step to ``build_py``.
The samples stay at the top of the repository (``manifests/``), where the docs and the tests
name them, and a built wheel carries a copy as ``fabrichost/_samples/`` so that
``fabrichost demo`` finds them after a plain ``pip install .`` (``fabrichost.scenario``
looks there first, then in the checkout, which is what an editable install uses).

Strategy: a copy at build time instead of ``package-dir`` mapping ``manifests/`` to a
``fabrichost._samples`` package, because that mapping needs every package listed by hand and
behaves differently under editable installs; and not ``data-files``, which land outside the
package where ``importlib.resources`` cannot find them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SAMPLES = Path(__file__).resolve().parent / "manifests"


class BuildPyWithSamples(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads manifests/ in the checkout itself
        if not (SAMPLES / "MyApp" / "ApplicationManifest.xml").is_file():
            # An sdist without MANIFEST.in's graft would build a wheel without samples.
            raise FileNotFoundError(f"the sample packages are missing from {SAMPLES}")
        target = Path(self.build_lib) / "fabrichost" / "_samples"
        shutil.rmtree(target, ignore_errors=True)  # a reused build/ keeps no stale samples
        # copytree copies modes too: the launchers stay executable in the wheel.
        shutil.copytree(SAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithSamples})
