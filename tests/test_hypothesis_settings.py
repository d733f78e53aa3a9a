"""Every property test runs under the suite's load-tolerant Hypothesis settings.

A loaded CI machine once failed ``test_any_valid_message_survives_the_wire`` on Hypothesis'
``too_slow`` health check: a false alarm that cost a whole submission. The profile in
``tests/conftest.py`` turns off the time-based checks; this test makes sure no test's own
``@settings`` brings them back.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

from tests.conftest import LOAD_TOLERANT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TESTS = Path(__file__).resolve().parent
USES_HYPOTHESIS = sorted(
    p
    for p in TESTS.rglob("test_*.py")
    if "from hypothesis import" in p.read_text() and p != Path(__file__).resolve()
)


def _property_tests(module_path: Path) -> Iterator[tuple[str, Callable[..., Any]]]:
    name = ".".join(module_path.relative_to(TESTS.parent).with_suffix("").parts)
    module = importlib.import_module(name)
    for attr, value in vars(module).items():
        if attr.startswith("test_") and hasattr(value, "hypothesis"):
            yield attr, value


def test_the_profile_is_loaded() -> None:
    default = settings.default
    assert default is not None
    assert default.deadline is None
    assert set(LOAD_TOLERANT) <= set(default.suppress_health_check)


@pytest.mark.parametrize("path", USES_HYPOTHESIS, ids=lambda p: p.name)
def test_no_property_test_brings_a_timing_check_back(path: Path) -> None:
    found = list(_property_tests(path))
    assert found, f"{path.name} imports hypothesis but has no property test"
    for name, test in found:
        own: settings = test._hypothesis_internal_use_settings  # type: ignore[attr-defined]
        assert own.deadline is None, f"{name} sets a deadline"
        assert set(LOAD_TOLERANT) <= set(own.suppress_health_check), f"{name}: too_slow is on"
