"""Every part's public face: a tuple ``__all__`` naming exactly what its ``__init__`` binds.

Parts talk to each other through these names only (``tests/test_architecture.py`` refuses an
import of another part's private module), so each list is the contract (as httpx's
tests/test_exported_members.py and anyio's tests/test_all_attributes.py check theirs).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

PARTS = (
    "fabrichost",
    "fabrichost.agent",
    "fabrichost.api",
    "fabrichost.cli",
    "fabrichost.client",
    "fabrichost.daemon",
    "fabrichost.dev",
    "fabrichost.errors",
    "fabrichost.local",
    "fabrichost.manifest",
    "fabrichost.protocol",
    "fabrichost.runtime",
    "fabrichost.store",
    "fabrichost.testing",
    "fabrichost.wire",
)


@pytest.mark.parametrize("name", PARTS)
def test_all_is_a_tuple_naming_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, tuple)
    assert len(set(exported)) == len(exported), "a name is listed twice"
    for member in exported:
        assert hasattr(module, member), f"{name}.{member} is listed but not there"
    public = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_") and not isinstance(value, ModuleType)
    }
    # ``annotations`` is the __future__ feature every module imports.
    assert public - {"annotations"} == set(exported) - {"__version__"}


def test_every_part_has_a_face() -> None:
    from tests.test_architecture import LAYERS

    modules = {"scenario", "__main__", "root"}  # modules of their own, not packages
    assert {f"fabrichost.{p}" for p in set(LAYERS) - modules} | {"fabrichost"} == set(PARTS)
