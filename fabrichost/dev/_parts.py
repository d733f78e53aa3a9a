"""Which part of an application package a changed file belongs to (pure: no IO).

Service Fabric's package layout::

    ApplicationManifest.xml                          the application manifest
    <ServiceManifest>/ServiceManifest.xml            a service manifest
    <ServiceManifest>/<CodePackage>/...              a code package's files
    <ServiceManifest>/<ConfigPackage>/...            a config package's files (Settings.xml)
    <ServiceManifest>/<DataPackage>/...              a data package's files

Anything else (a README beside the manifests, a folder no manifest names) is not part of what
is deployed, so a change to it changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from fabrichost.manifest import ApplicationPackage

APPLICATION_MANIFEST: Final = "ApplicationManifest.xml"
SERVICE_MANIFEST: Final = "ServiceManifest.xml"


class PackageKind(enum.StrEnum):
    """The three kinds of package a service manifest declares (SF's element names)."""

    CODE = "CodePackage"
    CONFIG = "ConfigPackage"
    DATA = "DataPackage"


@dataclass(frozen=True, slots=True, order=True)
class PackagePart:
    """One code, config or data package of one service manifest."""

    service_manifest: str
    kind: PackageKind
    name: str

    def __str__(self) -> str:
        return f"{self.service_manifest}/{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class ManifestFile:
    """A manifest itself: the application manifest (``service_manifest`` None) or one
    service manifest."""

    service_manifest: str | None = None

    def __str__(self) -> str:
        if self.service_manifest is None:
            return APPLICATION_MANIFEST
        return f"{self.service_manifest}/{SERVICE_MANIFEST}"


Target = PackagePart | ManifestFile


@dataclass(frozen=True, slots=True)
class Layout:
    """What a loaded package declares: service manifest name → its parts by folder name."""

    parts: Mapping[str, Mapping[str, PackagePart]]

    @classmethod
    def of(cls, package: ApplicationPackage) -> Layout:
        parts: dict[str, dict[str, PackagePart]] = {}
        for sm_name, manifest in package.service_manifests.items():
            declared = parts[sm_name] = {}
            for kind, packages in (
                (PackageKind.CODE, manifest.code_packages),
                (PackageKind.CONFIG, manifest.config_packages),
                (PackageKind.DATA, manifest.data_packages),
            ):
                for item in packages:
                    declared[item.name] = PackagePart(sm_name, kind, item.name)
        return cls(parts)

    def all_parts(self) -> list[PackagePart]:
        return sorted(part for declared in self.parts.values() for part in declared.values())


def classify(root: Path, path: Path, layout: Layout | None) -> Target | None:
    """The package part or manifest ``path`` belongs to, or None when it belongs to nothing
    deployed (also for any path outside ``root``). Without a ``layout`` (the package never
    loaded), only the manifests are recognised. Paths are compared as given: pass both
    resolved, or both not."""
    try:
        relative = path.relative_to(root).parts
    except ValueError:
        return None
    if relative == (APPLICATION_MANIFEST,):
        return ManifestFile(None)
    if len(relative) < 2:
        return None
    sm_name = relative[0]
    declared = layout.parts.get(sm_name) if layout is not None else None
    if relative[1:] == (SERVICE_MANIFEST,):
        # A service manifest the application does not import yet counts as well: the same
        # save may come with the import that names it.
        return ManifestFile(sm_name)
    if declared is None or len(relative) < 3:
        return None
    return declared.get(relative[1])


@dataclass(frozen=True, slots=True)
class Burst:
    """What one burst of saves (or several, not applied yet) touched: every path, sorted into
    the parts and manifests they belong to and the rest."""

    paths: tuple[Path, ...] = ()
    parts: frozenset[PackagePart] = frozenset()
    manifests: frozenset[ManifestFile] = frozenset()
    ignored: tuple[Path, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing deployed was touched."""
        return not self.parts and not self.manifests

    def merged(self, later: Burst) -> Burst:
        return Burst(
            tuple(dict.fromkeys((*self.paths, *later.paths))),
            self.parts | later.parts,
            self.manifests | later.manifests,
            tuple(dict.fromkeys((*self.ignored, *later.ignored))),
        )

    def describe(self, root: Path) -> str:
        """The touched files, relative to ``root``; the first three named."""
        names = sorted({_relative(root, p) for p in self.paths})
        shown = ", ".join(names[:3])
        return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def sort_burst(root: Path, paths: Iterable[Path], layout: Layout | None) -> Burst:
    """Classify every path of one burst of saves."""
    paths = tuple(dict.fromkeys(paths))
    parts: set[PackagePart] = set()
    manifests: set[ManifestFile] = set()
    ignored: list[Path] = []
    for path in paths:
        target = classify(root, path, layout)
        if isinstance(target, PackagePart):
            parts.add(target)
        elif isinstance(target, ManifestFile):
            manifests.add(target)
        else:
            ignored.append(path)
    return Burst(paths, frozenset(parts), frozenset(manifests), tuple(ignored))


def _relative(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
