"""The dependency rule of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fabrichost"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


IO_MODULES = {
    "socket",
    "subprocess",
    "asyncio",
    "os",
    "select",
    "threading",
    "time",
    "sqlite3",
    "lxml",
    "psutil",
    "httpx",
    "anyio",
}


@pytest.mark.parametrize("path", _files("protocol"), ids=lambda p: p.name)
def test_protocol_is_sans_io(path: Path) -> None:
    bad = {n for n in _imports(path) if n.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _files("runtime"), ids=lambda p: p.name)
def test_runtime_imports_only_stdlib_and_protocol(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "fabrichost":
            assert name.startswith(
                ("fabrichost.protocol", "fabrichost.runtime", "fabrichost.errors")
            ), f"{path.name} imports {name}"
        else:
            assert top in {"__future__", *__import__("sys").stdlib_module_names}, (
                f"{path.name} imports third-party {name}"
            )


def test_lxml_is_imported_only_by_the_xml_module() -> None:
    users = [
        p.name for p in PACKAGE.rglob("*.py") if any(n.split(".")[0] == "lxml" for n in _imports(p))
    ]
    assert users == ["_xml.py"]


@pytest.mark.parametrize("sub", ["manifest", "protocol"])
def test_lower_layers_do_not_import_the_agent(sub: str) -> None:
    for path in _files(sub):
        bad = {
            n
            for n in _imports(path)
            if n.startswith(("fabrichost.agent", "fabrichost.api", "fabrichost.cli"))
        }
        assert not bad, f"{path.name} imports {bad}"
