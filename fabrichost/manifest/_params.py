"""Application parameters: resolving values and substituting ``[Name]`` references.

Usage::

    values = resolve_parameters(manifest, parameter_file, {"Web_InstanceCount": "2"})
    instance = instantiate(package, {"Web_InstanceCount": "2"})

Rules, as Service Fabric's ImageBuilder applies them: a value is a reference only when it is
*entirely* ``[Name]`` (``x-[P]`` stays literal); names compare case-insensitively; a value is
the manifest's ``DefaultValue``, overridden by a parameter file, overridden by explicit
overrides (later wins). Every problem is collected and raised together as one ManifestError.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from fabrichost.errors import Diagnostic, ManifestError
from fabrichost.manifest._model import (
    NamedPartition,
    SingletonPartition,
    UniformInt64Partition,
    UniformPartitionRange,
)
from fabrichost.wire import ActivationMode

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.manifest._model import (
        ApplicationManifest,
        ApplicationParameters,
        PartitionLayout,
        PartitionScheme,
    )

_INTEGER: Final = re.compile(r"\s*[+-]?[0-9]+\s*")
_DECIMAL: Final = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*")
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def parameter_reference(value: str) -> str | None:
    """The parameter name when ``value`` is entirely ``[Name]``, else None."""
    if len(value) > 2 and value[0] == "[" and value[-1] == "]":
        return value[1:-1]
    return None


def resolve_parameters(
    manifest: ApplicationManifest,
    parameter_file: ApplicationParameters | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The value of every declared parameter, keyed by its declared spelling.

    Raises:
        ManifestError: a parameter file or override names a parameter the manifest does not
            declare (all such names are reported).
    """
    declared = {p.name.casefold(): p.name for p in manifest.parameters}
    values = {p.name: p.default_value for p in manifest.parameters}
    problems: list[Diagnostic] = []

    def undeclared(name: str) -> str:
        known = ", ".join(sorted(values, key=str.casefold)) or "none"
        return (
            f"parameter '{name}' is not declared by application type "
            f"{manifest.application_type_name} (declared: {known})"
        )

    if parameter_file is not None:
        for item in parameter_file.parameters:
            if (key := declared.get(item.name.casefold())) is None:
                problems.append(Diagnostic(parameter_file.file, item.line, undeclared(item.name)))
            else:
                values[key] = item.value
    for name, value in (overrides or {}).items():
        if (key := declared.get(name.casefold())) is None:
            problems.append(Diagnostic(manifest.file, None, "override: " + undeclared(name)))
        else:
            values[key] = value
    if problems:
        raise ManifestError(problems)
    return values


class Substitution:
    """Substitutes parameter values into one manifest's attributes, collecting problems.

    Each method takes the raw value, the line and the attribute name (for the message) and
    returns the substituted (and parsed) value; on a problem it records a Diagnostic and returns
    a harmless placeholder so that the caller can keep going and report everything at once.
    """

    def __init__(self, file: str, values: Mapping[str, str]) -> None:
        self.file = file
        self._values = {name.casefold(): value for name, value in values.items()}
        self.diagnostics: list[Diagnostic] = []

    def problem(self, line: int, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.file, line, message))

    def _substitute(self, value: str, line: int, attribute: str) -> str | None:
        """The substituted value, or None (and a diagnostic) for an unknown parameter."""
        name = parameter_reference(value)
        if name is None:
            return value
        found = self._values.get(name.casefold())
        if found is None:
            self.problem(
                line,
                f"{attribute}: unknown parameter [{name}] (not in Parameters; Service Fabric "
                "refuses it when provisioning the application type)",
            )
        return found

    def text(self, value: str, line: int, attribute: str) -> str:
        found = self._substitute(value, line, attribute)
        return value if found is None else found

    def optional(self, value: str | None, line: int, attribute: str) -> str | None:
        return None if value is None else self.text(value, line, attribute)

    def integer(
        self,
        value: str,
        line: int,
        attribute: str,
        low: int = INT64_MIN,
        high: int = INT64_MAX,
    ) -> int | None:
        text = self._substitute(value, line, attribute)
        if text is None:
            return None
        source = f" (from {value})" if text != value else ""
        if not _INTEGER.fullmatch(text):
            self.problem(line, f"{attribute}: expected an integer, got {text!r}{source}")
            return None
        number = int(text)
        if not low <= number <= high:
            self.problem(
                line, f"{attribute}: must be between {low} and {high}, got {number}{source}"
            )
            return None
        return number

    def decimal(self, value: str, line: int, attribute: str) -> float | None:
        text = self._substitute(value, line, attribute)
        if text is None:
            return None
        if not _DECIMAL.fullmatch(text):
            self.problem(line, f"{attribute}: expected a number, got {text!r}")
            return None
        return float(text)

    def activation_mode(self, value: str, line: int) -> ActivationMode:
        text = self._substitute(value, line, "ServicePackageActivationMode")
        if text is None:
            return ActivationMode.SHARED_PROCESS
        try:
            return ActivationMode(text)
        except ValueError:
            modes = ", ".join(m.value for m in ActivationMode)
            self.problem(
                line, f"ServicePackageActivationMode: expected one of {modes}, got {text!r}"
            )
            return ActivationMode.SHARED_PROCESS

    def partition(self, scheme: PartitionScheme) -> PartitionLayout:
        if not isinstance(scheme, UniformInt64Partition):
            self._check_named(scheme)
            return scheme
        line = scheme.line
        count = self.integer(scheme.partition_count, line, "PartitionCount", 1)
        low = self.integer(scheme.low_key, line, "LowKey")
        high = self.integer(scheme.high_key, line, "HighKey")
        if count is None or low is None or high is None:
            return UniformPartitionRange(1, 0, 0)
        if low > high:
            self.problem(
                line, f"UniformInt64Partition: LowKey {low} is greater than HighKey {high}"
            )
        elif count > high - low + 1:
            self.problem(
                line,
                f"UniformInt64Partition: PartitionCount {count} is larger than the key range "
                f"[{low}, {high}] ({high - low + 1} keys)",
            )
        return UniformPartitionRange(count, low, high)

    def _check_named(self, scheme: SingletonPartition | NamedPartition) -> None:
        if isinstance(scheme, NamedPartition):
            seen: set[str] = set()
            for name in scheme.names:
                if name in seen:
                    self.problem(scheme.line, f"NamedPartition: partition name '{name}' repeats")
                seen.add(name)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise ManifestError(self.diagnostics)
