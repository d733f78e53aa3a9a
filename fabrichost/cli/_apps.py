"""`fabrichost app ...` and `fabrichost service ...`: application types, applications, services."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fabrichost.cli._group import cli
from fabrichost.cli._output import (
    address_field,
    client_for,
    emit,
    field,
    json_option,
    parse_params,
    state_dir_option,
)
from fabrichost.cli._upgrade import UPGRADE_COMMANDS
from fabrichost.manifest import (
    load_application_manifest,
    load_application_parameters,
    parse_parameters_file,
    resolve_parameters,
)
from fabrichost.wire import (
    DOT_SEGMENT_RULE,
    ActivationMode,
    PartitionScheme,
    ServiceDescription,
    ServiceKind,
    dot_segment,
    endpoints_of,
)

if TYPE_CHECKING:
    from fabrichost.client import Created, Deployed, FabricClient

APP_COLUMNS = [
    ("Name", field("Name")),
    ("Type", field("TypeName")),
    ("Version", field("TypeVersion")),
    ("Status", field("Status")),
]
SERVICE_COLUMNS = [
    ("Name", field("Name")),
    ("Kind", field("ServiceKind")),
    ("Type", field("TypeName")),
    ("Mode", field("ServicePackageActivationMode")),
    ("Health", field("HealthState")),
]


IF_EXISTS_OPTION = click.option(
    "--if-exists",
    type=click.Choice(["fail", "use-existing", "replace"]),
    default="fail",
    show_default=True,
    help="If the name is taken: fail (exit 3), use the existing one, or replace it "
    "(the old one is gone before the new one starts).",
)
REQUEST_ID_OPTION = click.option(
    "--request-id",
    default=None,
    help="Idempotency key: a retried create with the same id returns the same result.",
)


def _check_dot_segments(name: str, param_hint: str) -> None:
    """Refuse a name with a ``.`` or ``..`` segment before anything is sent: in a URL its id
    would be resolved to another path, and the agent refuses such names anyway."""
    dot = dot_segment(name)
    if dot is not None:
        raise click.BadParameter(
            f"{name!r} has the segment {dot!r}: {DOT_SEGMENT_RULE}", param_hint=param_hint
        )


@cli.group()
def app() -> None:
    """Deploy, upgrade, list and delete applications."""


for _command in UPGRADE_COMMANDS:
    app.add_command(_command)


@app.command("deploy")
@click.argument("package", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--name",
    default=None,
    help="Application name (fabric:/...); default: the "
    "parameter file's, else fabric:/<package folder>.",
)
@click.option("--param", "params", multiple=True, metavar="K=V", help="Application parameter.")
@click.option(
    "--params-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Application parameter file (<Application><Parameters>...).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the default services' replicas are Ready.",
)
@click.option("--timeout", type=float, default=60.0, show_default=True)
@IF_EXISTS_OPTION
@REQUEST_ID_OPTION
@state_dir_option
@json_option
def app_deploy(
    package: Path,
    name: str | None,
    params: tuple[str, ...],
    params_file: Path | None,
    wait: bool,
    timeout: float,
    if_exists: str,
    request_id: str | None,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Validate PACKAGE, provision its type and create an application of it."""
    parameters: dict[str, str] = {}
    if params_file is not None:
        file_app_name, file_params = parse_parameters_file(params_file)
        # Checked here against the package's manifest, so that a name the manifest does not
        # declare is reported with the parameter file's own file:line.
        resolve_parameters(
            load_application_manifest(package / "ApplicationManifest.xml"),
            load_application_parameters(params_file),
        )
        parameters.update(file_params)
        name = name or file_app_name
    parameters.update(parse_params(params))  # the command line wins over the file
    name = name or f"fabric:/{package.resolve().name}"
    _check_dot_segments(name, "--name")
    with client_for(state_dir) as client:
        outcome = client.deploy_outcome(
            package, name, parameters, if_exists=if_exists, request_id=request_id
        )
        created = outcome.application
        if wait:
            for service in client.services(name):
                client.wait_service_ready(service["Name"], timeout)
    for warning in _deploy_differences(outcome, parameters):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit(created, True)
    else:
        what = f"{created['Name']} ({created['TypeName']} {created['TypeVersion']})"
        if outcome.created:
            click.echo(f"deployed {what}")
        else:
            click.echo(f"exists already: {what} (kept)")


def _deploy_differences(outcome: Deployed, parameters: dict[str, str]) -> list[str]:
    """How an application that was kept (use-existing) differs from what the deploy asked."""
    if outcome.created:
        return []
    app, asked = outcome.application, outcome.application_type
    found: list[str] = []
    if (app["TypeName"], app["TypeVersion"]) != (asked["Name"], asked["Version"]):
        found.append(
            f"{app['Name']} is of type {app['TypeName']} {app['TypeVersion']}, not the "
            f"package's {asked['Name']} {asked['Version']}; it was kept as it is"
        )
    current = {p["Key"]: p["Value"] for p in app.get("Parameters", [])}
    changed = sorted(k for k, v in parameters.items() if current.get(k) != v)
    if changed:
        found.append(
            f"{app['Name']} was kept with its own value of {', '.join(changed)} "
            "(not the one asked for)"
        )
    return found


