"""fabrichost.manifest: the lxml confinement rule and an IO-free model (its ``__all__`` is
checked with every part's, in tests/test_exports.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from fabrichost import manifest

PACKAGE = Path(manifest.__file__).parent


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_lxml_is_imported_only_by_the_xml_module() -> None:
    users = {
        p.name for p in PACKAGE.glob("*.py") if any(m.startswith("lxml") for m in imports_of(p))
    }
    assert users == {"_xml.py"}


def test_the_model_imports_no_io() -> None:
    # fabrichost.wire: ActivationMode, a word the manifests share with service descriptions.
    allowed = {"__future__", "enum", "dataclasses", "typing", "collections.abc", "pathlib"}
    allowed.add("fabrichost.wire")
    assert imports_of(PACKAGE / "_model.py") <= allowed


def test_every_module_uses_postponed_annotations() -> None:
    for path in PACKAGE.glob("*.py"):
        assert "from __future__ import annotations" in path.read_text(), path
