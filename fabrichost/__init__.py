"""fabrichost: a real local process host for Service Fabric application packages."""

from __future__ import annotations

from fabrichost._version import __version__ as __version__
from fabrichost.errors import FabricHostError as FabricHostError

__all__ = ("FabricHostError", "__version__")
