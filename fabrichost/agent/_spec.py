"""What the agent needs to activate a service package, resolved from the manifests once.

The activation layer works from these small frozen records rather than from the manifest model,
so that parameter substitution, overrides and path resolution happen exactly once, when an
application is created, and a bad package fails there (changing nothing) instead of at spawn time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

Settings = dict[str, dict[str, str]]  # section -> parameter -> value


class WorkingFolder(enum.StrEnum):
    """ExeHost WorkingFolder: where the entry point's current directory is."""

    WORK = "Work"
    CODE_PACKAGE = "CodePackage"
    CODE_BASE = "CodeBase"


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    program: Path  # resolved: inside the code package folder, or found on PATH if external
    arguments: tuple[str, ...]
    working_folder: WorkingFolder = WorkingFolder.WORK


@dataclass(frozen=True, slots=True)
class CodePackageSpec:
    name: str
    version: str
    folder: Path
    main: ProgramSpec | None  # None when the host kind is unsupported (see ``unsupported``)
    setup: ProgramSpec | None = None
    unsupported: str | None = None  # e.g. "ContainerHost (image nginx)": refused at activation
    console_retention: int = 2
    console_max_bytes: int = 20480 * 1024
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    name: str
    port: int | None
    protocol: str = "tcp"
    type: str = "Internal"
    uri_scheme: str = ""  # with path_suffix: how the endpoint's published address is spelled
    path_suffix: str = ""


@dataclass(frozen=True, slots=True)
class ServiceTypeSpec:
    name: str
    stateful: bool
    implicit_host: bool = False
    has_persisted_state: bool = False


@dataclass(frozen=True, slots=True)
class ServicePackageSpec:
    """One service package of one application, with the application's overrides applied."""

    name: str
    version: str
    code_packages: tuple[CodePackageSpec, ...]
    service_types: tuple[ServiceTypeSpec, ...]
    endpoints: tuple[EndpointSpec, ...] = ()
    settings: dict[str, Settings] = field(default_factory=dict)  # config package -> settings
    # (name, version) of each data package: an upgrade that changes one restarts the package's
    # code packages (they all see its data).
    data_packages: tuple[tuple[str, str], ...] = ()

    def service_type(self, name: str) -> ServiceTypeSpec | None:
        return next((t for t in self.service_types if t.name == name), None)

    @property
    def is_guest(self) -> bool:
        """Guest executables (UseImplicitHost) have no runtime: the process is the instance."""
        return any(t.implicit_host for t in self.service_types)
