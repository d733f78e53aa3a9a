"""Checks the schema cannot express: unique names, references that must resolve, safe paths.

Usage::

    diagnostics = validate_service_manifest(manifest)           # one file on its own
    diagnostics = validate_package(application, manifests, folders)   # a whole package

File-level checks look only inside one file, so ``manifest check FILE`` can run them; package-level
checks follow references between files (``ServiceManifestRef``, service types, code package
references) and need the package folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabrichost.errors import Diagnostic
from fabrichost.manifest._model import ContainerHost, ExeHost
from fabrichost.manifest._params import parameter_reference
from fabrichost.manifest._paths import program_problem

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from fabrichost.manifest._model import (
        ApplicationManifest,
        ApplicationParameters,
        ServiceManifest,
        ServiceManifestImport,
        Settings,
    )


def duplicates(
    file: str, what: str, items: Iterable[tuple[str, int]], *, fold: bool = False, why: str = ""
) -> list[Diagnostic]:
    """One diagnostic per repeated name; ``fold`` compares case-insensitively.

    ``why`` is appended to the message: where the rule comes from, when that is not obvious.
    """
    seen: dict[str, int] = {}
    found: list[Diagnostic] = []
    for name, line in items:
        key = name.casefold() if fold else name
        if key in seen:
            found.append(
                Diagnostic(
                    file,
                    line,
                    f"duplicate {what} '{name}' (first at line {seen[key]}){why and '; ' + why}",
                )
            )
        else:
            seen[key] = line
    return found


def validate_settings(settings: Settings) -> list[Diagnostic]:
    found = duplicates(settings.file, "section", ((s.name, s.line) for s in settings.sections))
    for section in settings.sections:
        found += duplicates(
            settings.file,
            f"parameter in section '{section.name}':",
            ((p.name, p.line) for p in section.parameters),
        )
    return found


def validate_application_parameters(parameters: ApplicationParameters) -> list[Diagnostic]:
    # The schema allows it; Service Fabric's deployment tooling, which reads a parameter file
    # into a name -> value table, refuses a file that repeats a name.
    return duplicates(
        parameters.file,
        "parameter",
        ((p.name, p.line) for p in parameters.parameters),
        fold=True,
        why="the schema allows it but Service Fabric's deployment tooling refuses it",
    )


def validate_service_manifest(manifest: ServiceManifest) -> list[Diagnostic]:
    file = manifest.file
    found = duplicates(
        file, "service type", ((t.service_type_name, t.line) for t in manifest.service_types)
    )
    found += duplicates(file, "code package", ((c.name, c.line) for c in manifest.code_packages))
    found += duplicates(
        file, "config package", ((c.name, c.line) for c in manifest.config_packages)
    )
    found += duplicates(file, "data package", ((d.name, d.line) for d in manifest.data_packages))
    found += duplicates(file, "endpoint", ((e.name, e.line) for e in manifest.endpoints))
    code_names = {c.name for c in manifest.code_packages}
    for endpoint in manifest.endpoints:
        if endpoint.code_package_ref is not None and endpoint.code_package_ref not in code_names:
            found.append(
                Diagnostic(
                    file,
                    endpoint.line,
                    f"Endpoint '{endpoint.name}' CodePackageRef '{endpoint.code_package_ref}' "
                    f"names no code package (have: {', '.join(sorted(code_names))})",
                )
            )
    for code in manifest.code_packages:
        found += duplicates(
            file,
            f"environment variable in code package '{code.name}':",
            ((v.name, v.line) for v in code.environment_variables),
        )
        for host in (code.setup_entry_point, code.entry_point):
            if isinstance(host, ExeHost) and not host.is_external_executable:
                problem = program_problem(host.program)
                if problem:
                    found.append(Diagnostic(file, host.line, f"Program: {problem}"))
    return found


def validate_application_manifest(manifest: ApplicationManifest) -> list[Diagnostic]:
    file = manifest.file
    found = duplicates(
        file, "parameter", ((p.name, p.line) for p in manifest.parameters), fold=True
    )
    found += duplicates(
        file,
        "ServiceManifestImport of",
        ((i.ref.service_manifest_name, i.ref.line) for i in manifest.service_manifest_imports),
    )
    found += duplicates(
        file, "default service", ((s.name, s.line) for s in manifest.default_services)
    )
    users = {u.name for u in manifest.principals.users}
    found += duplicates(file, "user", ((u.name, u.line) for u in manifest.principals.users))
    for item in manifest.service_manifest_imports:
        found += duplicates(
            file, "ConfigOverride", ((c.name, c.line) for c in item.config_overrides)
        )
        found += [
            Diagnostic(
                file,
                policy.line,
                f"RunAsPolicy UserRef '{policy.user_ref}' names no user in Principals",
            )
            for policy in item.policies.run_as
            if parameter_reference(policy.user_ref) is None and policy.user_ref not in users
        ]
    return found


def validate_package(
    application: ApplicationManifest, manifests: Mapping[str, ServiceManifest]
) -> list[Diagnostic]:
    """References from the application manifest into the loaded service manifests.

    ``manifests`` maps each imported name to its loaded manifest; imports whose manifest could
    not be loaded are missing from it and were reported by the loader.
    """
    found: list[Diagnostic] = []
    for item in application.service_manifest_imports:
        manifest = manifests.get(item.ref.service_manifest_name)
        if manifest is not None:
            found += _check_import(application.file, item, manifest)
    # Service types can only be judged missing when every imported manifest could be read.
    imported = {i.ref.service_manifest_name for i in application.service_manifest_imports}
    if imported <= manifests.keys():
        found += _check_service_types(application, manifests)
    return found


def _check_import(
    file: str, item: ServiceManifestImport, manifest: ServiceManifest
) -> list[Diagnostic]:
    ref = item.ref
    found: list[Diagnostic] = []
    if manifest.name != ref.service_manifest_name:
        found.append(
            Diagnostic(
                file,
                ref.line,
                f"ServiceManifestRef names '{ref.service_manifest_name}' but "
                f'{manifest.file} declares Name="{manifest.name}"',
            )
        )
    if manifest.version != ref.service_manifest_version:
        found.append(
            Diagnostic(
                file,
                ref.line,
                f"ServiceManifestRef {ref.service_manifest_name} asks for version "
                f"{ref.service_manifest_version} but {manifest.file} has "
                f'Version="{manifest.version}"',
            )
        )
    code_names = {c.name for c in manifest.code_packages}
    references = [
        *((o.code_package_ref, o.line, "EnvironmentOverrides") for o in item.environment_overrides),
        *((p.code_package_ref, p.line, "RunAsPolicy") for p in item.policies.run_as),
        *(
            (p.code_package_ref, p.line, "ResourceGovernancePolicy")
            for p in item.policies.resource_governance
        ),
    ]
    found += [
        Diagnostic(
            file,
            line,
            f"{what} CodePackageRef '{name}' names no code package of {manifest.name} "
            f"(have: {', '.join(sorted(code_names))})",
        )
        for name, line, what in references
        if name not in code_names
    ]
    endpoint_names = {e.name for e in manifest.endpoints}
    found += [
        Diagnostic(
            file, e.line, f"endpoint override '{e.name}' names no endpoint of {manifest.name}"
        )
        for e in item.endpoint_overrides
        if e.name not in endpoint_names
    ]
    return found


def _check_service_types(
    application: ApplicationManifest, manifests: Mapping[str, ServiceManifest]
) -> list[Diagnostic]:
    declared = {t.service_type_name for m in manifests.values() for t in m.service_types}
    found: list[Diagnostic] = []
    for service in application.default_services:
        template = service.service
        if template is None or parameter_reference(template.service_type_name) is not None:
            continue
        if template.service_type_name not in declared:
            found.append(
                Diagnostic(
                    application.file,
                    template.line,
                    f"service type '{template.service_type_name}' of default service "
                    f"'{service.name}' is not declared by any imported service manifest "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})",
                )
            )
    return found


def hosts_container(manifest: ServiceManifest, code_package: str) -> bool:
    """True when the code package runs a container (its folder may be absent)."""
    code = manifest.code_package(code_package)
    return code is not None and isinstance(code.entry_point, ContainerHost)
