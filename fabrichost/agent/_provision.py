"""Provisioning: a package folder becomes an application type in the image store, and an
application of that type becomes the :mod:`_spec` records the activations run.

The image store keeps each provisioned copy at ``ImageStore/<Type>/<Version>-<digest>``, so a
copy in use is never overwritten, and provisioning the very same content again is recognised
by its digest. The copy holds no symbolic links (see :mod:`_image_copy`): a link inside the
package is copied as what it names, and one that leads outside it is refused. Everything that
can fail (validation, parameters, programs) fails here, before any process starts or any state
changes, and names the user's own files: the image store is an implementation detail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fabrichost.agent._image_copy import copy_package, package_digest
from fabrichost.agent._model import (
    ActivationMode,
    PartitionScheme,
    ServiceDescription,
    ServiceKind,
)
from fabrichost.agent._spec import (
    CodePackageSpec,
    EndpointSpec,
    ProgramSpec,
    ServicePackageSpec,
    ServiceTypeSpec,
    WorkingFolder,
)
from fabrichost.errors import Diagnostic, ManifestError, NotFoundError
from fabrichost.manifest import (
    ApplicationPackage,
    ContainerHost,
    ExeHost,
    NamedPartition,
    PathEscape,
    StatefulServiceType,
    UniformPartitionRange,
    clean_program,
    load_application_package,
    resolve_inside,
)
from fabrichost.manifest import ServiceDescription as ManifestServiceDescription
from fabrichost.manifest import instantiate as instantiate_manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fabrichost.manifest import (
        CodePackage,
        EnvironmentVariable,
        ImportInstance,
        ServiceManifest,
    )


@dataclass(frozen=True, slots=True)
class ProvisionedType:
    """An application type registered in the cluster: its image store copy, loaded.

    ``source`` is how the user knows the package: the build path it was provisioned from, or,
    when that is not known (a type restored from the store), the type's name, so that errors
    read ``GuestAppType/ApplicationManifest.xml:13``.
    """

    name: str
    version: str
    digest: str
    package: ApplicationPackage
    source: str = ""

    def in_user_terms(self, text: str) -> str:
        """``text`` with the image store copy named as the user knows the package."""
        return text.replace(str(self.package.root), self.source or self.name)

    @property
    def default_parameters(self) -> tuple[tuple[str, str], ...]:
        return tuple((p.name, p.default_value) for p in self.package.application.parameters)

    @property
    def manifest_file(self) -> Path:
        """ApplicationManifest.xml of the provisioned (image store) copy."""
        return Path(self.package.application.file)

    def service_manifest_file(self, name: str) -> Path:
        """ServiceManifest.xml of the service package ``name`` in the provisioned copy."""
        manifest = self.package.service_manifests.get(name)
        if manifest is None:
            raise NotFoundError(
                f"application type {self.name} {self.version} has no service manifest {name}; "
                f"its service manifests: {', '.join(sorted(self.package.service_manifests))}",
                code="FABRIC_E_SERVICE_MANIFEST_NOT_FOUND",
            )
        return Path(manifest.file)

    def service_types(self) -> list[ServiceTypeRecord]:
        """Every service type the type's service manifests declare, in manifest order."""
        return [
            ServiceTypeRecord(
                name=t.service_type_name,
                stateful=isinstance(t, StatefulServiceType),
                has_persisted_state=isinstance(t, StatefulServiceType) and t.has_persisted_state,
                use_implicit_host=t.use_implicit_host,
                placement_constraints=t.placement_constraints or "",
                manifest_name=m.name,
                manifest_version=m.version,
            )
            for m in self.package.service_manifests.values()
            for t in m.service_types
        ]


@dataclass(frozen=True, slots=True)
class ServiceTypeRecord:
    """A service type as an application type declares it (SF's ServiceTypeInfo)."""

    name: str
    stateful: bool
    has_persisted_state: bool
    use_implicit_host: bool
    placement_constraints: str
    manifest_name: str
    manifest_version: str


@dataclass(frozen=True, slots=True)
class ResolvedApplication:
    """An application type instantiated with parameters: ready to activate."""

    parameters: Mapping[str, str]
    packages: Mapping[str, ServicePackageSpec]
    default_services: list[ServiceDescription] = field(default_factory=list)


def _renamed(exc: ManifestError, rename: Callable[[str], str]) -> ManifestError:
    """``exc`` with ``rename`` applied to every file name and message."""
    return ManifestError(
        [Diagnostic(rename(d.file), d.line, rename(d.message)) for d in exc.diagnostics]
    )


def _renaming(copy: Path, original: Path) -> Callable[[str], str]:
    return lambda text: text.replace(str(copy), str(original))


