"""A local cluster owned by the process that starts it: :class:`LocalCluster`.

Import it as ``from fabrichost import LocalCluster``. Tests, scripts and ``fabrichost run`` use
it; ``fabrichost.testing`` builds its pytest fixtures on it.
"""

from __future__ import annotations

from fabrichost.local._cluster import LocalCluster as LocalCluster

__all__ = ("LocalCluster",)
