"""Fixtures for the store tests: a real database file in tmp_path, and rows to put in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.store import Store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path) as opened:
        yield opened
