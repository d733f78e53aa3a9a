"""`fabrichost demo`: the reference scenario on a local cluster, showing the node view."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fabrichost.cli._group import cli
from fabrichost.cli._output import console
from fabrichost.cli._render import render_view
from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.scenario import manifests_dir, play

if TYPE_CHECKING:
    from fabrichost.scenario import Step


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
