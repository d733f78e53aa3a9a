"""`fabrichost manifest ...`: check manifests and application packages."""

from __future__ import annotations

import json

import click

from fabrichost.cli._group import EXIT_ERROR, ExitCode, cli
from fabrichost.manifest import check_path


@cli.group()
def manifest() -> None:
    """Check Service Fabric manifests and application packages."""


@manifest.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per path.")
def check(paths: tuple[str, ...], as_json: bool) -> None:
    """Check manifest FILEs on their own and package FOLDERs as a whole.

    A file is an ApplicationManifest, ServiceManifest, Settings or application parameter file
    (told apart by its root element). Exits 1 when anything is wrong.
    """
    results = [check_path(path) for path in paths]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for result in results:
            if result.ok:
                click.echo(f"ok: {result.path} ({result.summary})")
            for diagnostic in result.diagnostics:
                click.echo(str(diagnostic))
    if not all(r.ok for r in results):
        raise ExitCode(EXIT_ERROR)