@app.command("list")
@state_dir_option
@json_option
def app_list(state_dir: str | None, as_json: bool) -> None:
    """List applications."""
    with client_for(state_dir) as client:
        emit(client.applications(), as_json, APP_COLUMNS)


@app.command("delete")
@click.argument("name")
@state_dir_option
def app_delete(name: str, state_dir: str | None) -> None:
    """Delete an application, its services and its processes."""
    with client_for(state_dir) as client:
        client.delete_application(name)
    click.echo(f"deleted {name}")


@app.group("type")
def app_type() -> None:
    """Provisioned application types."""


@app_type.command("list")
@state_dir_option
@json_option
def app_type_list(state_dir: str | None, as_json: bool) -> None:
    """List provisioned application types."""
    with client_for(state_dir) as client:
        emit(
            client.application_types(),
            as_json,
            [("Name", field("Name")), ("Version", field("Version")), ("Status", field("Status"))],
        )


@app_type.command("unprovision")
@click.argument("type_name")
@click.argument("version")
@state_dir_option
def app_type_unprovision(type_name: str, version: str, state_dir: str | None) -> None:
    """Remove a provisioned application type no application uses."""
    with client_for(state_dir) as client:
        client.unprovision(type_name, version)
    click.echo(f"unprovisioned {type_name} {version}")


def _partitions(value: str) -> dict[str, object]:
    kind, _, rest = value.partition(":")
    if kind == "singleton" and not rest:
        return {"partition_scheme": PartitionScheme.SINGLETON}
    if kind == "uniform":
        try:
            count, low, high = (int(x) for x in rest.split(":"))
        except ValueError:
            raise click.BadParameter(
                "expected uniform:COUNT:LOW:HIGH", param_hint="--partitions"
            ) from None
        return {
            "partition_scheme": PartitionScheme.UNIFORM_INT64_RANGE,
            "partition_count": count,
            "low_key": low,
            "high_key": high,
        }
    if kind == "named" and rest:
        names = tuple(n for n in rest.split(",") if n)
        return {
            "partition_scheme": PartitionScheme.NAMED,
            "partition_names": names,
            "partition_count": len(names),
        }
    raise click.BadParameter(
        "expected singleton, uniform:COUNT:LOW:HIGH or named:A,B", param_hint="--partitions"
    )


@cli.group()
def service() -> None:
    """Create, list, show and delete services."""


