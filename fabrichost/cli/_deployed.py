"""`fabrichost deployed ...`, `code-package restart` and `logs`: what runs on a node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fabrichost.cli._group import cli
from fabrichost.cli._output import client_for, emit, field, json_option, state_dir_option

NODE_OPTION = click.option("--node", "node", default="_Node_0", show_default=True)
APP_OPTION = click.option(
    "--app", "app_name", required=True, help="Application name (fabric:/...)."
)


def _main_pid(cp: dict[str, Any]) -> str:
    return str(cp["MainEntryPoint"]["ProcessId"])


def _restarts(cp: dict[str, Any]) -> str:
    return str(cp["MainEntryPoint"]["CodePackageEntryPointStatistics"]["ExitCount"])


@cli.group()
def deployed() -> None:
    """What is deployed on a node: applications, service packages, code packages, replicas."""


@deployed.command("apps")
@NODE_OPTION
@state_dir_option
@json_option
def deployed_apps(node: str, state_dir: str | None, as_json: bool) -> None:
    """Applications with an activation on the node."""
    with client_for(state_dir) as client:
        emit(
            client.deployed_applications(node),
            as_json,
            [
                ("Name", field("Name")),
                ("Type", field("TypeName")),
                ("Status", field("Status")),
                ("Work", field("WorkDirectory")),
            ],
        )


@deployed.command("service-packages")
@NODE_OPTION
@APP_OPTION
@state_dir_option
@json_option
def deployed_service_packages(
    node: str, app_name: str, state_dir: str | None, as_json: bool
) -> None:
    """Service package activations of an application on the node."""
    with client_for(state_dir) as client:
        emit(
            client.deployed_service_packages(node, app_name),
            as_json,
            [
                ("Name", field("Name")),
                ("Version", field("Version")),
                ("Status", field("Status")),
                ("ActivationId", field("ServicePackageActivationId")),
            ],
        )


@deployed.command("code-packages")
@NODE_OPTION
@APP_OPTION
@state_dir_option
@json_option
def deployed_code_packages(node: str, app_name: str, state_dir: str | None, as_json: bool) -> None:
    """Code packages (processes) of an application on the node."""
    with client_for(state_dir) as client:
        emit(
            client.deployed_code_packages(node, app_name),
            as_json,
            [
                ("Name", field("Name")),
                ("ServicePackage", field("ServiceManifestName")),
                ("ActivationId", field("ServicePackageActivationId")),
                ("Pid", _main_pid),
                ("Status", lambda cp: cp["MainEntryPoint"]["Status"]),
                ("Exits", _restarts),
                ("Health", field("HealthState")),
            ],
        )


@deployed.command("replicas")
@NODE_OPTION
@APP_OPTION
@state_dir_option
@json_option
def deployed_replicas(node: str, app_name: str, state_dir: str | None, as_json: bool) -> None:
    """Replicas of an application on the node, with the process that hosts each."""
    with client_for(state_dir) as client:
        emit(
            client.deployed_replicas(node, app_name),
            as_json,
            [
                ("Service", field("ServiceName")),
                ("Partition", field("PartitionId")),
                ("Replica", lambda r: r.get("ReplicaId") or r.get("InstanceId")),
                ("Role", lambda r: r.get("ReplicaRole", "")),
                ("Status", field("ReplicaStatus")),
                ("CodePackage", field("CodePackageName")),
                ("Pid", field("HostProcessId")),
                ("ActivationId", field("ServicePackageActivationId")),
            ],
        )


@cli.group("code-package")
def code_package() -> None:
    """Act on deployed code packages."""


@code_package.command("restart")
@NODE_OPTION
@APP_OPTION
@click.option("--manifest", required=True, help="Service manifest (service package) name.")
@click.option("--code-package", "code_package_name", required=True)
@click.option("--activation-id", default="", help="ServicePackageActivationId (exclusive only).")
@state_dir_option
def code_package_restart(
    node: str,
    app_name: str,
    manifest: str,
    code_package_name: str,
    activation_id: str,
    state_dir: str | None,
) -> None:
    """Kill a code package's process; it restarts and its replicas come back."""
    with client_for(state_dir) as client:
        client.restart_code_package(node, app_name, manifest, code_package_name, activation_id)
    click.echo(f"restarted {code_package_name} of {manifest} on {node}")


@cli.command()
@NODE_OPTION
@APP_OPTION
@click.option("--code-package", "code_package_name", default=None, help="Only this code package.")
@click.option("--tail", type=int, default=50, show_default=True, help="Lines per file.")
@state_dir_option
def logs(
    node: str, app_name: str, code_package_name: str | None, tail: int, state_dir: str | None
) -> None:
    """Print the console output (stdout/stderr files in the log folder) of an application."""
    with client_for(state_dir) as client:
        apps = [a for a in client.deployed_applications(node) if a["Name"] == app_name]
    if not apps:
        raise click.ClickException(f"{app_name} has no activation on {node}")
    log_dir = Path(apps[0]["LogDirectory"])
    files = sorted(log_dir.glob("*.out")) + sorted(log_dir.glob("*.err"))
    if code_package_name is not None:
        files = [f for f in files if f.name.startswith(code_package_name + "_")]
    if not files:
        click.echo(f"no console output in {log_dir}")
    for path in sorted(files, key=lambda p: p.stat().st_mtime):
        lines = path.read_text(errors="replace").splitlines()[-tail:]
        click.echo(f"==> {path.name} <==")
        for line in lines:
            click.echo(line)
