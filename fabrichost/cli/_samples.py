"""`fabrichost samples`: where the sample application packages are, for `app deploy` and
`dev`."""

from __future__ import annotations

import click

from fabrichost.cli._group import cli
from fabrichost.scenario import manifests_dir


@cli.command()
def samples() -> None:
    """Print the folder of the sample application packages (HelloWeb, MyApp, SpecialApp,
    SingletonJobs).

    An installed wheel carries them inside the package, a checkout in manifests/, so deploy one
    without knowing which: fabrichost app deploy "$(fabrichost samples)/MyApp" --name fabric:/App1.
    HelloWeb's code and config live in its package: copy it to try `dev` on it:
    cp -r "$(fabrichost samples)/HelloWeb" ./hello && fabrichost dev ./hello
    """
    click.echo(str(manifests_dir()))
