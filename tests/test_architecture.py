"""The structure docs/architecture.md describes, checked on the source.

Every import counts, wherever it is written: at the top of a module, inside a function, or under
``TYPE_CHECKING`` (a type-only import still ties the two modules together for a reader and for
the type checker). The rules:

* the layers: each part of ``fabrichost`` imports only the parts listed for it in ``LAYERS``,
  and inside the agent each module only its own tier or lower ones (``AGENT_TIERS``);
* no import cycle between any two modules;
* no module imports another part's private (``_name``) module: parts talk through the names
  their ``__init__`` exports;
* no class is longer than ``MAX_CLASS_LINES``;
* ``import fabrichost.client`` loads nothing of the agent, its HTTP server or the parsers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = Path(__file__).resolve().parents[1] / "fabrichost"
MAX_CLASS_LINES: Final = 400

#: What each part may import. A part is a subpackage, a top-level module, or "root" (the
#: package's own ``__init__`` and ``_version``). Lower parts first.
LAYERS: Final[dict[str, frozenset[str]]] = {
    "errors": frozenset(),
    "protocol": frozenset({"errors"}),
    "runtime": frozenset({"errors", "protocol"}),
    "wire": frozenset({"errors", "protocol"}),
    "manifest": frozenset({"errors", "wire"}),
    "store": frozenset({"errors", "wire"}),
    "agent": frozenset({"errors", "protocol", "wire", "manifest", "store"}),
    "api": frozenset({"errors", "protocol", "wire", "agent"}),
    "client": frozenset({"errors", "protocol", "wire"}),
    "daemon": frozenset({"root", "errors", "wire", "agent", "api"}),
    "scenario": frozenset({"errors", "wire", "client"}),
    "local": frozenset({"errors", "wire", "client", "daemon"}),
    "testing": frozenset({"root", "errors"}),
    "cli": frozenset(
        {"root", "errors", "protocol", "wire", "manifest", "client", "daemon", "scenario"}
    ),
    # The root exports LocalCluster lazily (PEP 562): `import fabrichost` loads none of it.
    "root": frozenset({"errors", "local"}),
    "__main__": frozenset({"cli"}),
}

#: Inside the agent, tiers from the bottom up; a module imports its own tier or lower ones.
#: ClusterState sits above the mechanisms because its nodes hold their activations.
AGENT_TIERS: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    (
        "model and pure helpers",
        frozenset(
            {
                "_model",
                "_spec",
                "_settings",
                "_tasks",
                "_backoff",
                "_ports",
                "_environment",
                "_lock",
                "_naming",
                "_node_choice",
                "_crash",
                "_health",
                "_health_eval",
                "_summary",
                "_upgrade_plan",
                "_upgrade_progress",
            }
        ),
    ),
    (
        "mechanisms",
        frozenset(
            {
                "_orphans",
                "_proctree",
                "_console",
                "_entrypoint",
                "_process",
                "_channel",
                "_fence",
                "_activation",
                "_image_copy",
                "_image_store",
                "_provision",
                "_package_upgrade",
            }
        ),
    ),
    ("state", frozenset({"_state", "_health_view"})),
    ("persistence", frozenset({"_persist", "_restore"})),
    (
        "services",
        frozenset(
            {
                "_requests",
                "_election",
                "_repair",
                "_placement",
                "_failover",
                "_app_types",
                "_catalog",
                "_service_removal",
                "_instances",
                "_instance_events",
                "_transitions",
                "_upgrade_health",
                "_upgrade_domain",
                "_upgrade",
            }
        ),
    ),
    ("the facade", frozenset({"_cluster"})),
)


@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # a module name, e.g. fabrichost.agent._cluster
    target: str  # the module it imports (a package stands for its __init__)
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.target}"


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports_of(module: str, path: Path) -> list[Import]:
    """Every import of a ``fabrichost`` module in ``path``, wherever it is written."""
    known = modules()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif node.module:
            base = node.module
            if node.level:  # relative: resolved against the importing module's package
                package = module.split(".")
                if path.name != "__init__.py":
                    package.pop()
                base = ".".join([*package[: len(package) - node.level + 1], node.module])
            # ``from pkg import sub`` imports the module pkg.sub when there is one.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        found += [Import(module, t, node.lineno) for t in targets if t in known]
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for m, p in modules().items() for i in _imports_of(m, p))


def part_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "_version":
        return "root"
    return parts[1]


def _private_owner(module: str) -> str | None:
    """The part whose private module ``module`` is, if it is one (``fabrichost.agent._x`` is
    the agent's; ``fabrichost._version`` the root's)."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and part != "__main__":
            return part_of(".".join(parts[:i])) if i > 1 else "root"
    return None


