"""Loading one manifest, settings or parameter file on its own.

Usage::

    manifest = load_service_manifest(Path("MyServicePkg/ServiceManifest.xml"))
    name, values = parse_parameters_file(Path("ApplicationParameters/Local.xml"))
    document = load_document(Path("anything.xml"))   # kind chosen by the root element

Each loader runs, in order: safe parsing, the structure check (``_schema``), building the model,
and the file-level semantic checks (``_validate``); an application manifest is also instantiated
with its default parameter values, which is how Service Fabric checks it when provisioning.
Each stage reports every problem it finds; a later stage runs only on a clean earlier one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest._build import (
    build_application_manifest,
    build_application_parameters,
    build_service_manifest,
    build_settings,
)
from fabrichost.manifest._instance import instantiate
from fabrichost.manifest._model import (
    ApplicationManifest,
    ApplicationParameters,
    ServiceManifest,
    Settings,
)
from fabrichost.manifest._schema import ROOTS
from fabrichost.manifest._schema_rules import check_element
from fabrichost.manifest._validate import (
    validate_application_manifest,
    validate_application_parameters,
    validate_service_manifest,
    validate_settings,
)
from fabrichost.manifest._xml import FABRIC_NAMESPACE, read_xml

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from fabrichost.manifest._xml import Node

Document = ApplicationManifest | ServiceManifest | Settings | ApplicationParameters
_D = TypeVar("_D", ApplicationManifest, ServiceManifest, Settings, ApplicationParameters)


def _application(root: Node, file: str) -> ApplicationManifest:
    manifest = build_application_manifest(root, file)
    _raise(validate_application_manifest(manifest))
    instantiate(manifest)  # the defaults must make a valid application, as at provisioning
    return manifest


def _service(root: Node, file: str) -> ServiceManifest:
    manifest = build_service_manifest(root, file)
    _raise(validate_service_manifest(manifest))
    return manifest


def _settings(root: Node, file: str) -> Settings:
    settings = build_settings(root, file)
    _raise(validate_settings(settings))
    return settings


def _parameters(root: Node, file: str) -> ApplicationParameters:
    parameters = build_application_parameters(root, file)
    _raise(validate_application_parameters(parameters))
    return parameters


_LOADERS: Final[dict[str, Callable[[Node, str], Document]]] = {
    "ApplicationManifest": _application,
    "ServiceManifest": _service,
    "Settings": _settings,
    "Application": _parameters,
}


def _raise(diagnostics: list[Diagnostic]) -> None:
    if diagnostics:
        raise ManifestError(diagnostics)


# Newer Visual Studio Service Fabric projects keep their services in StartupServices.xml (root
# StartupServicesManifest), with parameter files in StartupServiceParameters/ (root
# StartupServices), beside ApplicationPackageRoot. Only Visual Studio's deployment tooling reads
# them: they are not part of the application package and the schema declares neither root.
_STARTUP_SERVICES: Final = {
    "StartupServicesManifest": "a Visual Studio startup services file (StartupServices.xml)",
    "StartupServices": "a Visual Studio startup services parameter file "
    "(StartupServiceParameters/*.xml)",
}


def _startup_services(root: Node, file: str) -> Diagnostic:
    return Diagnostic(
        file,
        root.line,
        f"{_STARTUP_SERVICES[root.name]}: only Visual Studio's deployment tooling reads it; it "
        "is not part of an application package and the Service Fabric schema does not declare "
        "it. fabrichost does not read it: declare the services in ApplicationManifest.xml under "
        "<DefaultServices> (their parameters under <Parameters>), or create them after "
        "deploying with 'fabrichost service create'",
    )


def check_root(root: Node, file: str, expected: str | None = None) -> str:
    """The kind of document ``root`` starts (its root element name), after the structure check.

    Raises:
        ManifestError: the root is not a known kind (or not ``expected``), or the structure
            check found problems.
    """
    kinds = (expected,) if expected else tuple(ROOTS)
    if root.namespace == FABRIC_NAMESPACE and root.name in _STARTUP_SERVICES:
        raise ManifestError(_startup_services(root, file))
    if root.namespace != FABRIC_NAMESPACE or root.name not in kinds:
        foreign = root.namespace and root.namespace != FABRIC_NAMESPACE
        where = f"{{{root.namespace}}}" if foreign else ""
        raise ManifestError(
            Diagnostic(
                file,
                root.line,
                f"root element {where}{root.name} is not one of {', '.join(kinds)} "
                f"in namespace {FABRIC_NAMESPACE}",
            )
        )
    _raise(check_element(root, ROOTS[root.name], file))
    return root.name


def document_from_node(root: Node, file: str) -> Document:
    """Check and build the document ``root`` holds; see :func:`load_document`."""
    return _LOADERS[check_root(root, file)](root, file)


def load_document(path: Path) -> Document:
    """Load any of the four file kinds, chosen by the root element.

    Raises:
        ManifestError: every problem of the file (unknown root, structure, semantics).
    """
    return document_from_node(read_xml(path), str(path))


def _load(path: Path, kind: type[_D], root_name: str) -> _D:
    root, file = read_xml(path), str(path)
    document = _LOADERS[check_root(root, file, root_name)](root, file)
    assert isinstance(document, kind)
    return document


def load_application_manifest(path: Path) -> ApplicationManifest:
    """Load and check an ``ApplicationManifest.xml`` on its own (defaults instantiated)."""
    return _load(path, ApplicationManifest, "ApplicationManifest")


def load_service_manifest(path: Path) -> ServiceManifest:
    """Load and check a ``ServiceManifest.xml`` on its own (no folders looked at)."""
    return _load(path, ServiceManifest, "ServiceManifest")


def load_settings(path: Path) -> Settings:
    """Load and check a config package's ``Settings.xml``."""
    return _load(path, Settings, "Settings")


def load_application_parameters(path: Path) -> ApplicationParameters:
    """Load and check an application parameter file (``<Application Name=…>``)."""
    return _load(path, ApplicationParameters, "Application")


def parse_parameters_file(path: Path) -> tuple[str, dict[str, str]]:
    """The application name and parameter values of an application parameter file."""
    parameters = load_application_parameters(path)
    return parameters.application_name, parameters.as_dict()
