"""Printing for the CLI: ``--json`` gives Service Fabric's JSON, otherwise a table."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from fabrichost.client import FabricClient
from fabrichost.wire import endpoints_of, resolve_state_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from rich.console import Console

F = Any  # a click-decorated function


def console() -> Console:
    from rich.console import Console  # 25 ms of imports: only where something is rendered

    # Wide and plain when not a terminal, so piped output and tests see whole lines.
    return Console(soft_wrap=True, highlight=False, width=_width())


def _width() -> int | None:
    return None if sys.stdout.isatty() else 240


def _terminal_columns() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 80


def cell_len(text: str) -> int:
    """The columns ``text`` takes on a terminal (as rich counts them: wide East Asian
    characters take two); rich's table of widths is loaded for text that is not ASCII only."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len as rich_cell_len

    return rich_cell_len(text)


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
    if not items:
        click.echo("(none)")
        return
    headers = [header for header, _ in columns]
    rows = [[str(getter(item)) for _, getter in columns] for item in items]
    # Laid out here when rich would print the same: always when not on a terminal (rich then
    # adds no style), and for long tables (see PLAIN_ROWS); rich is not even imported then.
    width = _width()
    if width is not None or len(rows) > PLAIN_ROWS:
        text = plain_table(headers, rows, width or _terminal_columns())
        if text is not None:
            if title:
                click.echo(title)
            click.echo(text, nl=False)
            return
    from rich.table import Table

    table = Table(title=title, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console().print(table)


# Tables longer than this are laid out here, in time linear in their cells: rich measures and
# renders each cell as a renderable (about a millisecond a row: 10 s for 10,000 replicas).
PLAIN_ROWS = 200


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> str | None:
    """``rows`` laid out as rich lays out a table without edges (``┃``/``╇``/``│`` rules, each
    column as wide as its widest cell, text taken literally), or None when that is wider than
    ``width`` and only rich can fold it."""
    widths = [cell_len(header) for header in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if (n := cell_len(cell)) > widths[i]:
                widths[i] = n
    if sum(widths) + 3 * (len(widths) - 1) > width or any("\n" in c for r in rows for c in r):
        return None

    def line(cells: Sequence[str], rule: str) -> str:
        return rule.join(c + " " * (w - cell_len(c)) for c, w in zip(cells, widths, strict=True))

    lines = [line(headers, " ┃ "), "━╇━".join("━" * w for w in widths)]
    lines.extend(line(row, " │ ") for row in rows)
    return "\n".join(lines) + "\n"


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


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    """``--param K=V`` options as a dict (a later K wins)."""
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected K=V, got {item!r}", param_hint="--param")
        params[key] = value
    return params
