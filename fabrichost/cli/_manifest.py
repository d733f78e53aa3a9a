"""`fabrichost manifest ...`: check manifests and application packages."""

from __future__ import annotations

import click

from fabrichost.cli._group import cli


@cli.group()
def manifest() -> None:
    """Check Service Fabric manifests and application packages."""
