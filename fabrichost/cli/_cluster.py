"""`fabrichost up|down|status|agent|node|view`: the local cluster itself."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from fabrichost.cli._group import ExitCode, cli
from fabrichost.cli._output import (
    client_for,
    console,
    emit,
    field,
    json_option,
    state_dir_of,
    state_dir_option,
)
from fabrichost.errors import FabricHostError

# The daemon (psutil, the state directory's locks) and the view's rich tree are imported by the
# commands that use them: a query such as `status` needs neither (docs/PERFORMANCE.md).

NODES_OPTION = click.option(
    "--nodes",
    type=click.IntRange(1, 64),
    default=None,
    help="Number of logical nodes (_Node_0 ...). Default: the count the state directory "
    "records, 1 for a new one. A different count resizes the cluster (like compose's --scale).",
)
PORT_OPTION = click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=19080,
    show_default=True,
    help="HTTP port on 127.0.0.1 (0 picks a free one).",
)


def _uids(ctx: click.Context, param: click.Parameter, users: tuple[str, ...]) -> tuple[int, ...]:
    try:
        from fabrichost.daemon import uid_of  # (loads the HTTP server's code: only when asked)

        return tuple(uid_of(user) for user in users)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


ALLOW_USER_OPTION = click.option(
    "--allow-user",
    "allow_users",
    multiple=True,
    callback=_uids,
    metavar="USER",
    help="Also serve this local user (name or uid; repeatable). By default the agent serves "
    "only its own user (and root); see docs/security.md.",
)


FORK_SERVER_OPTION = click.option(
    "--fork-server/--no-fork-server",
    default=True,
    show_default=True,
    help="Fork Python runtime hosts from a pre-warmed interpreter (docs/fork-server.md); "
    "--no-fork-server spawns each one. For an agent this command starts.",
)


@cli.command()
@state_dir_option
@NODES_OPTION
@PORT_OPTION
@ALLOW_USER_OPTION
@FORK_SERVER_OPTION
@json_option
def up(
    state_dir: str | None,
    nodes: int | None,
    port: int,
    allow_users: tuple[int, ...],
    fork_server: bool,
    as_json: bool,
) -> None:
    """Start the local cluster's agent in the background; return once it serves.

    If an agent already serves the state directory, it is reported as it is (exit 0), unless
    --nodes asks for another node count (exit 1: stop it first with `fabrichost down`).
    """
    path = state_dir_of(state_dir)
    from fabrichost.daemon import read_node_count, start_agent

    before = read_node_count(path)
    outcome = start_agent(
        path, nodes=nodes, port=port, allow_users=allow_users, fork_server=fork_server
    )
    record = outcome.record
    if not outcome.started and nodes is not None and nodes != record.NodeCount:
        raise click.ClickException(
            f"an agent (pid {record.AgentProcessId}, {record.Endpoint}) already serves "
            f"{record.StateDirectory} with {record.NodeCount} node(s); --nodes {nodes} was not "
            f"applied. Run `fabrichost down`, then `fabrichost up --nodes {nodes}` to resize it."
        )
    if outcome.started and before is not None and before != record.NodeCount:
        note = f"note: the cluster had {before} node(s) and now has {record.NodeCount}"
        if record.NodeCount < before:
            note += "; replicas of the removed nodes are placed again on the others"
        click.echo(note, err=True)
    if as_json:
        emit(
            {
                "Endpoint": record.Endpoint,
                "AgentProcessId": record.AgentProcessId,
                "StateDirectory": record.StateDirectory,
                "NodeCount": record.NodeCount,
                "Started": outcome.started,
            },
            True,
        )
    elif outcome.started:
        click.echo(
            f"agent {record.AgentProcessId} serves {record.Endpoint} "
            f"({record.NodeCount} node(s), state in {record.StateDirectory})"
        )
    else:
        click.echo(
            f"agent {record.AgentProcessId} already serves {record.Endpoint} "
            f"({record.NodeCount} node(s), state in {record.StateDirectory})"
        )


@cli.command()
@state_dir_option
def down(state_dir: str | None) -> None:
    """Stop the agent and every process it started."""
    path = state_dir_of(state_dir)

    def waiting(message: str) -> None:
        click.echo(message, err=True)

    swept: list[int] = []
    from fabrichost.daemon import stop_background

    stopped = stop_background(path, on_wait=waiting, on_swept=swept.extend)
    if stopped:
        click.echo(f"stopped the agent of {path}")
    if swept:  # a killed agent left these behind: something *was* running, say what went
        pids = ", ".join(map(str, sorted(swept)))
        click.echo(
            f"stopped {len(swept)} process(es) an earlier agent of {path} left behind (pids {pids})"
        )
    elif not stopped:
        click.echo(f"no agent was running for {path}")


@cli.command()
@state_dir_option
@json_option
def status(state_dir: str | None, as_json: bool) -> None:
    """Show whether the agent runs, where, and its nodes."""
    path = state_dir_of(state_dir)
    # The agent that answers must be the one serving this state directory (a stale agent.json
    # may name a port another program now has): its answer says which one it serves. No import
    # of the daemon to look at processes and locks first: that was a third of a query's time.
    data = None
    with contextlib.suppress(FabricHostError), client_for(state_dir) as client:
        data = client.status()
    if data is None or Path(str(data.get("StateDirectory", ""))).resolve() != path:
        raise click.ClickException(
            f"no agent is running for {path}; start one with `fabrichost up`"
        )
    if as_json:
        emit(data, True)
        return
    click.echo(
        f"agent {data['AgentProcessId']} at {data['Endpoint']} (state {data['StateDirectory']})"
    )
    emit(data["Nodes"], False, [("Node", field("Name")), ("Status", field("NodeStatus"))])


@cli.command()
@state_dir_option
@NODES_OPTION
@PORT_OPTION
@ALLOW_USER_OPTION
@click.option("--ready-fd", type=int, default=None, hidden=True)
@click.option(
    "--restart-delay",
    type=float,
    default=0.5,
    show_default=True,
    help="Base delay of the restart backoff of crashed code packages, in seconds.",
)
@FORK_SERVER_OPTION
def agent(
    state_dir: str | None,
    nodes: int | None,
    port: int,
    allow_users: tuple[int, ...],
    ready_fd: int | None,
    restart_delay: float,
    fork_server: bool,
) -> None:
    """Run the agent in the foreground (for systemd units and containers)."""
    from fabrichost.daemon import main as agent_main

    argv = ["--nodes", str(nodes)] if nodes is not None else []
    argv += [
        "--port",
        str(port),
        "--restart-delay",
        str(restart_delay),
        "--state-dir",
        str(state_dir_of(state_dir)),
    ]
    if ready_fd is not None:
        argv += ["--ready-fd", str(ready_fd)]
    for uid in allow_users:
        argv += ["--allow-user", str(uid)]
    if not fork_server:
        argv.append("--no-fork-server")
    raise ExitCode(agent_main(argv))


@cli.group()
def node() -> None:
    """List, stop and start the cluster's nodes."""


