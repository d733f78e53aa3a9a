"""A replica's published address, read as Service Fabric's endpoints JSON.

Service Fabric publishes ``{"Endpoints": {"Web": "http://127.0.0.1:30017"}}`` as an address
with named endpoints; a service may also publish a plain string. Strategy: this is the same
contract as ``fabrichost.wire.endpoints_of`` (being added beside); it is private here until that
lands, then this module goes.
"""

from __future__ import annotations

import json


def endpoints_of(address: str) -> dict[str, str]:
    """The named endpoints in ``address``.

    The ``Endpoints`` map if ``address`` is SF's endpoints JSON, ``{"": address}`` for any other
    non-empty string, ``{}`` for an empty one.
    """
    if not address:
        return {}
    try:
        value = json.loads(address)
    except ValueError:
        return {"": address}
    if isinstance(value, dict) and isinstance(value.get("Endpoints"), dict):
        return {str(k): str(v) for k, v in value["Endpoints"].items()}
    return {"": address}