# -- the rules ------------------------------------------------------------------------------------


def layer_violations(imports: tuple[Import, ...]) -> list[str]:
    bad = []
    for imp in imports:
        source, target = part_of(imp.importer), part_of(imp.target)
        if source != target and target not in LAYERS.get(source, frozenset()):
            bad.append(f"{imp} ({source} may import {sorted(LAYERS.get(source, ()))} only)")
    return bad


def private_violations(imports: tuple[Import, ...]) -> list[str]:
    return [
        f"{imp}, a private module of {owner}"
        for imp in imports
        if (owner := _private_owner(imp.target)) is not None and owner != part_of(imp.importer)
    ]


def cycles(imports: tuple[Import, ...]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def agent_tier_violations(imports: tuple[Import, ...]) -> list[str]:
    tier_of = {m: i for i, (_, members) in enumerate(AGENT_TIERS) for m in members}
    bad = []
    for imp in imports:
        source, target = imp.importer.split("."), imp.target.split(".")
        if source[:2] != ["fabrichost", "agent"] or target[:2] != ["fabrichost", "agent"]:
            continue
        if len(source) < 3 or len(target) < 3:
            continue  # the package's face imports every tier
        low, high = tier_of[target[2]], tier_of[source[2]]
        if low > high:
            bad.append(f"{imp} ({AGENT_TIERS[high][0]} importing {AGENT_TIERS[low][0]})")
    return bad


def long_classes(paths: dict[str, Path]) -> list[str]:
    found = []
    for module, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    found.append(f"{module}.{node.name}: {length} lines")
    return found


def test_every_part_imports_only_the_layers_below_it() -> None:
    assert layer_violations(all_imports()) == []


def test_every_part_is_in_the_layer_table() -> None:
    parts = {part_of(m) for m in modules()}
    assert parts == set(LAYERS)


def test_the_agent_s_tiers_import_downward_only() -> None:
    assert agent_tier_violations(all_imports()) == []


def test_every_agent_module_has_a_tier() -> None:
    agent = {m.split(".")[2] for m in modules() if m.startswith("fabrichost.agent.")}
    tiered = {m for _, members in AGENT_TIERS for m in members}
    assert agent == tiered


def test_no_module_imports_another_part_s_private_module() -> None:
    assert private_violations(all_imports()) == []


def _lazy_export(imp: Import) -> bool:
    """The root's lazy export of LocalCluster (PEP 562 ``__getattr__``, and its type under
    ``TYPE_CHECKING``): no import of ``fabrichost`` runs it, so it closes no cycle at import
    time; ``test_importing_fabrichost_loads_nothing_of_the_local_cluster`` holds it to that."""
    return imp.importer == "fabrichost" and part_of(imp.target) == "local"


def test_there_is_no_import_cycle() -> None:
    assert cycles(tuple(i for i in all_imports() if not _lazy_export(i))) == []


def test_importing_fabrichost_loads_nothing_of_the_local_cluster() -> None:
    # The pytest plugin is imported by every pytest run of an environment with fabrichost.
    heavy = ("fabrichost.local", "fabrichost.daemon", "fabrichost.agent", "uvicorn", "psutil")
    code = "import sys, fabrichost.testing.plugin; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_no_class_is_longer_than_400_lines() -> None:
    assert long_classes(modules()) == []


def test_importing_the_client_loads_nothing_of_the_agent_or_the_server() -> None:
    heavy = ("starlette", "uvicorn", "lxml", "psutil", "fabrichost.agent", "fabrichost.api")
    code = "import sys, fabrichost.client; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert [m for m in loaded if m.startswith(heavy)] == []


# -- the rules catch what they are for (each of these is a shape main once had) ------------------


def _fake(*edges: tuple[str, str]) -> tuple[Import, ...]:
    return tuple(Import(a, b, 1) for a, b in edges)


def test_the_cycle_rule_finds_a_loop_through_type_only_imports() -> None:
    loop = _fake(
        ("fabrichost.agent._cluster", "fabrichost.agent._instances"),
        ("fabrichost.agent._instances", "fabrichost.agent._cluster"),
        ("fabrichost.agent._cluster", "fabrichost.errors"),
    )
    assert cycles(loop) == [["fabrichost.agent._cluster", "fabrichost.agent._instances"]]


def test_the_private_rule_allows_a_part_s_own_private_modules_only() -> None:
    imports = _fake(
        ("fabrichost.client._client", "fabrichost.agent._model"),
        ("fabrichost.cli._group", "fabrichost._version"),
        ("fabrichost.agent._cluster", "fabrichost.agent._model"),
        ("fabrichost", "fabrichost._version"),
        ("fabrichost.client._client", "fabrichost.wire"),
    )
    assert private_violations(imports) == [
        "fabrichost.client._client:1 imports fabrichost.agent._model, a private module of agent",
        "fabrichost.cli._group:1 imports fabrichost._version, a private module of root",
    ]


def test_the_layer_rule_refuses_an_upward_import() -> None:
    upward = _fake(("fabrichost.agent._daemon", "fabrichost.api._app"))
    (violation,) = layer_violations(upward)
    assert violation.startswith("fabrichost.agent._daemon:1 imports fabrichost.api._app")


def test_the_agent_tier_rule_refuses_a_mechanism_importing_the_cluster() -> None:
    upward = _fake(("fabrichost.agent._activation", "fabrichost.agent._cluster"))
    assert agent_tier_violations(upward) == [
        "fabrichost.agent._activation:1 imports fabrichost.agent._cluster "
        "(mechanisms importing the facade)"
    ]


def test_imports_inside_functions_and_type_checking_blocks_are_seen(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from fabrichost.agent import Cluster\n"
        "def f():\n"
        "    from fabrichost.api import _app\n"
    )
    targets = [i.target for i in _imports_of("fabrichost.probe", source)]
    assert targets == ["fabrichost.agent", "fabrichost.api._app"]


def test_the_class_rule_measures_whole_classes(tmp_path: Path) -> None:
    source = tmp_path / "big.py"
    source.write_text("class Big:\n" + "    x = 1\n" * MAX_CLASS_LINES)
    assert long_classes({"big": source}) == [f"big.Big: {MAX_CLASS_LINES + 1} lines"]


# -- rules about what the lower layers use ---------------------------------------------------------


def _third_party_and_stdlib_imports(path: Path) -> set[str]:
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
    bad = {n for n in _third_party_and_stdlib_imports(path) if n.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _files("runtime"), ids=lambda p: p.name)
def test_runtime_imports_only_stdlib_and_protocol(path: Path) -> None:
    for name in _third_party_and_stdlib_imports(path):
        top = name.split(".")[0]
        if top == "fabrichost":
            assert name.startswith(
                ("fabrichost.protocol", "fabrichost.runtime", "fabrichost.errors")
            ), f"{path.name} imports {name}"
        else:
            assert top in {"__future__", *sys.stdlib_module_names}, (
                f"{path.name} imports third-party {name}"
            )


@pytest.mark.parametrize("path", _files("wire"), ids=lambda p: p.name)
def test_the_wire_imports_only_the_standard_library(path: Path) -> None:
    for name in _third_party_and_stdlib_imports(path):
        top = name.split(".")[0]
        assert top in {"__future__", "fabrichost", *sys.stdlib_module_names}, (
            f"{path.name} imports third-party {name}"
        )


def test_lxml_is_imported_only_by_the_xml_module() -> None:
    users = [
        p.name
        for p in PACKAGE.rglob("*.py")
        if any(n.split(".")[0] == "lxml" for n in _third_party_and_stdlib_imports(p))
    ]
    assert users == ["_xml.py"]
