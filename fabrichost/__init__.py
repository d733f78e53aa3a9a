"""fabrichost: a real local process host for Service Fabric application packages.

``from fabrichost import LocalCluster`` gives a local cluster owned by the calling process
(:class:`fabrichost.local.LocalCluster`).
"""

from __future__ import annotations

import typing

from fabrichost._version import __version__ as __version__

if typing.TYPE_CHECKING:
    from fabrichost.errors import FabricHostError as FabricHostError
    from fabrichost.local import LocalCluster as LocalCluster

__all__ = ("FabricHostError", "LocalCluster", "__version__")


def __getattr__(name: str) -> object:
    # Strategy: LocalCluster is loaded on first use (PEP 562). Every `import fabrichost.x` runs
    # this module, and `import fabrichost.client` (or the pytest plugin) must not load the
    # agent, its HTTP server and the parsers that LocalCluster's daemon brings. FabricHostError
    # too: `fabrichost --version` imports this module and nothing else (docs/PERFORMANCE.md).
    if name == "FabricHostError":
        from fabrichost.errors import FabricHostError

        globals()[name] = FabricHostError
        return FabricHostError
    if name == "LocalCluster":
        from fabrichost.local import LocalCluster

        globals()[name] = LocalCluster
        return LocalCluster
    raise AttributeError(f"module 'fabrichost' has no attribute {name!r}")
