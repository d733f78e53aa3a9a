"""HTTP specifics of the API: which status answers which error, and back; fabrichost's header.

The agent's errors say what happened; this table is the one place that decides how the HTTP API
answers each (Service Fabric's ``{"Error": {"Code", "Message"}}`` with a status), and how the
client turns such an answer back into the same exception class. The most specific class wins.
"""

from __future__ import annotations

from typing import Final

from fabrichost.errors import (
    ActivationError,
    ApiError,
    BacklogFullError,
    ConflictError,
    FabricHostError,
    GoneError,
    ManifestError,
    NotFoundError,
    NotSupportedError,
    TooLargeError,
    UnavailableError,
    UnconfirmedError,
)

#: Response header of a provision with ``ReuseExisting``: ``created`` or ``reused``, so that a
#: deploy whose create then fails can take back a type it registered (Service Fabric's answer
#: has no such field).
PROVISION_HEADER: Final = "Fabrichost-Provision"
#: Response header of an application or service create: ``created``, or ``existing`` when a
#: create policy (``IfExists``, a retried ``Idempotency-Key``) answered with one that was there.
#: The status is Service Fabric's either way (201 for an application, 202 for a service), as
#: its client accepts no other.
CREATE_HEADER: Final = "Fabrichost-Create"
#: The Service Fabric runtime version whose REST API the agent serves (``GET
#: /$/GetClusterVersion``): the one the azure-servicefabric 8.2 client, and so sfctl 11.2, is
#: made for (sfctl warns on a cluster version other than 8.x or 9.x). fabrichost's own version
#: is in ``/$/fabrichost/Status``.
SERVICE_FABRIC_VERSION: Final = "8.2.0.0"

#: The HTTP status of each refusal; a class not listed takes its nearest listed base's.
STATUS_OF: Final[dict[type[ApiError], int]] = {
    ApiError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    GoneError: 410,
    TooLargeError: 413,
    BacklogFullError: 429,
    NotSupportedError: 501,
    UnavailableError: 503,
    UnconfirmedError: 504,
}
_CLASS_OF: Final = {status: kind for kind, status in STATUS_OF.items()}


def error_answer(exc: FabricHostError) -> tuple[int, str, str]:
    """(HTTP status, Service Fabric error code, message) that answer ``exc``."""
    if isinstance(exc, ApiError):
        status = next(STATUS_OF[k] for k in type(exc).__mro__ if k in STATUS_OF)
        return status, exc.code, exc.message
    if isinstance(exc, ManifestError):  # the package is not acceptable: the caller's to fix
        return 400, "FABRIC_E_IMAGEBUILDER_VALIDATION_ERROR", str(exc)
    if isinstance(exc, ActivationError):  # the request cannot be carried out as asked
        return 400, "FABRIC_E_INVALID_OPERATION", str(exc)
    return 500, "E_FAIL", str(exc)


def error_from_answer(status: int, code: str, message: str) -> ApiError:
    """The exception an error answer stands for, with ``status`` recorded on it."""
    error = _CLASS_OF.get(status, ApiError)(message, code=code)
    error.status = status
    return error
