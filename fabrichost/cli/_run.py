"""`fabrichost run PKG`: a LocalCluster in the foreground: deploy, show, follow the console
output; Ctrl-C stops everything. The cluster belongs to this command: if it is killed, even by
SIGKILL, the agent stops every process and deletes the temporary state directory itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from fabrichost import LocalCluster
from fabrichost.cli._cluster import ALLOW_USER_OPTION, FORK_SERVER_OPTION
from fabrichost.cli._follow import ConsoleFollower
from fabrichost.cli._group import EXIT_ERROR, ExitCode, cli
from fabrichost.cli._logs import AgentLabels
from fabrichost.cli._output import console, parse_params
from fabrichost.cli._render import render_view
from fabrichost.errors import FabricHostError


@cli.command("run")
@click.argument("package", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Application name (default fabric:/<folder>).")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Application parameter.")
@click.option(
    "--nodes",
    type=click.IntRange(1, 64),
    default=None,
    help="Node count (default: the state directory's recorded count, 1 for a new one).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True)
@ALLOW_USER_OPTION
@FORK_SERVER_OPTION
@click.option(
    "--state-dir",
    "state_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="State directory (default: a new temporary one).",
)
def run_package(
    package: Path,
    name: str | None,
    params: tuple[str, ...],
    nodes: int | None,
    port: int,
    allow_users: tuple[int, ...],
    fork_server: bool,
    state_dir: str | None,
) -> None:
    """Run a cluster in the foreground, deploy PACKAGE and follow its console output."""
    app_name = name or f"fabric:/{package.resolve().name}"
    parameters = parse_params(params)
    cluster = LocalCluster(
        nodes=nodes,
        state_dir=state_dir,
        port=port,
        allow_users=allow_users,
        fork_server=fork_server,
    )
    follower = ConsoleFollower(cluster.state_dir / "_App", labels=AgentLabels(cluster.client))
    ok = True
    try:
        _deploy_and_follow(cluster, package, app_name, parameters, follower)
    except KeyboardInterrupt:
        pass  # Ctrl-C: the way to stop
    except FabricHostError as exc:
        click.echo(f"Error: {exc}", err=True)
        ok = False
    finally:
        follower.print_new()  # open the files that appeared: they outlive their folder
        cluster.stop()
        follower.print_new()  # what the hosts said while they stopped
        follower.close()
    if not ok:
        raise ExitCode(EXIT_ERROR)


def _deploy_and_follow(
    cluster: LocalCluster,
    package: Path,
    app_name: str,
    params: dict[str, str],
    follower: ConsoleFollower,
) -> None:
    out = console()
    cluster.deploy(package, app_name, params)
    if not cluster.client.services(app_name):
        out.print(
            f"{package} has no DefaultServices: create services with `fabrichost "
            f"service create fabric:/... --state-dir {cluster.state_dir}` while this runs."
        )
    out.print(render_view(cluster.client.view()))
    out.print(
        f"{app_name} runs; agent at {cluster.endpoint}, state directory {cluster.state_dir}. "
        "Following console output; Ctrl-C stops everything."
    )
    follower.root.mkdir(parents=True, exist_ok=True)
    asyncio.run(follower.follow(until_exit_of=cluster.agent_pid))
