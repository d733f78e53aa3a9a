"""Loading an application package folder.

Usage::

    package = load_application_package(Path("manifests/MyApp"))
    package.service_manifests["MyServicePackage"].code_packages
    program = program_path(package, "MyServicePackage", "Code")   # Path, or None if external

Layout, as Service Fabric expects it::

    ApplicationManifest.xml
    <ServiceManifest Name>/ServiceManifest.xml
    <ServiceManifest Name>/<CodePackage Name>/<Program>
    <ServiceManifest Name>/<ConfigPackage Name>/Settings.xml      (parsed when present)
    <ServiceManifest Name>/<DataPackage Name>/

Every file's problems and every package-level problem are collected and raised together.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest._files import (
    load_application_manifest,
    load_service_manifest,
    load_settings,
)
from fabrichost.manifest._model import ApplicationPackage, ExeHost
from fabrichost.manifest._paths import (
    PathEscape,
    check_inside,
    is_dir,
    is_file,
    resolve_inside,
)
from fabrichost.manifest._validate import hosts_container, validate_package

if TYPE_CHECKING:
    from collections.abc import Callable
    from os import PathLike

    from fabrichost.manifest._model import ApplicationManifest, ServiceManifest, Settings

_T = TypeVar("_T")
APPLICATION_MANIFEST = "ApplicationManifest.xml"
SERVICE_MANIFEST = "ServiceManifest.xml"
SETTINGS = "Settings.xml"


class _Collector:
    """Runs loaders, keeping their ManifestErrors' diagnostics instead of stopping."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.diagnostics: list[Diagnostic] = []

    def run(self, loader: Callable[[Path], _T], path: Path) -> _T | None:
        try:
            # A manifest or settings file that is a link to elsewhere would make the package
            # (and its image store copy) depend on a file outside it.
            check_inside(self.root, path)
        except PathEscape as exc:
            self.add(str(path), None, f"links outside the package: {exc}")
            return None
        try:
            return loader(path)
        except ManifestError as exc:
            self.diagnostics.extend(exc.diagnostics)
            return None

    def add(self, file: str, line: int | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(file, line, message))


def load_application_package(path: str | PathLike[str]) -> ApplicationPackage:
    """Load the application package folder at ``path`` and check it as a whole.

    Raises:
        ManifestError: every problem found in every file of the package, together.
    """
    root = Path(path)
    found = _Collector(root)
    app_file = root / APPLICATION_MANIFEST
    if not is_file(app_file):
        # A Visual Studio project folder holds the package in ApplicationPackageRoot, beside
        # StartupServices.xml and the parameter folders.
        inner = root / "ApplicationPackageRoot"
        hint = (
            f"; this looks like a Visual Studio project: the package is {inner}"
            if is_file(inner / APPLICATION_MANIFEST)
            else ""
        )
        raise ManifestError(
            Diagnostic(
                str(root),
                None,
                f"not an application package: {APPLICATION_MANIFEST} not found{hint}",
            )
        )
    application = found.run(load_application_manifest, app_file)
    if application is None:
        raise ManifestError(found.diagnostics)
    manifests: dict[str, ServiceManifest] = {}
    settings: dict[str, MappingProxyType[str, Settings]] = {}
    for item in application.service_manifest_imports:
        name = item.ref.service_manifest_name
        manifest = _service_manifest(found, root, application, name, item.ref.line)
        if manifest is not None:
            manifests[name] = manifest
            settings[name] = MappingProxyType(_package_folders(found, root / name, manifest))
    found.diagnostics += validate_package(application, manifests)
    if found.diagnostics:
        raise ManifestError(found.diagnostics)
    return ApplicationPackage(
        root, application, MappingProxyType(manifests), MappingProxyType(settings)
    )


def _service_manifest(
    found: _Collector, root: Path, application: ApplicationManifest, name: str, line: int
) -> ServiceManifest | None:
    folder = root / name
    file = folder / SERVICE_MANIFEST
    try:
        resolve_inside(root, name)
    except PathEscape as exc:
        found.add(application.file, line, f"ServiceManifestRef '{name}': {exc}")
        return None
    if not is_file(file):
        found.add(
            application.file,
            line,
            f"ServiceManifestRef '{name}': {file} not found (a service package lives in a "
            "folder named after its ServiceManifest Name)",
        )
        return None
    return found.run(load_service_manifest, file)


def _package_folders(
    found: _Collector, folder: Path, manifest: ServiceManifest
) -> dict[str, Settings]:
    """Check the code/config/data folders and programs; return the parsed Settings.xml files."""
    settings: dict[str, Settings] = {}
    kinds = (
        ("code package", manifest.code_packages),
        ("config package", manifest.config_packages),
        ("data package", manifest.data_packages),
    )
    for kind, packages in kinds:
        for package in packages:
            sub = _folder(found, folder, manifest, kind, package.name, package.line)
            if sub is None:
                continue
            if kind == "config package" and is_file(sub / SETTINGS):
                loaded = found.run(load_settings, sub / SETTINGS)
                if loaded is not None:
                    settings[package.name] = loaded
    for code in manifest.code_packages:
        for host in (code.setup_entry_point, code.entry_point):
            if isinstance(host, ExeHost):
                _program(found, folder / code.name, manifest, host)
    return settings


def _folder(
    found: _Collector, folder: Path, manifest: ServiceManifest, kind: str, name: str, line: int
) -> Path | None:
    try:
        sub = resolve_inside(folder, name)
    except PathEscape as exc:
        found.add(manifest.file, line, f"{kind} '{name}': {exc}")
        return None
    if is_dir(sub):
        return sub
    if not (kind == "code package" and hosts_container(manifest, name)):
        found.add(manifest.file, line, f"{kind} '{name}': folder {sub} not found")
    return None


def _program(
    found: _Collector, code_folder: Path, manifest: ServiceManifest, host: ExeHost
) -> None:
    if host.is_external_executable or not is_dir(code_folder):
        return  # looked up on PATH at activation / missing folder already reported
    try:
        path = resolve_inside(code_folder, host.program)
    except PathEscape as exc:
        found.add(manifest.file, host.line, f"Program: {exc}")
        return
    if not is_file(path):
        found.add(manifest.file, host.line, f"Program {host.program!r} not found: tried {path}")


def program_path(
    package: ApplicationPackage, service_manifest: str, code_package: str, *, setup: bool = False
) -> Path | None:
    """The file a code package's entry point runs, or None when it is looked up on PATH.

    Raises:
        KeyError: no such service manifest or code package.
        ValueError: the code package's entry point (or setup entry point) is not an ExeHost.
        ManifestError: the program path leaves the code package folder.
    """
    manifest = package.service_manifests[service_manifest]
    code = manifest.code_package(code_package)
    if code is None:
        raise KeyError(f"{service_manifest} has no code package {code_package!r}")
    host = code.setup_entry_point if setup else code.entry_point
    if not isinstance(host, ExeHost):
        raise ValueError(f"{service_manifest}/{code_package} has no ExeHost entry point here")
    if host.is_external_executable:
        return None
    folder = package.root / service_manifest / code_package
    try:
        check_inside(package.root, folder)
        return resolve_inside(folder, host.program)
    except PathEscape as exc:
        raise ManifestError(Diagnostic(manifest.file, host.line, f"Program: {exc}")) from exc
