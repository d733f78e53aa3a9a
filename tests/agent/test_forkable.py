"""Which main entry points a fork server may start (``_forkable``): the manifest as it is."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fabrichost.agent._entrypoint import EntryPoint
from fabrichost.agent._forkable import fork_plan, interpreter_environment

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = str(Path(sys.executable).parent)
ENV = {"PATH": os.pathsep.join((PYTHON_DIR, "/usr/bin:/bin")), "HOME": "/home/me", "X": "1"}
DASH = os.path.basename(os.path.realpath("/bin/sh")) == "dash"
needs_dash = pytest.mark.skipif(not DASH, reason="launchers are recognised with dash only")


def _launcher(tmp_path: Path, text: str) -> EntryPoint:
    path = tmp_path / "launch.sh"
    path.write_text(text)
    path.chmod(0o755)
    return EntryPoint(path, ("--port", "80"), tmp_path)


@needs_dash
@pytest.mark.parametrize(
    "package", ["MyApp/MyServicePackage/MyCodePackage", "SingletonJobs/JobsPackage/JobsCode"]
)
def test_the_sample_launchers_are_forked(package: str) -> None:
    folder = REPO / "manifests" / package
    plan = fork_plan(EntryPoint(folder / "launch.sh", ("a",), folder), ENV, has_setup=False)
    assert plan is not None
    assert plan.module.startswith("sample_services.")
    assert plan.args == ("a",)  # "$@"
    assert plan.argv0 == "python3"
    assert os.path.samefile(plan.interpreter, sys.executable)
    assert plan.shell_pwd


@needs_dash
@pytest.mark.parametrize(
    "line",
    [
        'exec python3 -m pkg.mod "$@"',
        "exec python -m pkg.mod --flag=1",
        f'exec "{sys.executable}" -m pkg.mod "$@"',
        f"exec {sys.executable} -m pkg.mod",
    ],
)
def test_a_launcher_that_execs_the_agents_python_on_a_module_is_forked(
    tmp_path: Path, line: str
) -> None:
    entry = _launcher(tmp_path, f"#!/bin/sh\n# a comment\n\n{line}\n")
    plan = fork_plan(entry, ENV, has_setup=False)
    assert plan is not None
    assert plan.module == "pkg.mod"
    passes_all = line.endswith('"$@"')
    fixed = ("--flag=1",) if "--flag" in line else ()
    assert plan.args == fixed + (("--port", "80") if passes_all else ())


@pytest.mark.parametrize(
    "text",
    [
        '#!/bin/bash\nexec python3 -m pkg "$@"\n',  # another shell
        '#!/bin/sh\nset -e\nexec python3 -m pkg "$@"\n',  # more than the one command
        '#!/bin/sh\nexec python3 -u -m pkg "$@"\n',  # an interpreter option
        '#!/bin/sh\nexec python3 main.py "$@"\n',  # a script, not a module
        '#!/bin/sh\nexec python3 -m pkg "$@" > out.log\n',  # a redirection
        '#!/bin/sh\nexec python3 -m pkg $EXTRA "$@"\n',  # an expansion
        "#!/bin/sh\nexec python3 -m pkg; rm -rf x\n",  # another command
        '#!/bin/sh\nexec python3.9 -m pkg "$@"\n',  # another interpreter
        '#!/bin/sh\nexec /usr/bin/python3 -m pkg "$@"\n',  # not the agent's (venv) python
        '#!/bin/sh\nexec env python3 -m pkg "$@"\n',
        '#!/bin/sh\nexec python3 -m "pkg" "$@"\n',  # quotes beyond the interpreter's
        '#!/bin/sh\npython3 -m pkg "$@"\n',  # no exec: the shell stays the process
    ],
)
def test_anything_else_is_spawned(tmp_path: Path, text: str) -> None:
    assert fork_plan(_launcher(tmp_path, text), ENV, has_setup=False) is None


def test_a_code_package_with_a_setup_entry_point_is_spawned(tmp_path: Path) -> None:
    entry = _launcher(tmp_path, '#!/bin/sh\nexec python3 -m pkg "$@"\n')
    assert fork_plan(entry, ENV, has_setup=True) is None


def test_the_agents_python_as_the_program_with_a_module_is_forked(tmp_path: Path) -> None:
    entry = EntryPoint(Path(sys.executable), ("-m", "pkg.mod", "x"), tmp_path)
    plan = fork_plan(entry, ENV, has_setup=False)
    assert plan is not None
    assert (plan.module, plan.args, plan.shell_pwd) == ("pkg.mod", ("x",), False)
    assert plan.argv0 == plan.interpreter == sys.executable
    for arguments in (("-u", "-m", "pkg"), ("main.py",), ("-m",), ("-m", "not a module")):
        entry = EntryPoint(Path(sys.executable), arguments, tmp_path)
        assert fork_plan(entry, ENV, has_setup=False) is None, arguments


def test_servers_are_keyed_by_what_an_interpreter_reads_while_it_starts(tmp_path: Path) -> None:
    entry = EntryPoint(Path(sys.executable), ("-m", "pkg"), tmp_path)
    base = fork_plan(entry, ENV, has_setup=False)
    other_values = fork_plan(entry, {**ENV, "X": "2", "Fabric_NodeName": "n"}, has_setup=False)
    unbuffered = fork_plan(entry, {**ENV, "PYTHONUNBUFFERED": "1"}, has_setup=False)
    assert base is not None
    assert other_values is not None
    assert unbuffered is not None
    assert base.key == other_values.key
    assert base.key != unbuffered.key
    env = {"PYTHONPATH": "a", "LC_ALL": "C", "LANG": "C", "TZ": "UTC", "LD_PRELOAD": "x", "Y": ""}
    assert [k for k, _ in interpreter_environment(env)] == [
        "LANG",
        "LC_ALL",
        "LD_PRELOAD",
        "PYTHONPATH",
        "TZ",
    ]
