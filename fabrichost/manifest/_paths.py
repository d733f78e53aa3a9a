"""Resolving paths named by manifests without letting them leave their package.

Usage::

    problem = program_problem("..\\\\evil.sh")          # lexical check, no IO
    path = resolve_inside(code_folder, "bin/server.sh")   # raises PathEscape

Service Fabric packages are often written on Windows, so ``\\`` counts as a separator, and the
program text is trimmed of quotes as Service Fabric does before combining it with the folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Final

_DRIVE: Final = re.compile(r"^[A-Za-z]:")


class PathEscape(ValueError):
    """A manifest path that is empty, absolute, or leads outside its folder."""


def clean_program(program: str) -> str:
    """The program text as Service Fabric uses it: trimmed of whitespace and quotes."""
    return program.strip().strip("'\"").strip()


def program_problem(program: str) -> str | None:
    """Why ``program`` cannot name a file inside its package folder, judged without IO."""
    cleaned = clean_program(program).replace("\\", "/")
    if cleaned.startswith("/") or _DRIVE.match(cleaned):
        return f"{program!r} is an absolute path; it must be relative to its package folder"
    if ".." in PurePosixPath(cleaned).parts:
        return f"{program!r} uses '..' to leave its package folder"
    return None


def resolve_inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing anything that ends up outside ``folder``.

    Symlinks are followed: a link inside the folder that points outside it is refused too.

    Raises:
        PathEscape: the path is empty, absolute, uses ``..``, or resolves outside ``folder``.
    """
    cleaned = clean_program(relative).replace("\\", "/")
    if not cleaned:
        raise PathEscape("the path is empty")
    problem = program_problem(relative)
    if problem:
        raise PathEscape(problem)
    candidate = folder / PurePosixPath(cleaned)
    check_inside(folder, candidate)
    return candidate


def check_inside(folder: Path, candidate: Path) -> None:
    """Raise PathEscape when ``candidate`` (symlinks followed) is not inside ``folder``."""
    try:
        real = candidate.resolve()
        inside = real.is_relative_to(folder.resolve())
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise PathEscape(f"{candidate} cannot be resolved: {exc}") from exc
    if not inside:
        raise PathEscape(f"{candidate} resolves to {real}, outside {folder}")


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for a path that cannot even be looked up (name too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a path that cannot even be looked up (name too long)."""
    try:
        return path.is_dir()
    except OSError:
        return False
