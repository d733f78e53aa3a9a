"""The rules for application and service names (Service Fabric's ``fabric:/`` URIs)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from fabrichost.errors import ApiError
from fabrichost.wire import DOT_SEGMENT_RULE, dot_segment

if TYPE_CHECKING:
    from fabrichost.agent._model import ServiceDescription

MAX_NAME_LENGTH: Final = 1024  # an application or service name, "fabric:/" included


def check_name(name: str, parent: str | None = None) -> None:
    """A name is ``fabric:/`` and segments, none empty, ``.`` or ``..``; a service's is under its
    application's."""
    what = "application" if parent is None else "service"

    def invalid(reason: str) -> ApiError:
        shown = name if len(name) <= 80 else name[:77] + "..."
        return ApiError(
            f"invalid {what} name {shown!r}: {reason}", code="FABRIC_E_INVALID_NAME_URI"
        )

    if "~" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise invalid(
            "'~' and control characters cannot be part of a name ('~' stands for '/' in entity ids)"
        )
    if any(c.isspace() for c in name):
        raise invalid("whitespace cannot be part of a name")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(f"longer than {MAX_NAME_LENGTH} characters")
    if not name.startswith("fabric:/") or len(name) <= len("fabric:/"):
        raise invalid("expected fabric:/<name>")
    segments = name.removeprefix("fabric:/").split("/")
    if any(not segment for segment in segments):
        raise invalid("a name cannot have an empty segment ('//' or a trailing '/')")
    dot = dot_segment(name)
    if dot is not None:
        raise invalid(f"its segment {dot!r} is a dot segment; {DOT_SEGMENT_RULE}")
    if segments[0].startswith("fabric:"):
        raise invalid("'fabric:' appears twice")
    if parent is not None and not name.startswith(parent + "/"):
        if name == parent:
            raise invalid(f"it is the application's own name; use {parent}/<ServiceName>")
        raise invalid(f"a service's name must be under its application, {parent}/...")


def absolute(app_name: str, desc: ServiceDescription) -> ServiceDescription:
    """DefaultServices names are relative to their application (Name="ServiceA")."""
    if desc.name.startswith("fabric:/"):
        return desc
    return dataclasses.replace(desc, name=f"{app_name}/{desc.name}")
