"""Printing for the CLI: ``--json`` gives Service Fabric's JSON, otherwise a table."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from fabrichost.client import FabricClient
from fabrichost.wire import endpoints_of, resolve_state_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

F = Any  # a click-decorated function


def console() -> Console:
    # Wide and plain when not a terminal, so piped output and tests see whole lines.
    width = None if sys.stdout.isatty() else 240
    return Console(soft_wrap=True, highlight=False, width=width)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print Service Fabric's JSON.")(f)


def state_dir_option(f: F) -> F:
    return click.option(
        "--state-dir",
        "state_dir",
        type=click.Path(file_okay=False),
        default=None,
        help="State directory (default: $FABRICHOST_STATE_DIR, else the user's state dir).",
    )(f)


def state_dir_of(value: str | None) -> Path:
    return resolve_state_dir(value)


def client_for(state_dir: str | None) -> FabricClient:
    return FabricClient.for_state_dir(state_dir_of(state_dir))


def emit(
    data: Any,
    as_json: bool,
    columns: Sequence[tuple[str, Callable[[Any], Any]]] = (),
    title: str | None = None,
) -> None:
    """Print ``data`` as JSON, or as a table with ``columns`` (header, getter) per item."""
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    items = data if isinstance(data, list) else [data]
    table = Table(title=title, show_edge=False, pad_edge=False)
    for header, _ in columns:
        table.add_column(header)
    for item in items:
        table.add_row(*(str(getter(item)) for _, getter in columns))
    if not items:
        click.echo("(none)")
        return
    console().print(table)


def field(name: str) -> Callable[[Any], Any]:
    return lambda item: item.get(name, "")


def readable_address(address: str) -> str:
    """A replica address for a table: ``Web=http://127.0.0.1:30017/`` for each endpoint of SF's
    endpoints JSON (comma-separated), a plain address as it is."""
    return ", ".join(
        f"{name}={value}" if name else value for name, value in endpoints_of(address).items()
    )


def address_field(name: str = "Address") -> Callable[[Any], Any]:
    return lambda item: readable_address(item.get(name, ""))