@service.command("create")
@click.argument("name")
@click.option("--type", "type_name", required=True, help="Service type name.")
@click.option("--stateless", is_flag=True, help="A stateless service (instances).")
@click.option("--stateful", is_flag=True, help="A stateful service (replicas).")
@click.option(
    "--instances",
    type=int,
    default=1,
    show_default=True,
    help="Stateless instance count (-1 = one per node).",
)
@click.option(
    "--replicas", type=int, default=3, show_default=True, help="Stateful target replica set size."
)
@click.option("--min-replicas", type=int, default=None, help="Stateful min replica set size.")
@click.option(
    "--partitions",
    default="singleton",
    show_default=True,
    help="singleton | uniform:COUNT:LOW:HIGH | named:A,B",
)
@click.option(
    "--activation-mode",
    type=click.Choice([m.value for m in ActivationMode]),
    default=ActivationMode.SHARED_PROCESS.value,
    show_default=True,
)
@click.option("--wait", is_flag=True, help="Return when every replica is Ready.")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@IF_EXISTS_OPTION
@REQUEST_ID_OPTION
@state_dir_option
@json_option
def service_create(
    name: str,
    type_name: str,
    stateless: bool,
    stateful: bool,
    instances: int,
    replicas: int,
    min_replicas: int | None,
    partitions: str,
    activation_mode: str,
    wait: bool,
    timeout: float,
    if_exists: str,
    request_id: str | None,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Create service NAME (fabric:/App/Service) in its application."""
    if stateless == stateful:
        raise click.UsageError(
            "--stateless and --stateful exclude each other: say one"
            if stateless
            else "say --stateless or --stateful"
        )
    kind = ServiceKind.STATEFUL.value if stateful else ServiceKind.STATELESS.value
    app_name = name.rsplit("/", 1)[0]
    if not name.startswith("fabric:/") or app_name in ("fabric:", ""):
        raise click.BadParameter(
            f"{name!r} names no service: use fabric:/<Application>/<Service>",
            param_hint="NAME",
        )
    _check_dot_segments(name, "NAME")
    description = ServiceDescription(
        name=name,
        type_name=type_name,
        kind=ServiceKind(kind),
        activation_mode=ActivationMode(activation_mode),
        instance_count=instances,
        target_replica_set_size=replicas,
        min_replica_set_size=min_replicas if min_replicas is not None else min(replicas, 1),
        has_persisted_state=kind == ServiceKind.STATEFUL.value,
        **_partitions(partitions),  # type: ignore[arg-type]
    )
    with client_for(state_dir) as client:
        outcome = client.create_service_outcome(
            app_name,
            description,
            wait=wait,
            wait_timeout=timeout,
            if_exists=if_exists,
            request_id=request_id,
        )
        differences = [] if outcome.created else _service_differences(client, outcome, description)
    created = outcome.value
    for warning in created.get("HealthWarnings", []):
        click.echo(f"warning: {created['Name']}: {warning}", err=True)
    for difference in differences:
        click.echo(f"warning: {created['Name']} was kept as it is: {difference}", err=True)
    if as_json:
        emit(created, True)
    else:
        done = "created" if outcome.created else "exists already:"
        kept = "" if outcome.created else " (kept)"
        click.echo(f"{done} {created['Name']}{kept}" + (" (ready)" if wait else ""))


def _service_differences(
    client: FabricClient, outcome: Created, asked: ServiceDescription
) -> list[str]:
    """How an existing service (kept by use-existing) differs from ``asked``, as far as its
    JSON tells: kind, type, activation mode, partitions, replica or instance count."""
    found = []
    info = outcome.value
    pairs: list[tuple[str, object, object]] = [
        ("kind", info.get("ServiceKind"), asked.kind.value),
        ("type", info.get("TypeName"), asked.type_name),
        ("activation mode", info.get("ServicePackageActivationMode"), asked.activation_mode.value),
    ]
    partitions = client.partitions(info["Name"])
    pairs.append(("partition count", len(partitions), asked.partition_count))
    if partitions:
        first = partitions[0]
        if asked.kind is ServiceKind.STATEFUL:
            pairs.append(
                (
                    "target replicas",
                    first.get("TargetReplicaSetSize"),
                    asked.target_replica_set_size,
                )
            )
        else:
            pairs.append(("instance count", first.get("InstanceCount"), asked.instance_count))
    for what, has, wanted in pairs:
        if has is not None and has != wanted:
            found.append(f"its {what} is {has}, not {wanted}")
    return found


@service.command("list")
@click.argument("app_name")
@state_dir_option
@json_option
def service_list(app_name: str, state_dir: str | None, as_json: bool) -> None:
    """List the services of application APP_NAME."""
    with client_for(state_dir) as client:
        emit(client.services(app_name), as_json, SERVICE_COLUMNS)


@service.command("show")
@click.argument("name")
@state_dir_option
@json_option
def service_show(name: str, state_dir: str | None, as_json: bool) -> None:
    """Show a service with its partitions and replicas."""
    with client_for(state_dir) as client:
        info = client.service(name)
        info["Partitions"] = [
            {**p, "Replicas": client.replicas(p["PartitionInformation"]["Id"])}
            for p in client.partitions(name)
        ]
    if as_json:
        emit(info, True)
        return
    emit(info, False, SERVICE_COLUMNS)
    rows = [
        {"Partition": p["PartitionInformation"]["Id"], **r}
        for p in info["Partitions"]
        for r in p["Replicas"]
    ]
    emit(
        rows,
        False,
        [
            ("Partition", field("Partition")),
            ("Node", field("NodeName")),
            ("Replica", lambda r: r.get("ReplicaId") or r.get("InstanceId")),
            ("Role", field("ReplicaRole")),
            ("Status", field("ReplicaStatus")),
            ("Health", field("HealthState")),
            ("Address", address_field()),
        ],
    )
    # The reasons behind an unhealthy service (e.g. its open() raised), after the tables.
    for warning in info.get("HealthWarnings", []):
        click.echo(f"{info['HealthState'].lower()}: {warning}")


@service.command("resolve")
@click.argument("name")
@state_dir_option
@json_option
def service_resolve(name: str, state_dir: str | None, as_json: bool) -> None:
    """Print where a service's replicas listen: per partition, Primary first.

    One row per endpoint of each Ready replica (a guest's named endpoints, or the address a
    runtime service's open() returned). --json prints Service Fabric's ResolvedServicePartition
    list, each Address as published.
    """
    with client_for(state_dir) as client:
        partitions = client.resolve_service(name)
    if as_json:
        emit(partitions, True)
        return
    rows = [
        {
            "Partition": p["PartitionInformation"]["Id"],
            "Kind": e["Kind"],
            "Endpoint": endpoint,
            "Address": address,
        }
        for p in partitions
        for e in p["Endpoints"]
        for endpoint, address in endpoints_of(e["Address"]).items()
    ]
    emit(
        rows,
        False,
        [(h, field(h)) for h in ("Partition", "Kind", "Endpoint", "Address")],
    )


@service.command("delete")
@click.argument("name")
@state_dir_option
def service_delete(name: str, state_dir: str | None) -> None:
    """Delete a service: its replicas are closed."""
    with client_for(state_dir) as client:
        client.delete_service(name)
    click.echo(f"deleted {name}")
