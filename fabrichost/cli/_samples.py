"""`fabrichost samples`: where the sample application packages are, for `app deploy`."""

from __future__ import annotations

import click

from fabrichost.cli._group import cli
from fabrichost.scenario import manifests_dir


@cli.command()
def samples() -> None:
    """Print the folder of the sample application packages (MyApp, SpecialApp, SingletonJobs).

    An installed wheel carries them inside the package, a checkout in manifests/, so deploy one
    without knowing which: fabrichost app deploy "$(fabrichost samples)/MyApp" --name fabric:/App1
    """
    click.echo(str(manifests_dir()))
