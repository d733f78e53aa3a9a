"""Testing with fabrichost: the pytest plugin :mod:`fabrichost.testing.plugin`.

The plugin is registered with pytest's ``pytest11`` entry point, so installing fabrichost makes
its fixtures available in every test suite: ``fabric_cluster`` (a
:class:`fabrichost.LocalCluster` shared by the tests of one pytest process, one per xdist
worker) and ``fabric_cluster_factory`` (clusters of a test's own). See ``docs/testing.md``.
"""

from __future__ import annotations

__all__ = ()
