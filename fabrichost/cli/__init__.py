"""The ``fabrichost`` command line.

Tests call :func:`main` directly with an argument list and get the exit code back; the console
script calls :func:`run`, which exits with it. Subcommand modules attach themselves to the click
group in ``_group.py`` when imported, which the group does on a command's first use
(``COMMAND_MODULES``).
"""

from __future__ import annotations

from fabrichost.cli._group import main as main
from fabrichost.cli._group import run as run

__all__ = ("main", "run")
