"""A replica's address as Service Fabric publishes it, and the endpoints read back from it.

Service Fabric publishes what a replica's ``open()`` (or ``change_role()``) returned as its
address, a plain string. For a guest executable, whose process cannot answer, the hosting
layer publishes the endpoints of its service manifest instead, as one JSON object (Hosting2
``EndpointsHelper::ConvertToJsonString``)::

    {"Endpoints": {"Web": "http://127.0.0.1:30017/", "Raw": "127.0.0.1:30018"}}

Each listener address is ``<UriScheme>://<ip>:<port>/<PathSuffix>`` when the endpoint has a
``UriScheme``, else ``<ip>:<port>`` (the ``Protocol`` attribute is not used). A package without
endpoints publishes the empty string. Reliable Services' listeners publish the same JSON shape,
so a client reads both through :func:`endpoints_of`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

ENDPOINTS_KEY: Final = "Endpoints"


def listener_address(host: str, port: int, uri_scheme: str = "", path_suffix: str = "") -> str:
    """One endpoint's published address, spelled as Service Fabric spells it.

    >>> listener_address("127.0.0.1", 30017, "http")
    'http://127.0.0.1:30017/'
    >>> listener_address("127.0.0.1", 30018)
    '127.0.0.1:30018'
    """
    if not uri_scheme:
        return f"{host}:{port}"
    return f"{uri_scheme}://{host}:{port}/{path_suffix}"


def endpoints_address(endpoints: Mapping[str, str]) -> str:
    """The address that publishes ``endpoints`` (name → listener address): SF's JSON object,
    or ``""`` when there are none (as SF publishes for a package without endpoints).

    >>> endpoints_address({"Web": "127.0.0.1:30017"})
    '{"Endpoints": {"Web": "127.0.0.1:30017"}}'
    """
    if not endpoints:
        return ""
    return json.dumps({ENDPOINTS_KEY: dict(endpoints)})


def endpoints_of(address: str) -> dict[str, str]:
    """The endpoints a replica address names: name → listener address.

    The address is either SF's endpoints JSON (``{"Endpoints": {...}}``), whose map is
    returned, or a plain string (what a runtime service's ``open()`` returned), returned under
    the name ``""``. The empty address (a replica not open yet, or a guest without endpoints)
    names none. Never raises: a string that merely looks like JSON is a plain address.

    >>> endpoints_of('{"Endpoints": {"Web": "http://127.0.0.1:30017/"}}')
    {'Web': 'http://127.0.0.1:30017/'}
    >>> endpoints_of("tcp://127.0.0.1:31001")
    {'': 'tcp://127.0.0.1:31001'}
    >>> endpoints_of("")
    {}
    """
    if not address:
        return {}
    if address.lstrip().startswith("{"):
        try:
            parsed: object = json.loads(address)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            found = parsed.get(ENDPOINTS_KEY)
            if isinstance(found, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in found.items()
            ):
                return dict(found)
    return {"": address}
