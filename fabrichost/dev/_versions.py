"""Which packages a change needs a new version for, and the versions the staged copy gets
(pure: no IO).

The user's files keep their versions; the staged copy the agent provisions carries
``<the user's version>-dev.<n>``, where ``n`` counts the changes applied (one counter for the
application type, so every staged type version is new). A package keeps the staged version it
had until it changes, so an upgrade compares versions and restarts only what changed, as
Service Fabric's does.

What counts as a change of a package, besides its files:

* its own declaration in the service manifest (a code package's entry point, environment…);
* for every code package of a service manifest, the rest of that manifest (service types,
  endpoints): they shape the processes;
* for every package of a service manifest, its import in the application manifest (config,
  environment and endpoint overrides, policies);
* for every package, the application manifest's parameters and principals, which any value
  may refer to.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fabrichost.dev._parts import Layout, PackageKind, PackagePart

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from fabrichost.manifest import ApplicationPackage, ServiceManifest, ServiceManifestImport

DEV_SUFFIX: Final = "-dev."
_STAGED: Final = re.compile(r"(?P<base>.+)-dev\.(?P<n>\d+)")
# Fields that say where something was written, not what it is.
_WHERE: Final = frozenset({"line", "file"})


@dataclass(frozen=True, slots=True)
class StagedVersions:
    """The versions a staged copy carries."""

    application: str
    service_manifests: Mapping[str, str]
    parts: Mapping[PackagePart, str]


@dataclass(frozen=True, slots=True)
class VersionPlan:
    """The next staged versions, the parts that got a new one, and whether anything deployed
    changed at all (a comment edited in a manifest changes nothing)."""

    versions: StagedVersions
    bumped: frozenset[PackagePart]
    changed: bool


def staged(version: str, n: int) -> str:
    """``1.0.0`` → ``1.0.0-dev.3``."""
    return f"{version}{DEV_SUFFIX}{n}"


def next_counter(type_name: str, provisioned: Iterable[tuple[str, str]]) -> int:
    """The first change number above every staged version of ``type_name`` among
    ``provisioned`` (type name, version) pairs: an agent reused from an earlier session may
    hold some, and a staged version is never provisioned twice."""
    highest = 0
    for name, version in provisioned:
        match = _STAGED.fullmatch(version)
        if name == type_name and match is not None:
            highest = max(highest, int(match["n"]))
    return highest + 1


def plan_versions(
    previous: StagedVersions | None,
    old: ApplicationPackage | None,
    new: ApplicationPackage,
    touched: Iterable[PackagePart],
    n: int,
) -> VersionPlan:
    """The versions of change ``n``: the parts ``touched`` (their files changed), the parts
    whose declarations changed between ``old`` and ``new`` and the parts ``previous`` does not
    know get ``-dev.<n>``; the others keep their staged version. Without ``previous`` (the
    first deploy) every part is new."""
    every = set(Layout.of(new).all_parts())
    if previous is None or old is None:
        bumped = every
    else:
        bumped = (set(touched) & every) | _declarations_changed(old, new)
        bumped |= {part for part in every if part not in previous.parts}
    parts: dict[PackagePart, str] = {}
    manifests: dict[str, str] = {}
    for sm_name, manifest in new.service_manifests.items():
        declared = _declared_versions(sm_name, manifest)
        for part, version in declared.items():
            kept = previous.parts.get(part) if previous is not None else None
            parts[part] = staged(version, n) if part in bumped or kept is None else kept
        kept_sm = previous.service_manifests.get(sm_name) if previous is not None else None
        sm_changed = old is None or _shape(old.service_manifests.get(sm_name)) != _shape(manifest)
        if kept_sm is None or sm_changed or any(p in bumped for p in declared):
            manifests[sm_name] = staged(manifest.version, n)
        else:
            manifests[sm_name] = kept_sm
    versions = StagedVersions(
        staged(new.application.application_type_version, n), manifests, parts
    )
    changed = (
        previous is None
        or old is None
        or bool(bumped)
        or _shape(old.application) != _shape(new.application)
        or any(
            _shape(old.service_manifests.get(name)) != _shape(manifest)
            for name, manifest in new.service_manifests.items()
        )
    )
    return VersionPlan(versions, frozenset(bumped), changed)


def _declared_versions(sm_name: str, manifest: ServiceManifest) -> dict[PackagePart, str]:
    declared: dict[PackagePart, str] = {}
    for code in manifest.code_packages:
        declared[PackagePart(sm_name, PackageKind.CODE, code.name)] = code.version
    for ref in manifest.config_packages:
        declared[PackagePart(sm_name, PackageKind.CONFIG, ref.name)] = ref.version
    for ref in manifest.data_packages:
        declared[PackagePart(sm_name, PackageKind.DATA, ref.name)] = ref.version
    return declared


def _declarations_changed(old: ApplicationPackage, new: ApplicationPackage) -> set[PackagePart]:
    changed: set[PackagePart] = set()
    every_part = _shape(_application_wide(old)) != _shape(_application_wide(new))
    old_imports = {i.ref.service_manifest_name: i for i in old.application.service_manifest_imports}
    for item in new.application.service_manifest_imports:
        sm_name = item.ref.service_manifest_name
        manifest = new.service_manifests[sm_name]
        before = old.service_manifests.get(sm_name)
        declared = _declared_versions(sm_name, manifest)
        if (
            every_part
            or before is None
            or _import_shape(old_imports.get(sm_name)) != _import_shape(item)
        ):
            changed.update(declared)
            continue
        old_declared = {
            (part.kind, part.name): declaration
            for part, declaration in _declarations(sm_name, before).items()
        }
        for part, declaration in _declarations(sm_name, manifest).items():
            if _shape(old_declared.get((part.kind, part.name))) != _shape(declaration):
                changed.add(part)
        if _shape(_process_wide(before)) != _shape(_process_wide(manifest)):
            changed.update(p for p in declared if p.kind is PackageKind.CODE)
    return changed


def _declarations(sm_name: str, manifest: ServiceManifest) -> dict[PackagePart, object]:
    found: dict[PackagePart, object] = {}
    for code in manifest.code_packages:
        found[PackagePart(sm_name, PackageKind.CODE, code.name)] = code
    for ref in manifest.config_packages:
        found[PackagePart(sm_name, PackageKind.CONFIG, ref.name)] = ref
    for ref in manifest.data_packages:
        found[PackagePart(sm_name, PackageKind.DATA, ref.name)] = ref
    return found


def _application_wide(package: ApplicationPackage) -> tuple[object, ...]:
    app = package.application
    return (app.parameters, app.principals, app.policies)


def _process_wide(manifest: ServiceManifest) -> tuple[object, ...]:
    return (manifest.service_types, manifest.endpoints)


def _import_shape(item: ServiceManifestImport | None) -> object:
    if item is None:
        return None
    # Not the ServiceManifestRef: its version only follows the service manifest's own.
    return _shape(
        (item.config_overrides, item.endpoint_overrides, item.environment_overrides, item.policies)
    )


def _shape(value: object) -> object:
    """``value`` as plain tuples, without the fields that say where it was written, so two
    declarations compare equal when they say the same thing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple(
                (f.name, _shape(getattr(value, f.name)))
                for f in dataclasses.fields(value)
                if f.name not in _WHERE
            ),
        )
    if isinstance(value, dict):
        return tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return tuple(_shape(item) for item in value)
    if isinstance(value, enum.Enum):
        return value.value
    return value