def provision_package(package_dir: Path, image_store: Path) -> ProvisionedType:
    """Validate ``package_dir`` and copy it into ``image_store``; return the loaded copy.

    Raises:
        ManifestError: the package is not valid, or holds a link that leads outside it
            (nothing is left in the image store).
    """
    if not package_dir.is_dir():
        raise ManifestError(
            Diagnostic(
                str(package_dir),
                None,
                "not a folder: an application package is a folder with ApplicationManifest.xml",
            )
        )
    source = load_application_package(package_dir)  # refused before anything is copied
    app = source.application
    if app.default_service_groups:  # valid Service Fabric, but never silently dropped
        raise ManifestError(
            [
                Diagnostic(
                    app.file,
                    line,
                    f"ServiceGroup '{name}': service groups are not supported "
                    "by fabrichost; declare the member services as DefaultServices",
                )
                for name, line in app.default_service_groups
            ]
        )
    _check_folder_names(app.file, app.line, app.application_type_name, app.application_type_version)
    folder = image_store / app.application_type_name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        digest, dest = _copy_into(package_dir, folder, app.application_type_version)
    except BaseException:
        with contextlib.suppress(OSError):
            folder.rmdir()  # a type folder this provision made, left empty: nothing is left
        raise
    try:
        package = load_application_package(dest)
    except ManifestError as exc:  # the copy was checked: only if the image store was tampered with
        raise _renamed(exc, _renaming(dest, package_dir)) from None
    return ProvisionedType(
        app.application_type_name, app.application_type_version, digest, package, str(package_dir)
    )


def _copy_into(package_dir: Path, folder: Path, version: str) -> tuple[str, Path]:
    """Copy the package into ``folder/<version>-<digest>`` unless that copy exists already.

    The digest is taken of the copy, so it names exactly what was copied even if the package
    changed meanwhile. The copy is checked before it gets its name: a problem the copy has and
    the package had not fails here, with nothing left behind.
    """
    staging = Path(tempfile.mkdtemp(prefix=".provision-", dir=folder))
    try:
        copy_package(package_dir, staging / "pkg")
        digest = package_digest(staging / "pkg")
        dest = folder / f"{version}-{digest[:16]}"
        if not dest.exists():
            _load_copy(staging / "pkg", package_dir)
            try:
                os.replace(staging / "pkg", dest)  # atomic: a half copy is never seen
            except OSError:
                if not dest.is_dir():  # a concurrent provision of the same content won: fine
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return digest, dest


def _load_copy(copy: Path, original: Path) -> None:
    """Load the staged copy; errors name the user's own files, not the staging folder."""
    try:
        load_application_package(copy)
    except ManifestError as exc:
        raise _renamed(exc, _renaming(copy, original)) from None


def _check_folder_names(file: str, line: int, *names: str) -> None:
    """Type names and versions become folder names: they must not walk out of the image store."""
    for name in names:
        if name in (".", "..") or any(c in name for c in "/\\\0"):
            raise ManifestError(
                Diagnostic(
                    file,
                    line,
                    f"{name!r} cannot name an application type or version: no path "
                    "separators, NUL, '.' or '..'",
                )
            )


def instantiate(ptype: ProvisionedType, parameters: Mapping[str, str]) -> ResolvedApplication:
    """Resolve an application of ``ptype`` with ``parameters``; raise before any state changes.

    Raises:
        ManifestError: naming the user's package (``ptype.source``), not the image store copy.
    """
    try:
        return _instantiate(ptype, parameters)
    except ManifestError as exc:
        # No image store path, not even in a traceback's chained exception.
        raise _renamed(exc, ptype.in_user_terms) from None


def _instantiate(ptype: ProvisionedType, parameters: Mapping[str, str]) -> ResolvedApplication:
    instance = instantiate_manifest(ptype.package, parameters)
    packages = {}
    for item in instance.imports:
        manifest = ptype.package.service_manifests[item.service_manifest_name]
        packages[manifest.name] = _package_spec(ptype.package, manifest, item, instance.settings)
    services = [_service_description(s) for s in instance.default_services]
    return ResolvedApplication(dict(instance.parameters), packages, services)


def _package_spec(
    package: ApplicationPackage,
    manifest: ServiceManifest,
    item: ImportInstance,
    settings: Mapping[str, Mapping[str, object]],
) -> ServicePackageSpec:
    folder = package.root / manifest.name
    overrides = {o.name: o for o in item.endpoint_overrides}
    endpoints = []
    for ep in manifest.endpoints:
        port = ep.port
        uri_scheme, path_suffix = ep.uri_scheme or "", ep.path_suffix or ""
        override = overrides.get(ep.name)
        if override is not None:
            if override.port:
                # Endpoint overrides are written in the application manifest.
                port = _port(package.application.file, override.line, override.port)
            uri_scheme = override.uri_scheme or uri_scheme
            path_suffix = override.path_suffix or path_suffix
        endpoints.append(
            EndpointSpec(ep.name, port, ep.protocol.value, ep.type.value, uri_scheme, path_suffix)
        )
    types = tuple(
        ServiceTypeSpec(
            t.service_type_name,
            isinstance(t, StatefulServiceType),
            t.use_implicit_host,
            isinstance(t, StatefulServiceType) and t.has_persisted_state,
        )
        for t in manifest.service_types
    )
    code_packages = tuple(
        _code_package_spec(
            manifest,
            folder / cp.name,
            cp,
            item.environment_overrides.get(cp.name, ()),
            package.application.file,
        )
        for cp in manifest.code_packages
    )
    package_settings = {
        name: s.as_dict()  # type: ignore[attr-defined]
        for name, s in settings.get(manifest.name, {}).items()
    }
    return ServicePackageSpec(
        manifest.name,
        manifest.version,
        code_packages,
        types,
        tuple(endpoints),
        package_settings,
        tuple((d.name, d.version) for d in manifest.data_packages),
    )


