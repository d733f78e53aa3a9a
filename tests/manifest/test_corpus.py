"""Agreement with the real Service Fabric schema on ~225 real public manifests.

``shared/sfcorpus/VALIDATION.tsv`` (beside the repository) records what the real schema
(``ServiceFabricServiceModel.xsd``, validated with libxml2) thinks of each file: ``valid``, or
``INVALID`` with its first error's line. Checking a file on its own must agree: no error for a
valid file; for an invalid one, at least one error on the line the schema named.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Final

import pytest

from fabrichost.manifest import check_path

CORPUS: Final = Path(__file__).resolve().parents[2].parent / "shared" / "sfcorpus"
TABLE: Final = CORPUS / "VALIDATION.tsv"

# Files where fabrichost knowingly disagrees with the schema, with the reason. Keep it short.
DISAGREEMENTS: Final[dict[str, str]] = {}


def _rows() -> list[dict[str, str]]:
    if not TABLE.is_file():
        return []
    with TABLE.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


ROWS: Final = _rows()


@pytest.mark.skipif(not ROWS, reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("row", ROWS, ids=[row["path"] for row in ROWS])
def test_agrees_with_the_schema(row: dict[str, str]) -> None:
    if row["path"] in DISAGREEMENTS:
        pytest.skip(DISAGREEMENTS[row["path"]])
    path = CORPUS / row["repo"].replace("/", "__") / row["path"]
    result = check_path(path)
    if row["result"] == "valid":
        assert result.ok, [str(d) for d in result.diagnostics]
        assert result.kind == row["root_element"]
        return
    match = re.match(r"line (\d+):", row["first_error"])
    assert match, row["first_error"]
    expected_line = int(match.group(1))
    assert not result.ok, f"the schema says: {row['first_error']}"
    assert expected_line in {d.line for d in result.diagnostics}, (
        row["first_error"],
        [str(d) for d in result.diagnostics],
    )


def test_the_corpus_table_is_complete_when_present() -> None:
    if not ROWS:
        pytest.skip(f"corpus not found at {CORPUS}")
    assert {row["result"] for row in ROWS} == {"valid", "INVALID"}
    assert len(ROWS) > 200
