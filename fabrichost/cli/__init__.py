"""The ``fabrichost`` command line.

Tests call :func:`main` directly with an argument list and get the exit code back; the console
script calls :func:`run`, which exits with it. Subcommand modules attach themselves to the click
group in ``_group.py`` when imported, which the group does on a command's first use
(``COMMAND_MODULES``). Importing this package imports neither click nor the group: ``run``
answers ``--version`` without them (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import sys as _sys
import typing as _typing

if _typing.TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("main", "run")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    from fabrichost.cli._group import main as group_main

    return group_main(argv)


def run() -> None:
    """Console-script entry point."""
    if _sys.argv[1:] == ["--version"]:
        # What click's version option prints, without importing click and the command group.
        from fabrichost import __version__

        _sys.stdout.write(f"fabrichost, version {__version__}\n")
        _sys.exit(0)
    _sys.exit(main())
