"""The ``fabrichost`` command line.

Tests call :func:`main` directly with an argument list and get the exit code back; the console
script calls :func:`run`, which exits with it. Subcommand modules attach themselves to the click
group in ``_group.py``; importing them here is what registers them.
"""

from __future__ import annotations

from fabrichost.cli import _manifest as _manifest  # noqa: F401  (registers `manifest`)
from fabrichost.cli._group import main as main
from fabrichost.cli._group import run as run

__all__ = ("main", "run")
