"""The ``fabrichost`` command line.

Tests call :func:`main` directly with an argument list and get the exit code back; the console
script calls :func:`run`, which exits with it. Subcommand modules attach themselves to the click
group in ``_group.py``; importing them here is what registers them.
"""

from __future__ import annotations

# Importing the command modules registers their commands on the group.
from fabrichost.cli import _apps as _apps
from fabrichost.cli import _cluster as _cluster
from fabrichost.cli import _demo as _demo
from fabrichost.cli import _deployed as _deployed
from fabrichost.cli import _instances as _instances
from fabrichost.cli import _logs as _logs
from fabrichost.cli import _manifest as _manifest
from fabrichost.cli import _run as _run
from fabrichost.cli import _samples as _samples
from fabrichost.cli._group import main as main
from fabrichost.cli._group import run as run

__all__ = ("main", "run")
