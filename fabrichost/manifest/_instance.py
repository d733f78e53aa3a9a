"""Instantiate an application type: the application manifest with every parameter substituted.

Usage::

    package = load_application_package(Path("manifests/MyApp"))
    instance = instantiate(package, {"ServiceA_PartitionCount": "2"})
    for service in instance.default_services: ...
    instance.settings["MyServicePackage"]["Config"].as_dict()

Counts are parsed after substitution, so ``InstanceCount="[Count]"`` with ``Count=abc`` names
the manifest line, the attribute and the parameter. ``ConfigOverrides`` are applied to the
package's ``Settings.xml`` files; overriding a section or parameter that the settings file
lacks is an error, as in Service Fabric.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest._model import (
    ApplicationInstance,
    ApplicationPackage,
    ConfigOverride,
    EndpointOverride,
    EnvironmentVariable,
    ImportInstance,
    ResourceLimits,
    ServiceDescription,
    ServicePackageLimits,
    Settings,
    SettingsSection,
    StatelessServiceTemplate,
)
from fabrichost.manifest._params import Substitution, resolve_parameters

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.manifest._model import (
        ApplicationManifest,
        ApplicationParameters,
        DefaultService,
        ResourceGovernancePolicy,
        ServiceManifestImport,
    )


def instantiate(
    source: ApplicationPackage | ApplicationManifest,
    parameters: Mapping[str, str] | None = None,
    *,
    parameter_file: ApplicationParameters | None = None,
) -> ApplicationInstance:
    """Substitute parameters into ``source`` and type every value.

    Values come from the manifest's ``DefaultValue``, then ``parameter_file``, then
    ``parameters`` (explicit ``K=V`` overrides; names are case-insensitive). Given a package,
    the result's ``settings`` hold each config package's settings with overrides applied.

    Raises:
        ManifestError: every undeclared override, unknown ``[Name]`` reference, unparsable or
            out-of-range value and impossible config override, together.
    """
    package = source if isinstance(source, ApplicationPackage) else None
    manifest = source.application if isinstance(source, ApplicationPackage) else source
    _check_overrides(manifest, parameter_file, parameters or {})
    values = resolve_parameters(manifest, parameter_file, parameters)
    sub = Substitution(manifest.file, values)
    imports = tuple(_import(sub, item) for item in manifest.service_manifest_imports)
    services = tuple(
        service for item in manifest.default_services if (service := _service(sub, item))
    )
    settings = {} if package is None else _settings(sub, package, imports)
    sub.raise_if_any()
    return ApplicationInstance(
        application_type_name=manifest.application_type_name,
        application_type_version=manifest.application_type_version,
        parameters=MappingProxyType(values),
        imports=imports,
        default_services=services,
        settings=MappingProxyType(settings),
    )


OVERRIDES = "application parameters"  # where explicit overrides come from, in a Diagnostic


def _check_overrides(
    manifest: ApplicationManifest,
    parameter_file: ApplicationParameters | None,
    overrides: Mapping[str, str],
) -> None:
    """Refuse override names the type does not declare, naming the type and version.

    Overrides come from ``--param``, an HTTP ParameterList or a Python caller, not from a file:
    their problems name the application type, never the manifest's image store path. A
    parameter file's own problems (with its file:line) are reported together with them.
    """
    declared = {p.name.casefold() for p in manifest.parameters}
    unknown = [name for name in overrides if name.casefold() not in declared]
    if not unknown:
        return
    known = ", ".join(sorted((p.name for p in manifest.parameters), key=str.casefold)) or "none"
    problems = [
        Diagnostic(
            OVERRIDES,
            None,
            f"parameter '{name}' is not declared by application type "
            f"{manifest.application_type_name} {manifest.application_type_version} "
            f"(declared: {known})",
        )
        for name in unknown
    ]
    try:
        resolve_parameters(manifest, parameter_file)
    except ManifestError as exc:
        problems = [*exc.diagnostics, *problems]
    raise ManifestError(problems)


def _import(sub: Substitution, item: ServiceManifestImport) -> ImportInstance:
    environment: dict[str, tuple[EnvironmentVariable, ...]] = {}
    for override in item.environment_overrides:
        variables = tuple(
            replace(v, value=sub.text(v.value, v.line, f"EnvironmentVariable {v.name} Value"))
            for v in override.variables
        )
        environment[override.code_package_ref] = (
            environment.get(override.code_package_ref, ()) + variables
        )
    sprg = item.policies.service_package_resource_governance
    return ImportInstance(
        service_manifest_name=item.ref.service_manifest_name,
        service_manifest_version=item.ref.service_manifest_version,
        environment_overrides=MappingProxyType(environment),
        config_overrides=tuple(_config_override(sub, c) for c in item.config_overrides),
        endpoint_overrides=tuple(_endpoint_override(sub, e) for e in item.endpoint_overrides),
        run_as=tuple(
            replace(p, user_ref=sub.text(p.user_ref, p.line, "RunAsPolicy UserRef"))
            for p in item.policies.run_as
        ),
        resource_limits=tuple(_limits(sub, p) for p in item.policies.resource_governance),
        service_package_limits=None
        if sprg is None
        else ServicePackageLimits(
            cpu_cores=sub.decimal(sprg.cpu_cores, sprg.line, "CpuCores") or 0.0,
            memory_in_mb=sub.integer(sprg.memory_in_mb, sprg.line, "MemoryInMB", 0) or 0,
        ),
    )


def _config_override(sub: Substitution, override: ConfigOverride) -> ConfigOverride:
    return replace(
        override,
        sections=tuple(
            replace(
                section,
                parameters=tuple(
                    replace(p, value=sub.text(p.value, p.line, f"Parameter {p.name} Value"))
                    for p in section.parameters
                ),
            )
            for section in override.sections
        ),
    )


def _endpoint_override(sub: Substitution, item: EndpointOverride) -> EndpointOverride:
    def text(value: str | None, attribute: str) -> str | None:
        return sub.optional(value, item.line, f"Endpoint {item.name} {attribute}")

    return replace(
        item,
        port=text(item.port, "Port"),
        protocol=text(item.protocol, "Protocol"),
        type=text(item.type, "Type"),
        uri_scheme=text(item.uri_scheme, "UriScheme"),
        path_suffix=text(item.path_suffix, "PathSuffix"),
    )


def _limits(sub: Substitution, policy: ResourceGovernancePolicy) -> ResourceLimits:
    def number(value: str, attribute: str) -> int:
        return sub.integer(value, policy.line, f"ResourceGovernancePolicy {attribute}", 0) or 0

    return ResourceLimits(
        code_package_ref=policy.code_package_ref,
        memory_in_mb=number(policy.memory_in_mb, "MemoryInMB"),
        memory_swap_in_mb=number(policy.memory_swap_in_mb, "MemorySwapInMB"),
        memory_reservation_in_mb=number(policy.memory_reservation_in_mb, "MemoryReservationInMB"),
        cpu_shares=number(policy.cpu_shares, "CpuShares"),
        cpu_percent=number(policy.cpu_percent, "CpuPercent"),
    )


def _service(sub: Substitution, item: DefaultService) -> ServiceDescription | None:
    template = item.service
    if template is None:
        sub.problem(
            item.line, f"Service '{item.name}' needs a StatelessService or StatefulService element"
        )
        return None
    line = template.line
    name = sub.text(item.name, item.line, "Service Name")
    type_name = sub.text(template.service_type_name, line, "ServiceTypeName")
    partition = sub.partition(template.partition)
    mode = sub.activation_mode(item.activation_mode, item.line)
    dns_name = sub.optional(item.service_dns_name, item.line, "ServiceDnsName")
    if isinstance(template, StatelessServiceTemplate):
        count = sub.integer(template.instance_count, line, "InstanceCount", -1)
        if count == 0:
            sub.problem(line, "InstanceCount: must be -1 (one per node) or at least 1, got 0")
        return ServiceDescription(
            name, type_name, False, partition, mode, dns_name, instance_count=count or 1
        )
    target = sub.integer(template.target_replica_set_size, line, "TargetReplicaSetSize", 1)
    minimum = sub.integer(template.min_replica_set_size, line, "MinReplicaSetSize", 1)
    if target is not None and minimum is not None and minimum > target:
        sub.problem(
            line, f"MinReplicaSetSize {minimum} is greater than TargetReplicaSetSize {target}"
        )
    return ServiceDescription(
        name,
        type_name,
        True,
        partition,
        mode,
        dns_name,
        target_replica_set_size=target or 1,
        min_replica_set_size=minimum or 1,
    )


def _settings(
    sub: Substitution, package: ApplicationPackage, imports: tuple[ImportInstance, ...]
) -> dict[str, Mapping[str, Settings]]:
    result: dict[str, Mapping[str, Settings]] = {}
    for item in imports:
        name = item.service_manifest_name
        packages = dict(package.settings.get(name, {}))
        for override in item.config_overrides:
            base = packages.get(override.name)
            if base is None:
                sub.problem(
                    override.line,
                    f"ConfigOverride '{override.name}': service manifest {name} has no config "
                    f"package '{override.name}' with a Settings.xml",
                )
                continue
            packages[override.name] = _override(sub, base, override)
        sub.diagnostics.extend(_not_overridden(packages))
        result[name] = MappingProxyType(packages)
    return result


def _override(sub: Substitution, base: Settings, override: ConfigOverride) -> Settings:
    sections = {s.name: s for s in base.sections}
    for section in override.sections:
        target = sections.get(section.name)
        if target is None:
            sub.problem(
                section.line,
                f"ConfigOverride '{override.name}': section '{section.name}' is not in {base.file}",
            )
            continue
        values = {p.name: p for p in target.parameters}
        for parameter in section.parameters:
            original = values.get(parameter.name)
            if original is None:
                sub.problem(
                    parameter.line,
                    f"ConfigOverride '{override.name}': parameter '{parameter.name}' is not in "
                    f"section '{section.name}' of {base.file}",
                )
                continue
            values[parameter.name] = replace(
                original,
                value=parameter.value,
                is_encrypted=parameter.is_encrypted,
                type=parameter.type or original.type,
                must_override=False,
            )
        sections[section.name] = SettingsSection(target.name, tuple(values.values()), target.line)
    return replace(base, sections=tuple(sections.values()))


def _not_overridden(packages: Mapping[str, Settings]) -> list[Diagnostic]:
    # _override clears MustOverride on what it sets, so what still carries it was not set.
    return [
        Diagnostic(
            settings.file,
            parameter.line,
            f"parameter '{parameter.name}' of section '{section.name}' has "
            'MustOverride="true" but no ConfigOverride sets it',
        )
        for settings in packages.values()
        for section in settings.sections
        for parameter in section.parameters
        if parameter.must_override
    ]
