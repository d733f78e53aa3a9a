"""What an application upgrade changes, package by package: a pure diff of two resolved versions.

Service Fabric restarts, on each node, only what a new version changed: a code package whose
``Version`` (or how it is launched) differs; a config package whose settings differ is handed to
the running hosts that take config changes (the others restart); a data package of another
version restarts every code package of its service package (they all see its data). A package
whose shape changed (its service types, endpoints or set of code packages) is activated again
whole. :func:`plan_upgrade` says which; the same function read backwards (new to old) is the
rollback's plan. :func:`check_services` refuses a version the running services cannot run in.
:func:`kept_versions` lists the code and data packages whose version the new one keeps (their
files must be the same: Service Fabric refuses a package version whose content changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fabrichost.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from fabrichost.agent._spec import CodePackageSpec, ProgramSpec, ServicePackageSpec


@dataclass(frozen=True, slots=True)
class PackageChange:
    """What changed in one service package between two versions."""

    package: str
    #: Code packages whose version or launch changed: restarted.
    code_packages: tuple[str, ...] = ()
    #: Config packages whose settings changed: delivered to hosts that take them.
    config_packages: tuple[str, ...] = ()
    #: Data packages added, removed or of another version: every code package restarts.
    data_packages: tuple[str, ...] = ()
    #: Why the whole package is activated again ("" when it is not): its shape changed.
    whole: str = ""

    def restarted(self, all_code_packages: Iterable[str]) -> frozenset[str]:
        """The code packages restarted whatever their hosts take: the changed ones, or all of
        them when a data package changed."""
        if self.data_packages or self.whole:
            return frozenset(all_code_packages)
        return frozenset(self.code_packages)

    def describe(self) -> str:
        """One line: ``MyPkg: code MyCode; config Config; data Data`` (or why it is whole)."""
        if self.whole:
            return f"{self.package}: activated again ({self.whole})"
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("code", self.code_packages),
                ("config", self.config_packages),
                ("data", self.data_packages),
            )
            if names
        ]
        return f"{self.package}: {'; '.join(parts)}"


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """The changed service packages of an application, by name (unchanged ones are absent)."""

    changes: Mapping[str, PackageChange]

    def change(self, package: str) -> PackageChange | None:
        return self.changes.get(package)

    def describe(self) -> str:
        if not self.changes:
            return "no service package changed"
        return "; ".join(c.describe() for c in self.changes.values())


def _program_key(program: ProgramSpec | None, folder: object) -> tuple[object, ...]:
    """How a program is launched, with its code package's folder left out: every version has
    a folder of its own in the image store, which alone is no change."""
    if program is None:
        return ()
    path = str(program.program)
    prefix = f"{folder}/"
    return (
        path.removeprefix(prefix),
        program.arguments,
        program.working_folder,
    )


def _launch_key(cp: CodePackageSpec) -> tuple[object, ...]:
    return (
        cp.version,
        _program_key(cp.main, cp.folder),
        _program_key(cp.setup, cp.folder),
        cp.unsupported,
        cp.environment,
        cp.console_retention,
        cp.console_max_bytes,
    )


def _shape(package: ServicePackageSpec) -> tuple[object, ...]:
    return (
        tuple(sorted(package.service_types, key=lambda t: t.name)),
        tuple(sorted(package.endpoints, key=lambda e: e.name)),
        tuple(sorted(cp.name for cp in package.code_packages)),
    )


def _diff_package(old: ServicePackageSpec, new: ServicePackageSpec) -> PackageChange | None:
    name = new.name
    old_shape, new_shape = _shape(old), _shape(new)
    if old_shape != new_shape:
        what = [
            label
            for label, a, b in zip(
                ("service types", "endpoints", "code packages"), old_shape, new_shape, strict=True
            )
            if a != b
        ]
        return PackageChange(name, whole=f"its {' and '.join(what)} changed")
    old_cps = {cp.name: cp for cp in old.code_packages}
    code = tuple(
        cp.name for cp in new.code_packages if _launch_key(cp) != _launch_key(old_cps[cp.name])
    )
    config = tuple(
        sorted(
            p
            for p in set(old.settings) | set(new.settings)
            if old.settings.get(p) != new.settings.get(p)
        )
    )
    old_data, new_data = dict(old.data_packages), dict(new.data_packages)
    data = tuple(
        sorted(p for p in set(old_data) | set(new_data) if old_data.get(p) != new_data.get(p))
    )
    if not (code or config or data):
        return None
    return PackageChange(name, code, config, data)


def plan_upgrade(
    old: Mapping[str, ServicePackageSpec], new: Mapping[str, ServicePackageSpec]
) -> UpgradePlan:
    """What moving an application from packages ``old`` to ``new`` restarts or delivers.

    A package only in ``new`` has nothing running yet (a service created later activates it);
    a package only in ``old`` runs no service once :func:`check_services` has passed.
    """
    changes: dict[str, PackageChange] = {}
    for name, package in new.items():
        before = old.get(name)
        if before is None:
            continue
        change = _diff_package(before, package)
        if change is not None:
            changes[name] = change
    return UpgradePlan(changes)


@dataclass(frozen=True, slots=True)
class RunningService:
    """What the compatibility check needs of a running service."""

    name: str
    type_name: str
    stateful: bool
    package: str


def check_services(
    services: Iterable[RunningService],
    new: Mapping[str, ServicePackageSpec],
    version: str,
) -> None:
    """Refuse a ``version`` whose packages cannot run the application's services: a service
    type that is gone, of the other kind, or moved to another service package.

    Raises:
        ApiError: naming every service that could not run, with the reason.
    """
    problems: list[str] = []
    for service in services:
        found = next(
            ((p, t) for p in new.values() if (t := p.service_type(service.type_name))), None
        )
        if found is None:
            problems.append(f"{service.name}: service type {service.type_name} is gone")
            continue
        package, type_spec = found
        if type_spec.stateful != service.stateful:
            kind = "stateful" if type_spec.stateful else "stateless"
            problems.append(f"{service.name}: service type {service.type_name} is {kind} now")
        elif package.name != service.package:
            problems.append(
                f"{service.name}: service type {service.type_name} moved from service package "
                f"{service.package} to {package.name}"
            )
    if problems:
        raise ApiError(
            f"version {version} cannot run the application's services: " + "; ".join(problems),
            code="FABRIC_E_INVALID_ARGUMENT",
        )


@dataclass(frozen=True, slots=True)
class KeptVersion:
    """A code or data package whose version both versions of the application name, with the
    folders of its two copies in the image store."""

    what: str  # "MyPkg code package MyCode 1.0.0"
    old_folder: Path
    new_folder: Path


def kept_versions(
    old: Mapping[str, ServicePackageSpec], new: Mapping[str, ServicePackageSpec]
) -> list[KeptVersion]:
    """The code and data packages of ``new`` at the version they have in ``old``, kept in
    another folder (another provisioned copy): an upgrade restarts nothing for them, so their
    files must be what runs now."""
    kept: list[KeptVersion] = []
    for name, package in new.items():
        before = old.get(name)
        if before is None or not before.code_packages or not package.code_packages:
            continue
        old_cps = {cp.name: cp for cp in before.code_packages}
        for cp in package.code_packages:
            was = old_cps.get(cp.name)
            if was is not None and was.version == cp.version and was.folder != cp.folder:
                kept.append(
                    KeptVersion(
                        f"{name} code package {cp.name} {cp.version}", was.folder, cp.folder
                    )
                )
        # A data package is the folder of its name beside the code packages' folders.
        old_root, new_root = (
            before.code_packages[0].folder.parent,
            package.code_packages[0].folder.parent,
        )
        old_data = dict(before.data_packages)
        for data, version in package.data_packages:
            if old_data.get(data) == version and old_root != new_root:
                kept.append(
                    KeptVersion(
                        f"{name} data package {data} {version}", old_root / data, new_root / data
                    )
                )
    return kept
