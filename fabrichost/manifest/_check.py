"""``manifest check``: check a file on its own or a folder as an application package.

Usage::

    result = check_path(Path("manifests/MyApp"))
    if not result.ok:
        for diagnostic in result.diagnostics:
            print(diagnostic)            # file:line: message

A file is checked alone (its kind chosen by its root element; no other file is read). A folder
is loaded as an application package and instantiated with the default parameter values, so
service package folders, programs and config overrides are checked too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest._files import Document, document_from_node
from fabrichost.manifest._instance import instantiate
from fabrichost.manifest._model import (
    ApplicationManifest,
    ApplicationParameters,
    ServiceManifest,
)
from fabrichost.manifest._package import load_application_package
from fabrichost.manifest._schema import ROOTS
from fabrichost.manifest._xml import FABRIC_NAMESPACE, read_xml

if TYPE_CHECKING:
    from os import PathLike

PACKAGE: Final = "ApplicationPackage"
UNKNOWN: Final = "unknown"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What checking one path found.

    ``kind`` is the root element of a file (``ApplicationManifest``, ``ServiceManifest``,
    ``Settings``, ``Application``), ``ApplicationPackage`` for a folder, or ``unknown``;
    ``summary`` says what was found when it is fine (``ApplicationManifest MyAppType 1.0.0``).
    """

    path: str
    kind: str
    diagnostics: tuple[Diagnostic, ...]
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def to_json(self) -> dict[str, object]:
        """The ``--json`` form: path, kind, ok and errors as file/line/message objects."""
        return {
            "path": self.path,
            "kind": self.kind,
            "ok": self.ok,
            "errors": [
                {"file": d.file, "line": d.line, "message": d.message} for d in self.diagnostics
            ],
        }


def check_path(path: str | PathLike[str]) -> CheckResult:
    """Check a manifest file on its own, or a folder as an application package.

    Never raises for a bad file or package: problems are returned in the result.
    """
    target = Path(path)
    if target.is_dir():
        return _check_package(target)
    if not target.exists():
        return CheckResult(
            str(target), UNKNOWN, (Diagnostic(str(target), None, "no such file or folder"),)
        )
    return _check_file(target)


def _check_file(path: Path) -> CheckResult:
    file = str(path)
    try:
        root = read_xml(path)
    except ManifestError as exc:
        return CheckResult(file, UNKNOWN, exc.diagnostics)
    kind = root.name if root.namespace == FABRIC_NAMESPACE and root.name in ROOTS else UNKNOWN
    try:
        document = document_from_node(root, file)
    except ManifestError as exc:
        return CheckResult(file, kind, exc.diagnostics)
    return CheckResult(file, kind, (), f"{kind} {_describe(document)}")


def _describe(document: Document) -> str:
    if isinstance(document, ApplicationManifest):
        return f"{document.application_type_name} {document.application_type_version}"
    if isinstance(document, ServiceManifest):
        return f"{document.name} {document.version}"
    if isinstance(document, ApplicationParameters):
        return f"{document.application_name}, {len(document.parameters)} parameters"
    return f"{len(document.sections)} sections"


def _check_package(folder: Path) -> CheckResult:
    try:
        package = load_application_package(folder)
        instantiate(package)
    except ManifestError as exc:
        return CheckResult(str(folder), PACKAGE, exc.diagnostics)
    app = package.application
    count = len(package.service_manifests)
    return CheckResult(
        str(folder),
        PACKAGE,
        (),
        f"{PACKAGE} {app.application_type_name} {app.application_type_version}, "
        f"{count} service package{'s' if count != 1 else ''}",
    )
