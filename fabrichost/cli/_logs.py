"""`fabrichost logs`: the code packages' console output of every node, labelled, followed."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from fabrichost.cli._follow import ConsoleFollower, Selection
from fabrichost.cli._group import cli
from fabrichost.cli._output import client_for, json_option, state_dir_of, state_dir_option
from fabrichost.errors import FabricHostError
from fabrichost.wire import AgentRecord

if TYPE_CHECKING:
    from fabrichost.client import FabricClient

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AgentLabels:
    """Names of application folders and console file prefixes, as the agent reports them.

    Asked again when a name is unknown (for one name, at most once per ``min_interval``
    seconds): an application deployed while ``logs --follow`` runs gets its name. The limit is
    per name, so the folders of deleted applications, never named, do not keep a new one from
    being asked about at once (its first line, maybe its only one, would be left unprinted). An
    agent that cannot answer (stopped) leaves the names as they were.
    """

    def __init__(self, client: FabricClient, *, min_interval: float = 0.5) -> None:
        self._client = client
        self._min_interval = min_interval
        self._asked_for: dict[tuple[str, ...], float] = {}  # unknown name → when last asked
        self._apps: dict[tuple[str, str], str] = {}
        self._code_packages: dict[tuple[str, str, str], tuple[str, str]] = {}

    def application(self, node: str, folder: str) -> str | None:
        if (node, folder) not in self._apps:
            self._ask((node, folder))
        return self._apps.get((node, folder))

    def code_package(self, node: str, folder: str, prefix: str) -> tuple[str, str] | None:
        if (node, folder, prefix) not in self._code_packages:
            self._ask((node, folder, prefix))
        return self._code_packages.get((node, folder, prefix))

    def _ask(self, unknown: tuple[str, ...]) -> None:
        now = time.monotonic()
        if now - self._asked_for.get(unknown, float("-inf")) < self._min_interval:
            return
        self._asked_for[unknown] = now
        try:
            for node in self._client.nodes():
                for app in self._client.deployed_applications(node["Name"]):
                    folder = Path(app["LogDirectory"]).parent.name
                    self._apps[node["Name"], folder] = app["Name"]
                    for cp in self._client.deployed_code_packages(node["Name"], app["Name"]):
                        names = (cp["ServiceManifestName"], cp["Name"])
                        prefix = f"{cp['Name']}_{cp['ServiceManifestName']}"
                        self._code_packages[node["Name"], folder, prefix] = names
        except FabricHostError:
            pass  # a stopped agent, an application deleted meanwhile: keep what is known


def parse_since(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--since``: a duration back from now (``30s``, ``5m``, ``2h``, ``1d``) or an ISO 8601
    time (local time unless it says otherwise); as nanoseconds since the epoch."""
    if value is None:
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is not None:
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        return time.time_ns() - int(seconds * 1e9)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30s, 5m, 2h, 1d) nor an ISO 8601 time "
            "(2026-12-05T14:30:00)"
        ) from None
    return int(moment.timestamp() * 1e9)


@cli.command()
@click.option("--app", "app_name", default=None, help="Only this application (fabric:/...).")
@click.option("--node", default=None, help="Only this node (default: every node).")
@click.option("--code-package", "code_package_name", default=None, help="Only this code package.")
@click.option(
    "--tail",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Lines shown from the end of each file.",
)
@click.option(
    "--since",
    default=None,
    callback=parse_since,
    help="Only files written since then: 30s, 5m, 2h, 1d, or an ISO 8601 time.",
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C or the agent stops."
)
@json_option
@state_dir_option
def logs(
    app_name: str | None,
    node: str | None,
    code_package_name: str | None,
    tail: int,
    since: int | None,
    follow: bool,
    as_json: bool,
    state_dir: str | None,
) -> None:
    """Print the code packages' console output (stdout and stderr), every node by default.

    Each line says where it came from: node, application, service package/code package.
    With --json, one JSON object per line.
    """
    state = state_dir_of(state_dir)
    with client_for(state_dir) as client:
        _check_names(client, app_name, node, code_package_name, follow=follow)
        follower = ConsoleFollower(
            state / "_App",
            labels=AgentLabels(client),
            selection=Selection(node, app_name, code_package_name, since),
            as_json=as_json,
        )
        try:
            count = follower.print_tails(tail, then_follow=follow)
            if not follow:
                if count == 0:
                    click.echo(f"no console output in {state / '_App'}", err=True)
                return
            record = AgentRecord.read(state)
            if record is None:
                raise click.ClickException(f"no agent is running for {state}")
            try:
                asyncio.run(follower.follow(until_exit_of=record.AgentProcessId))
            except KeyboardInterrupt:
                return  # Ctrl-C: the way to stop following
            click.echo("the agent stopped", err=True)
        finally:
            follower.close()


def _check_names(
    client: FabricClient,
    app_name: str | None,
    node: str | None,
    code_package_name: str | None,
    *,
    follow: bool,
) -> None:
    """Refuse a name that exists nowhere (a typo), saying what does exist."""
    nodes = [n["Name"] for n in client.nodes()]
    if node is not None and node not in nodes:
        raise click.ClickException(f"no node {node}; nodes: {', '.join(nodes)}")
    if app_name is None:
        return
    names = sorted(a["Name"] for a in client.applications())
    if app_name not in names:
        known = ", ".join(names) or "(none)"
        raise click.ClickException(f"application {app_name} does not exist; applications: {known}")
    where = [node] if node is not None else nodes
    placed = [
        n for n in where if any(a["Name"] == app_name for a in client.deployed_applications(n))
    ]
    if not placed:
        if not follow:  # a follower waits for it to be placed
            on = node or "any node"
            raise click.ClickException(f"{app_name} has no activation on {on}")
        return
    if code_package_name is not None:
        known_cps = sorted(
            {cp["Name"] for n in placed for cp in client.deployed_code_packages(n, app_name)}
        )
        if code_package_name not in known_cps:
            raise click.ClickException(
                f"{app_name} has no code package {code_package_name!r}"
                + (f" on {node}" if node else "")
                + f"; its code packages: {', '.join(known_cps) or '(none)'}"
            )
