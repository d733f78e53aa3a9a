"""Property tests: mangled real manifests either load or raise ManifestError, nothing else."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest import check_path, load_document
from fabrichost.manifest._xml import parse_xml
from tests.conftest import LOAD_TOLERANT

from .test_corpus import CORPUS, ROWS

# A handful of varied real files: the parser and checker paths they exercise are what matters.
SAMPLE: Final = [
    (CORPUS / row["repo"].replace("/", "__") / row["path"]).read_bytes()
    for row in ROWS[::9]
    if row["root_element"] in ("ApplicationManifest", "ServiceManifest", "Settings", "Application")
]

pytestmark = pytest.mark.skipif(not SAMPLE, reason=f"corpus not found at {CORPUS}")

FUZZ: Final = settings(
    max_examples=150,
    suppress_health_check=[*LOAD_TOLERANT, HealthCheck.function_scoped_fixture],
)


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file.xml"
        path.write_bytes(data)
        diagnostics: tuple[Diagnostic, ...] = ()
        try:
            load_document(path)
        except ManifestError as exc:  # the only exception allowed
            diagnostics = exc.diagnostics
        # check_path never raises and reports exactly what loading reported.
        assert check_path(path).diagnostics == diagnostics
        assert all(d.file == str(path) for d in diagnostics)


def _mangle_lines(data: bytes, operation: str, first: int, second: int) -> bytes:
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    i, j = first % len(lines), second % len(lines)
    if operation == "delete":
        del lines[i]
    elif operation == "duplicate":
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


@FUZZ
@given(
    st.sampled_from(SAMPLE or [b""]),
    st.sampled_from(["delete", "duplicate", "swap"]),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_deleted_duplicated_or_swapped_lines(data: bytes, operation: str, i: int, j: int) -> None:
    _load(_mangle_lines(data, operation, i, j))


@FUZZ
@given(st.sampled_from(SAMPLE or [b""]), st.integers(0, 10_000), st.binary(max_size=12))
def test_attribute_values_corrupted(data: bytes, which: int, junk: bytes) -> None:
    # Strategy: replace the content of the n-th quoted value, where attribute values live.
    parts = data.split(b'"')
    if len(parts) > 2:
        index = 1 + 2 * (which % (len(parts) // 2))
        parts[index] = junk.replace(b'"', b"").replace(b"<", b"")
    _load(b'"'.join(parts))


@FUZZ
@given(st.sampled_from(SAMPLE or [b""]), st.integers(0, 100_000))
def test_truncated(data: bytes, cut: int) -> None:
    _load(data[: cut % (len(data) + 1)])


@FUZZ
@given(
    st.sampled_from(SAMPLE or [b""]), st.integers(0, 100_000), st.binary(min_size=1, max_size=16)
)
def test_random_bytes_injected(data: bytes, where: int, junk: bytes) -> None:
    at = where % (len(data) + 1)
    _load(data[:at] + junk + data[at:])


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_xml(data, "x.xml")