def _port(file: str, line: int, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ManifestError(Diagnostic(file, line, f"Port must be 0..65535, not {value!r}"))
    return port or None  # type: ignore[return-value]


def _environment(
    manifest: ServiceManifest,
    cp: CodePackage,
    overrides: tuple[EnvironmentVariable, ...],
    app_file: str,
) -> dict[str, str]:
    """The code package's variables with the application's overrides, checked for a process."""
    env: dict[str, str] = {}
    sources = [(v, manifest.file) for v in cp.environment_variables]
    sources += [(v, app_file) for v in overrides]  # EnvironmentOverrides: the app manifest
    for variable, file in sources:
        bad_name = not variable.name or "=" in variable.name or "\0" in variable.name
        if bad_name or "\0" in variable.value:
            raise ManifestError(
                Diagnostic(
                    file,
                    variable.line,
                    f"environment variable {variable.name!r}: a name must be non-empty without '=' "
                    "or NUL, and a value without NUL",
                )
            )
        env[variable.name] = variable.value
    return env


def _code_package_spec(
    manifest: ServiceManifest,
    folder: Path,
    cp: CodePackage,
    overrides: tuple[EnvironmentVariable, ...],
    app_file: str,
) -> CodePackageSpec:
    env = _environment(manifest, cp, overrides, app_file)
    entry = cp.entry_point
    if not isinstance(entry, ExeHost):
        what = (
            f"ContainerHost (image {entry.image_name})"
            if isinstance(entry, ContainerHost)
            else "DllHost"
        )
        return CodePackageSpec(
            cp.name, cp.version, folder, None, unsupported=what, environment=tuple(env.items())
        )
    redirect = entry.console_redirection
    return CodePackageSpec(
        name=cp.name,
        version=cp.version,
        folder=folder,
        main=_program(manifest, folder, entry),
        setup=_program(manifest, folder, cp.setup_entry_point) if cp.setup_entry_point else None,
        console_retention=redirect.file_retention_count if redirect else 2,
        console_max_bytes=(redirect.file_max_size_in_kb if redirect else 20480) * 1024,
        environment=tuple(env.items()),
    )


def _program(manifest: ServiceManifest, folder: Path, host: ExeHost) -> ProgramSpec:
    """The program an entry point runs, resolved exactly as ``manifest check`` resolves it."""
    arguments = tuple((host.arguments or "").split())  # SF splits on whitespace only
    if host.is_external_executable:
        # Looked up as the child will: the agent's interpreter folder first, then PATH.
        search = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
        found = shutil.which(clean_program(host.program), path=search)
        if found is None:
            raise ManifestError(
                Diagnostic(
                    manifest.file, host.line, f"external program {host.program!r} not found on PATH"
                )
            )
        program = Path(found)
    else:
        try:
            program = resolve_inside(folder, host.program)
        except PathEscape as exc:
            raise ManifestError(Diagnostic(manifest.file, host.line, f"Program: {exc}")) from exc
    return ProgramSpec(program, arguments, WorkingFolder(host.working_folder.value))


def _service_description(s: ManifestServiceDescription) -> ServiceDescription:
    kind = ServiceKind.STATEFUL if s.stateful else ServiceKind.STATELESS
    partition: dict[str, object] = {"partition_scheme": PartitionScheme.SINGLETON}
    if isinstance(s.partition, UniformPartitionRange):
        partition = {
            "partition_scheme": PartitionScheme.UNIFORM_INT64_RANGE,
            "partition_count": s.partition.partition_count,
            "low_key": s.partition.low_key,
            "high_key": s.partition.high_key,
        }
    elif isinstance(s.partition, NamedPartition):
        partition = {
            "partition_scheme": PartitionScheme.NAMED,
            "partition_names": s.partition.names,
            "partition_count": len(s.partition.names),
        }
    return ServiceDescription(
        name=s.name,
        type_name=s.service_type_name,
        kind=kind,
        activation_mode=ActivationMode(s.activation_mode.value),
        instance_count=s.instance_count if s.instance_count is not None else 1,
        target_replica_set_size=s.target_replica_set_size or 1,
        min_replica_set_size=s.min_replica_set_size or 1,
        has_persisted_state=s.stateful,
        **partition,  # type: ignore[arg-type]
    )
