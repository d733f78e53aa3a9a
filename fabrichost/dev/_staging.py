"""The staged copy of a package: the user's files, copied, with the staged versions written
into the copy's manifests. The user's files are never written.

The copy is checked as the user's package (it is a snapshot of it, so a save that lands while
it is made cannot mix two states), and its problems name the user's files: the copy has the
same lines.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fabrichost.dev._parts import APPLICATION_MANIFEST, SERVICE_MANIFEST
from fabrichost.dev._xmltext import AttributeEdit, EditError, apply_edits
from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest import check_path, load_application_package

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.dev._versions import StagedVersions
    from fabrichost.manifest import ApplicationPackage

# Left out of the copy: byte code, version control and tool caches (nothing a service runs).
COPY_IGNORED: Final = (
    "__pycache__",
    "*.pyc",
    ".git",
    ".hg",
    ".svn",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A checked copy of the user's package at ``folder``, loaded."""

    folder: Path
    package: ApplicationPackage


def snapshot(source: Path, folder: Path) -> Snapshot:
    """Copy the package at ``source`` to ``folder`` (which must not exist) and check it.

    Raises:
        ManifestError: the package's problems, naming the files of ``source``.
    """
    shutil.copytree(source, folder, symlinks=True, ignore=shutil.ignore_patterns(*COPY_IGNORED))
    result = check_path(folder)
    if not result.ok:
        raise ManifestError([_as_user(d, folder, source) for d in result.diagnostics])
    return Snapshot(folder, load_application_package(folder))


def write_versions(snap: Snapshot, versions: StagedVersions) -> None:
    """Write ``versions`` into the copy's manifests."""
    app = snap.package.application
    app_edits = [
        AttributeEdit("ApplicationManifest", "ApplicationTypeVersion", versions.application)
    ]
    for item in app.service_manifest_imports:
        name = item.ref.service_manifest_name
        app_edits.append(
            AttributeEdit(
                "ServiceManifestRef",
                "ServiceManifestVersion",
                versions.service_manifests[name],
                key=("ServiceManifestName", name),
            )
        )
    _edit(snap.folder / APPLICATION_MANIFEST, app_edits)
    for sm_name in snap.package.service_manifests:
        edits = [AttributeEdit("ServiceManifest", "Version", versions.service_manifests[sm_name])]
        edits += [
            AttributeEdit(part.kind.value, "Version", version, key=("Name", part.name))
            for part, version in sorted(versions.parts.items())
            if part.service_manifest == sm_name
        ]
        _edit(snap.folder / sm_name / SERVICE_MANIFEST, edits)


def user_paths(text: str, folder: Path, source: Path) -> str:
    """``text`` (an agent's message about the copy) naming the user's files instead."""
    return text.replace(str(folder), str(source))


def _edit(path: Path, edits: list[AttributeEdit]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
        path.write_text(apply_edits(text, edits), encoding="utf-8")
    except (EditError, UnicodeError) as exc:
        # The model was read from this very file, so only something the checker lets pass
        # and this editor does not read can get here; say which file.
        raise ManifestError(Diagnostic(str(path), None, f"cannot set its versions: {exc}")) from exc


def _as_user(diagnostic: Diagnostic, folder: Path, source: Path) -> Diagnostic:
    return Diagnostic(
        user_paths(diagnostic.file, folder, source),
        diagnostic.line,
        user_paths(diagnostic.message, folder, source),
    )