@node.command("list")
@state_dir_option
@json_option
def node_list(state_dir: str | None, as_json: bool) -> None:
    """List the nodes."""
    with client_for(state_dir) as client:
        emit(
            client.nodes(),
            as_json,
            [
                ("Name", field("Name")),
                ("Status", field("NodeStatus")),
                ("Health", field("HealthState")),
                ("Activations", field("ActivationCount")),
            ],
        )


@node.command("stop")
@click.argument("name")
@state_dir_option
def node_stop(name: str, state_dir: str | None) -> None:
    """Stop a node: its processes stop and its replicas fail over."""
    with client_for(state_dir) as client:
        client.stop_node(name)
    click.echo(f"stopped {name}")


@node.command("start")
@click.argument("name")
@state_dir_option
def node_start(name: str, state_dir: str | None) -> None:
    """Start a stopped node."""
    with client_for(state_dir) as client:
        client.start_node(name)
    click.echo(f"started {name}")


@cli.command()
@click.option("--node", "node_name", default=None, help="Only this node.")
@state_dir_option
@json_option
def view(node_name: str | None, state_dir: str | None, as_json: bool) -> None:
    """The node view: node → application → activation → process → replicas."""
    with client_for(state_dir) as client:
        data: Any = client.view(node_name)
    if as_json:
        emit(data, True)
    else:
        from fabrichost.cli._render import render_view

        console().print(render_view(data))
