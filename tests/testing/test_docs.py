"""docs/testing.md shows the example project of examples/testing/ exactly as it is (the suite
runs that folder: tests/testing/test_plugin.py)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "testing.md"
EXAMPLE = REPO / "examples" / "testing"
# A file's block: the marker line, then a fenced code block.
BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)


def test_every_example_file_is_shown_as_it_is() -> None:
    shown = dict(BLOCK.findall(DOC.read_text()))
    files = {
        str(p.relative_to(REPO))
        for p in EXAMPLE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert set(shown) == files
    for name, text in shown.items():
        assert (REPO / name).read_text() == text, f"docs/testing.md shows another {name}"
