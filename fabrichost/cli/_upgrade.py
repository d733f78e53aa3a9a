"""`fabrichost app upgrade`, `upgrade-status`, `upgrade-rollback`, `upgrade-resume`.

``app upgrade APP PACKAGE`` provisions the package's version and upgrades the application to
it, node by node, then waits and prints what each node restarted. A failed upgrade rolls back by
itself: the command then exits 1 with the cause (the end of the failing code package's stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fabrichost.cli._group import EXIT_ERROR, ExitCode
from fabrichost.cli._output import (
    client_for,
    emit,
    field,
    json_option,
    parse_params,
    state_dir_option,
)
from fabrichost.client import UPGRADE_MODES, UpgradeTimeouts
from fabrichost.manifest import load_application_manifest

DOMAIN_COLUMNS = [("Upgrade domain", field("Name")), ("State", field("State"))]


@click.command("upgrade")
@click.argument("name")
@click.argument("package", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="K=V",
    help="Application parameter; the application's other parameters are kept.",
)
@click.option(
    "--mode",
    type=click.Choice(UPGRADE_MODES),
    default="Monitored",
    show_default=True,
    help="Monitored: a health check after each node; UnmonitoredManual: wait for "
    "`app upgrade-resume` before each node after the first.",
)
@click.option(
    "--failure-action",
    type=click.Choice(["Rollback", "Manual"]),
    default="Rollback",
    show_default=True,
    help="What a failed health check does: roll back, or wait for the operator.",
)
@click.option("--force-restart", is_flag=True, help="Restart every process, even for config.")
@click.option(
    "--health-check-retry-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds a node may take to be healthy (default 60).",
)
@click.option(
    "--health-check-stable",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds a node must stay healthy (default 0).",
)
@click.option(
    "--upgrade-domain-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds one node may take in all (default: none).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the upgrade is over (or waits for `app upgrade-resume`).",
)
@click.option("--timeout", type=float, default=600.0, show_default=True)
@state_dir_option
@json_option
def app_upgrade(
    name: str,
    package: Path,
    params: tuple[str, ...],
    mode: str,
    failure_action: str,
    force_restart: bool,
    health_check_retry_timeout: float | None,
    health_check_stable: float | None,
    upgrade_domain_timeout: float | None,
    wait: bool,
    timeout: float,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Provision PACKAGE and upgrade application NAME to its version, node by node."""
    manifest = load_application_manifest(package / "ApplicationManifest.xml")
    with client_for(state_dir) as client:
        app = client.application(name)
        target = manifest.application_type_version
        if manifest.application_type_name != app["TypeName"]:
            # The upgrade names only a version, which the agent takes as one of the
            # application's own type: another type's package would upgrade it to that.
            raise click.UsageError(
                f"{manifest.file} is application type {manifest.application_type_name}; "
                f"{name} is of type {app['TypeName']}: an upgrade keeps the application's type"
            )
        if (manifest.application_type_name, target) == (app["TypeName"], app["TypeVersion"]):
            raise click.UsageError(
                f"{name} runs {app['TypeName']} {target} already: bump ApplicationTypeVersion "
                f"in {manifest.file} (and the versions of the packages that changed)"
            )
        parameters = {p["Key"]: p["Value"] for p in app.get("Parameters", [])}
        parameters.update(parse_params(params))
        client.upgrade_from_package(
            package,
            name,
            parameters,
            mode=mode,
            failure_action=failure_action,
            force_restart=force_restart,
            timeouts=UpgradeTimeouts(
                health_check_stable=health_check_stable,
                health_check_retry_timeout=health_check_retry_timeout,
                upgrade_domain_timeout=upgrade_domain_timeout,
            ),
        )
        if not wait:
            click.echo(f"upgrading {name} from {app['TypeVersion']} to {target}")
            return
        try:
            progress = client.wait_upgrade(name, timeout)
        except TimeoutError as exc:
            click.echo(f"Error: {exc}; `fabrichost app upgrade-status {name}` follows it", err=True)
            raise ExitCode(EXIT_ERROR) from None
    _report(progress, as_json)


def _report(progress: dict[str, Any], as_json: bool) -> None:
    """Print how an upgrade ended; exit 1 when it did not reach its target."""
    name = progress["Name"]
    state = progress["UpgradeState"]
    target = progress["TargetApplicationTypeVersion"]
    if as_json:
        emit(progress, True)
    else:
        for line in progress.get("Details", []):
            click.echo(f"  {line}")
        if state == "RollingForwardCompleted":
            click.echo(f"upgraded {name} to {target}")
        elif state == "RollingForwardPending":
            click.echo(
                f"upgrade of {name} to {target} waits to go on to "
                f"{progress.get('NextUpgradeDomain') or 'the next node'}: "
                f"`fabrichost app upgrade-resume {name}` or `app upgrade-rollback {name}`"
            )
    failed = progress.get("FailureReason", "None") != "None"
    if state != "RollingForwardCompleted" and (state != "RollingForwardPending" or failed):
        current = progress.get("CurrentApplicationTypeVersion", "?")
        cause = progress.get("UpgradeStatusDetails") or state
        click.echo(
            f"Error: the upgrade of {name} to {target} failed "
            f"({progress.get('FailureReason', 'None')}); {state}, {current} is in force:\n"
            f"  {cause}",
            err=True,
        )
        raise ExitCode(EXIT_ERROR)


@click.command("upgrade-status")
@click.argument("name")
@state_dir_option
@json_option
def app_upgrade_status(name: str, state_dir: str | None, as_json: bool) -> None:
    """Show the progress of application NAME's latest upgrade."""
    with client_for(state_dir) as client:
        progress = client.get_upgrade_progress(name)
    if as_json:
        emit(progress, True)
        return
    click.echo(f"{progress['Name']}: {progress['UpgradeState']}")
    click.echo(
        f"  version in force {progress.get('CurrentApplicationTypeVersion', '?')}, "
        f"target {progress['TargetApplicationTypeVersion']} "
        f"({progress['RollingUpgradeMode']})"
    )
    if progress.get("NextUpgradeDomain"):
        click.echo(f"  waits to start {progress['NextUpgradeDomain']}")
    if progress.get("FailureReason", "None") != "None":
        click.echo(f"  failed: {progress['FailureReason']}: {progress['UpgradeStatusDetails']}")
    emit(progress["UpgradeDomains"], False, DOMAIN_COLUMNS)
    for line in progress.get("Details", []):
        click.echo(f"  {line}")


@click.command("upgrade-rollback")
@click.argument("name")
@state_dir_option
def app_upgrade_rollback(name: str, state_dir: str | None) -> None:
    """Roll application NAME's upgrade back to the version it started from."""
    with client_for(state_dir) as client:
        client.rollback_upgrade(name)
    click.echo(f"rolling back the upgrade of {name}")


@click.command("upgrade-resume")
@click.argument("name")
@click.option("--domain", default=None, help="The upgrade domain (node) it waits to start.")
@state_dir_option
def app_upgrade_resume(name: str, domain: str | None, state_dir: str | None) -> None:
    """Let application NAME's pending upgrade go on to its next node."""
    with client_for(state_dir) as client:
        client.move_to_next_upgrade_domain(name, domain)
    click.echo(f"the upgrade of {name} goes on")


UPGRADE_COMMANDS = (app_upgrade, app_upgrade_status, app_upgrade_rollback, app_upgrade_resume)
