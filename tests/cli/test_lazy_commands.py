"""Commands are imported on first use: the table that says where each lives stays true, and a
command that needs no agent loads none of it."""

from __future__ import annotations

import importlib
import subprocess
import sys

from fabrichost.cli._group import COMMAND_MODULES, cli


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    modules = set(COMMAND_MODULES.values())
    for module in sorted(modules):
        importlib.import_module(f"fabrichost.cli.{module}")
    assert set(cli.commands) == set(COMMAND_MODULES), "a command is missing from COMMAND_MODULES"
    for name, command in cli.commands.items():
        assert command.callback is not None
        assert command.callback.__module__ == f"fabrichost.cli.{COMMAND_MODULES[name]}", name


def _modules_loaded_by(*argv: str) -> set[str]:
    code = (
        "import sys\nfrom fabrichost.cli import main\n"
        f"main({list(argv)!r})\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_version_loads_no_command() -> None:
    loaded = _modules_loaded_by("--version")
    heavy = {"fabrichost.client", "fabrichost.agent", "fabrichost.api", "httpx", "lxml", "rich"}
    assert not heavy & loaded, heavy & loaded


def test_a_query_loads_neither_the_agent_nor_its_http_server() -> None:
    loaded = _modules_loaded_by("status", "--state-dir", "/nonexistent/fabrichost-state")
    heavy = {"fabrichost.agent", "fabrichost.api", "starlette", "uvicorn", "lxml"}
    assert not heavy & loaded, heavy & loaded
