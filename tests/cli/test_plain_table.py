"""Long tables are laid out without rich, exactly as rich lays them out."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from fabrichost.cli._output import plain_table

HEADERS = ("Service", "Replica", "Status", "Address")
ROWS = [
    ["fabric:/Bench/Burst0", "1796487546832833", "Ready", "tcp://127.0.0.1:40001"],
    ["fabric:/A/ünïcode", "7", "Down", ""],
    ["fabric:/A/日本", "", "InBuild", "Web=http://127.0.0.1:30017/"],
]


def _rich(headers: tuple[str, ...], rows: list[list[str]], width: int) -> str:
    table = Table(show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, soft_wrap=True, highlight=False, width=width).print(table)
    return buffer.getvalue()


def test_a_table_that_fits_is_what_rich_prints() -> None:
    assert plain_table(HEADERS, ROWS, 240) == _rich(HEADERS, ROWS, 240)


def test_a_table_wider_than_the_console_is_left_to_rich() -> None:
    assert plain_table(HEADERS, ROWS, 40) is None


def test_a_cell_of_several_lines_is_left_to_rich() -> None:
    assert plain_table(("A",), [["one\ntwo"]], 240) is None
