"""The exceptions fabrichost raises.

Every error fabrichost raises on purpose derives from :class:`FabricHostError`, so a caller can
catch one type. Foreign exceptions (lxml, OSError, sqlite3, httpx) are translated at the boundary
that meets them, with ``raise ... from exc`` so the cause stays visible.

Tree::

    FabricHostError
    ├── ManifestError            a manifest, settings or parameter file is not acceptable
    ├── ProtocolError            the host <-> agent channel broke its rules
    │   ├── LocalProtocolError   we were asked to send something illegal in the current state
    │   └── RemoteProtocolError  the peer sent something malformed, oversized or out of turn
    ├── ActivationError          a service package or code package could not be activated
    ├── ProcessError             a process could not be started, signalled or waited for
    ├── StoreError               the state store could not be read or written
    └── ApiError                 an operation was refused, with a Service Fabric error code
        ├── NotFoundError        the named entity does not exist
        ├── ConflictError        the name is taken (CLI exit code 3), or the entity is busy
        ├── GoneError            the entity has finished and takes no more requests
        ├── TooLargeError        the request carries more than can be delivered
        ├── BacklogFullError     the receiver holds too much that is not consumed yet
        ├── NotSupportedError    the receiver (e.g. an older host) cannot do this
        ├── UnavailableError     not ready within the time allowed, or shutting down
        └── UnconfirmedError     sent, but no answer in time: it may or may not have happened

Each error says what happened; the HTTP API chooses the status that answers it
(``fabrichost.wire.http_status``), and the client turns an answer back into the same class.
"""

from __future__ import annotations

import dataclasses


class FabricHostError(Exception):
    """Root of every error fabrichost raises on purpose."""


@dataclasses.dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in one file: where it is and what was expected."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class ManifestError(FabricHostError):
    """A manifest, settings or parameter file is not acceptable.

    ``diagnostics`` holds every problem found, each naming its file and line, so that a user fixes
    them all in one round instead of one per run.
    """

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        if not diagnostics:
            raise ValueError("ManifestError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ProtocolError(FabricHostError):
    """The host <-> agent channel broke its rules; the connection cannot be used any more."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something that is illegal in the connection's current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent a frame that is malformed, oversized, or illegal in the current state."""


class ActivationError(FabricHostError):
    """A service package or one of its code packages could not be activated."""


class ProcessError(FabricHostError):
    """A process could not be started, signalled or waited for."""


class StoreError(FabricHostError):
    """The state store could not be read or written."""


class ApiError(FabricHostError):
    """An operation was refused, with a Service Fabric error code.

    ``code`` is Service Fabric's name for the error (``FABRIC_E_...``), so the CLI, the HTTP API
    and the Python client agree. ``status`` is the HTTP status of an error received from the
    agent's API (None for one raised here): the class says what happened, not the status.
    """

    default_code: str = "FABRIC_E_INVALID_ARGUMENT"
    status: int | None = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotFoundError(ApiError):
    """The named entity does not exist."""

    default_code = "FABRIC_E_DOES_NOT_EXIST"


class ConflictError(ApiError):
    """The name is already taken (the message names the existing entity), or the entity is in
    a state that refuses the operation (a running instance cannot be purged)."""

    default_code = "FABRIC_E_NAME_ALREADY_EXISTS"


class GoneError(ApiError):
    """The entity has finished: it exists, but takes no more requests of this kind."""

    default_code = "FABRIC_E_INVALID_OPERATION"


class TooLargeError(ApiError):
    """The request carries more than can be delivered; nothing was done."""

    default_code = "FABRIC_E_VALUE_TOO_LARGE"


class BacklogFullError(ApiError):
    """The receiver already holds as much unconsumed work as it accepts; try again later."""

    default_code = "FABRIC_E_SERVICE_TOO_BUSY"


class NotSupportedError(ApiError):
    """The receiver cannot do this (e.g. a host that speaks an older protocol version)."""

    default_code = "FABRIC_E_NOT_SUPPORTED"


class UnavailableError(ApiError):
    """Not ready within the time allowed, or shutting down; nothing was done."""

    default_code = "FABRIC_E_SERVICE_OFFLINE"


class UnconfirmedError(ApiError):
    """Sent, but not confirmed in time: the operation may or may not have taken effect."""

    default_code = "FABRIC_E_TIMEOUT"


__all__ = (
    "ActivationError",
    "ApiError",
    "BacklogFullError",
    "ConflictError",
    "Diagnostic",
    "FabricHostError",
    "GoneError",
    "LocalProtocolError",
    "ManifestError",
    "NotFoundError",
    "NotSupportedError",
    "ProcessError",
    "ProtocolError",
    "RemoteProtocolError",
    "StoreError",
    "TooLargeError",
    "UnavailableError",
    "UnconfirmedError",
)
