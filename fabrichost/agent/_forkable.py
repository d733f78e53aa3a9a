"""Which main entry points a fork server may start: the agent's own Python running a module.

A fork server (``_forkserver``, ``docs/fork-server.md``) is an interpreter that has started
already; it can stand in for a program only when what that program would run is exactly a fresh
``<the agent's python> -m <module> <args>``, started with the same interpreter settings. The
manifest is read as it is (no attribute of our own: the real Service Fabric schema must accept
it). Two shapes are recognised:

* ``<Program>`` resolves to the agent's interpreter (``IsExternalExecutable="true"`` with
  ``python3``, or an absolute path) and ``<Arguments>`` are ``-m <module> [args]``;
* ``<Program>`` is a launcher script, as the sample packages have (``launch.sh``), that is
  ``#!/bin/sh`` (dash), comments and blank lines, and one line
  ``exec python3 -m <module> [words] ["$@"]`` (``python3``/``python`` found on the child's
  ``PATH``, or the interpreter's path, quoted or not). Words are plain: no ``$``, quotes inside,
  globs, redirections or other commands.

Everything else is spawned as before: guest executables (no runtime), another interpreter or
virtual environment, interpreter options (``-u``, ``-X``, ``-O`` …), a script instead of a
module, any other shell or shell syntax, and a code package with a ``SetupEntryPoint`` (it
prepares the package for the main one, e.g. installs what it imports or a ``.pth`` file, which a
pre-warmed interpreter could not honour). The environment decides too: the variables read while
an interpreter starts (``PYTHON*``, locale, ``HOME``, ``TZ``, the loader's ``LD_*`` …) must be the
ones the fork server started with, so servers are keyed by them (:attr:`ForkPlan.key`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.agent._entrypoint import EntryPoint

__all__ = ("ForkPlan", "fork_plan", "interpreter_environment")

_MODULE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_WORD: Final = re.compile(r"[A-Za-z0-9_./:=,+@%-]+")
_EXEC: Final = re.compile(r"exec\s+(.*)")
_LAUNCHER_LIMIT: Final = 4096  # bytes: a launcher is a line or two
# Variables an interpreter (or the C library and loader under it) reads while it starts: a
# fork server started with other values would not be the interpreter the program starts.
_STARTUP_NAMES: Final = frozenset({"HOME", "TZ", "LANG", "LANGUAGE", "GLIBC_TUNABLES"})
_STARTUP_PREFIXES: Final = ("PYTHON", "_PYTHON", "LC_", "LD_", "MALLOC_")


@dataclass(frozen=True, slots=True)
class ForkPlan:
    """How a fork server runs an entry point: ``<interpreter> -m <module> <args>``.

    ``argv0`` is the interpreter as the program named it (``sys.orig_argv[0]``); ``shell_pwd``
    says a ``/bin/sh`` launcher stood between, which exports ``PWD``.
    """

    interpreter: str
    argv0: str
    module: str
    args: tuple[str, ...]
    shell_pwd: bool
    startup_env: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Entry points with the same key can share one fork server."""
        return (self.interpreter, self.startup_env)


def interpreter_environment(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The variables of ``env`` an interpreter reads while it starts, sorted."""
    return tuple(
        sorted(
            (k, v) for k, v in env.items() if k in _STARTUP_NAMES or k.startswith(_STARTUP_PREFIXES)
        )
    )


def _is_agent_python(path: str | None) -> bool:
    """``path`` is this interpreter, in this interpreter's folder (so the same venv)."""
    if path is None:
        return False
    own = Path(sys.executable)
    candidate = Path(path)
    try:
        return candidate.parent.resolve() == own.parent.resolve() and os.path.samefile(
            candidate, own
        )
    except OSError:
        return False


def _module_call(words: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """``-m <module> [args]`` -> (module, args)."""
    if len(words) < 2 or words[0] != "-m" or not _MODULE.fullmatch(words[1]):
        return None
    return words[1], tuple(words[2:])


def _dash() -> bool:
    return os.path.basename(os.path.realpath("/bin/sh")) == "dash"


def _launcher(path: Path) -> tuple[str, list[str], bool] | None:
    """A recognised launcher's (interpreter word, words after it, passes "$@")."""
    try:
        with path.open("rb") as f:
            data = f.read(_LAUNCHER_LIMIT + 1)
        text = data.decode()
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if len(data) > _LAUNCHER_LIMIT or not lines or lines[0].rstrip() != "#!/bin/sh":
        return None
    commands = [ln.strip() for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("#")]
    if len(commands) != 1 or not (match := _EXEC.fullmatch(commands[0])):
        return None
    line = match.group(1)
    passes_all = line.endswith(' "$@"')
    if passes_all:
        line = line[: -len(' "$@"')]
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if not words or not all(_WORD.fullmatch(w) for w in words[1:]):
        return None
    # The interpreter word may be quoted (a path with no shell syntax inside); nothing else is.
    rest = line.split(None, 1)[1] if " " in line.strip() else ""
    if any(c in rest for c in "\"'\\$`"):
        return None
    return words[0], words[1:], passes_all


def fork_plan(entry: EntryPoint, env: Mapping[str, str], *, has_setup: bool) -> ForkPlan | None:
    """How a fork server can run ``entry`` (a runtime host's main entry point), or None."""
    if has_setup:
        return None
    program = Path(entry.program)
    if not program.is_absolute():
        program = entry.working_dir / program
    startup = interpreter_environment(env)
    direct = _module_call(list(entry.arguments))
    if direct is not None and _is_agent_python(str(program)):
        module, args = direct
        return ForkPlan(str(program), str(program), module, args, False, startup)
    if not _dash() or (found := _launcher(program)) is None:
        return None
    interpreter_word, words, passes_all = found
    if interpreter_word.startswith("/"):
        interpreter = interpreter_word
    elif interpreter_word in ("python3", "python"):
        interpreter = shutil.which(interpreter_word, path=env.get("PATH", "")) or ""
    else:
        return None
    call = _module_call(words)
    if call is None or not _is_agent_python(interpreter):
        return None
    module, args = call
    if passes_all:
        args = (*args, *entry.arguments)
    return ForkPlan(interpreter, interpreter_word, module, args, True, startup)
