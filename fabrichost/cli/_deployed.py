"""`fabrichost deployed ...` and `code-package restart`: what runs on a node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from fabrichost.cli._group import cli
from fabrichost.cli._output import (
    address_field,
    client_for,
    emit,
    field,
    json_option,
    state_dir_option,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fabrichost.client import FabricClient

NODE_OPTION = click.option("--node", "node", default="_Node_0", show_default=True)
APP_OPTION = click.option(
    "--app", "app_name", required=True, help="Application name (fabric:/...)."
)
APP_FILTER_OPTION = click.option(
    "--app",
    "app_name",
    default=None,
    help="Application name (fabric:/...); default: every application deployed on the node.",
)
APP_COLUMN = ("Application", field("ApplicationName"))


def _across_apps(
    client: FabricClient,
    node: str,
    app_name: str | None,
    query: Callable[[str, str], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """``query(node, app)`` for one application, or for each deployed on the node; items of
    several applications carry their ``ApplicationName``."""
    if app_name is not None:
        return query(node, app_name)
    items = []
    for deployed_app in client.deployed_applications(node):
        name = deployed_app["Name"]
        items += [{"ApplicationName": name, **item} for item in query(node, name)]
    return items


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
@APP_FILTER_OPTION
@state_dir_option
@json_option
def deployed_service_packages(
    node: str, app_name: str | None, state_dir: str | None, as_json: bool
) -> None:
    """Service package activations on the node (of one application with --app)."""
    with client_for(state_dir) as client:
        items = _across_apps(client, node, app_name, client.deployed_service_packages)
        emit(
            items,
            as_json,
            [
                *([APP_COLUMN] if app_name is None else []),
                ("Name", field("Name")),
                ("Version", field("Version")),
                ("Status", field("Status")),
                ("ActivationId", field("ServicePackageActivationId")),
            ],
        )


@deployed.command("code-packages")
@NODE_OPTION
@APP_FILTER_OPTION
@state_dir_option
@json_option
def deployed_code_packages(
    node: str, app_name: str | None, state_dir: str | None, as_json: bool
) -> None:
    """Code packages (processes) on the node (of one application with --app)."""
    with client_for(state_dir) as client:
        items = _across_apps(client, node, app_name, client.deployed_code_packages)
        emit(
            items,
            as_json,
            [
                *([APP_COLUMN] if app_name is None else []),
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
@APP_FILTER_OPTION
@state_dir_option
@json_option
def deployed_replicas(
    node: str, app_name: str | None, state_dir: str | None, as_json: bool
) -> None:
    """Replicas on the node (of one application with --app), with the process hosting each."""
    with client_for(state_dir) as client:
        emit(
            _across_apps(client, node, app_name, client.deployed_replicas),
            as_json,
            [
                ("Service", field("ServiceName")),
                ("Partition", field("PartitionId")),
                ("Replica", lambda r: r.get("ReplicaId") or r.get("InstanceId")),
                ("Role", lambda r: r.get("ReplicaRole", "")),
                ("Status", field("ReplicaStatus")),
                ("CodePackage", field("CodePackageName")),
                ("Pid", field("HostProcessId")),
                ("Address", address_field()),
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
