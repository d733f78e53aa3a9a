"""`fabrichost demo` (the reference scenario) and `fabrichost run PKG` (an agent in the
foreground: deploy, show, follow the console output; Ctrl-C cleans up)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import watchfiles

from fabrichost.cli._apps import _parse_params
from fabrichost.cli._cluster import ALLOW_USER_OPTION
from fabrichost.cli._group import EXIT_ERROR, ExitCode, cli
from fabrichost.cli._output import console
from fabrichost.cli._render import render_view
from fabrichost.client import FabricClient
from fabrichost.daemon import serve, start_background, stop_background
from fabrichost.errors import FabricHostError
from fabrichost.scenario import manifests_dir, play

if TYPE_CHECKING:
    from fabrichost.scenario import Step
    from fabrichost.wire import AgentRecord


@cli.command()
@click.option("--nodes", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option("--keep", is_flag=True, help="Leave the cluster running afterwards.")
@click.option(
    "--state-dir",
    "state_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="State directory (default: a new temporary one).",
)
def demo(nodes: int, keep: bool, state_dir: str | None) -> None:
    """Play the hosting-model reference scenario on a local cluster, showing the node view."""
    manifests = manifests_dir()
    temporary = state_dir is None
    path = Path(state_dir or tempfile.mkdtemp(prefix="fabrichost-demo-")).resolve()
    out = console()
    record = start_background(path, nodes=nodes, port=0)
    out.print(f"agent {record.AgentProcessId} at {record.Endpoint}, {nodes} node(s)")
    try:
        with FabricClient.for_state_dir(path) as client:

            def show(number: int, step: Step) -> None:
                out.rule(f"Step {number}: {step.title}")
                out.print(render_view(client.view("_Node_0")))

            play(client, manifests, after_step=show)
        if nodes > 1:
            out.print(
                f"\nEvery node shows the same view: 3 replicas per partition on {nodes} "
                "nodes (see `fabrichost view`)."
            )
    finally:
        if keep:
            out.print(
                f"\nThe cluster keeps running: fabrichost view --state-dir {path}\n"
                f"Stop it with:               fabrichost down --state-dir {path}"
            )
        else:
            stop_background(path)
            if temporary:
                shutil.rmtree(path, ignore_errors=True)


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
    state_dir: str | None,
) -> None:
    """Run an agent in the foreground, deploy PACKAGE and follow its console output."""
    temporary = state_dir is None
    path = Path(state_dir or tempfile.mkdtemp(prefix="fabrichost-run-")).resolve()
    app_name = name or f"fabric:/{package.resolve().name}"
    (path / "_App").mkdir(parents=True, exist_ok=True)  # followed for console output
    try:
        ok = asyncio.run(
            _run(path, package, app_name, _parse_params(params), nodes, port, allow_users)
        )
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)
    if not ok:
        raise ExitCode(EXIT_ERROR)


async def _run(
    path: Path,
    package: Path,
    app_name: str,
    params: dict[str, str],
    nodes: int | None,
    port: int,
    allow_users: tuple[int, ...],
) -> bool:
    ready: asyncio.Future[AgentRecord] = asyncio.get_running_loop().create_future()
    agent = asyncio.create_task(
        serve(path, port=port, nodes=nodes, on_ready=ready.set_result, allow_users=allow_users)
    )
    stopped = asyncio.Event()
    agent.add_done_callback(lambda _: stopped.set())
    waiters: set[asyncio.Future[Any]] = {agent, ready}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        await agent  # it failed to start: let its error surface
        return False
    record = ready.result()
    out = console()
    client = FabricClient.for_state_dir(path)
    ok = True
    try:
        # The client is synchronous and this loop serves the agent: call it from a thread.
        await asyncio.to_thread(client.deploy, package, app_name, params)
        services = await asyncio.to_thread(client.services, app_name)
        for service in services:
            await asyncio.to_thread(client.wait_service_ready, service["Name"], 60.0)
        if not services:
            out.print(
                f"{package} has no DefaultServices: create services with `fabrichost "
                f"service create fabric:/... --state-dir {path}` while this runs."
            )
        out.print(render_view(await asyncio.to_thread(client.view)))
        out.print(
            f"{app_name} runs; agent at {record.Endpoint}. Following console output; "
            "Ctrl-C stops everything."
        )
        await _follow_logs(path / "_App", stopped)
    except FabricHostError as exc:
        click.echo(f"Error: {exc}", err=True)
        ok = False
        agent.cancel()
    finally:
        client.close()
        await asyncio.gather(agent, return_exceptions=True)
    return ok


async def _follow_logs(root: Path, stop: asyncio.Event) -> None:
    """Print the console files below ``root``, then the lines appended, until ``stop`` is set.

    What was written before the watch began is printed first, so early output is not lost.
    """
    offsets: dict[Path, int] = {}
    _print_new(_console_files(root), offsets)
    async for changes in watchfiles.awatch(root, stop_event=stop, recursive=True):
        _print_new(sorted(Path(name) for _, name in changes), offsets)


def _console_files(root: Path) -> list[Path]:
    """Console files already there: <root>/<node>/<application>/log/*."""
    return sorted(root.glob("*/*/log/*"))


def _print_new(paths: list[Path], offsets: dict[Path, int]) -> None:
    for path in paths:
        if path.suffix not in (".out", ".err"):
            continue
        label = f"{path.parent.parent.parent.name}/{path.stem}"
        for line in _read_from(path, offsets).decode(errors="replace").splitlines():
            click.echo(f"[{label}] {line}")


def _read_from(path: Path, offsets: dict[Path, int]) -> bytes:
    """The bytes appended to ``path`` since the last read (a small local read)."""
    try:
        with path.open("rb") as f:
            f.seek(offsets.get(path, 0))
            data = f.read()
            offsets[path] = f.tell()
    except FileNotFoundError:  # rotated away since the change was seen
        return b""
    return data
