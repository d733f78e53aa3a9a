"""The pytest plugin (``pytest11`` entry point ``fabrichost``): local clusters as fixtures.

Usage::

    def test_web(fabric_cluster):
        fabric_cluster.deploy("pkgs/WebApp", name="fabric:/Web")
        url = fabric_cluster.endpoints("fabric:/Web/Web")["Web"]
        assert urllib.request.urlopen(url).status == 200

``fabric_cluster`` is one :class:`fabrichost.LocalCluster` per pytest process (so one per
pytest-xdist worker, on a free port and a temporary state directory of its own), started when
the first test asks for it and stopped at the end of the session; the applications a test
deployed through it are deleted after that test. ``fabric_cluster_factory(**kwargs)`` makes
clusters that belong to one test (``LocalCluster``'s keyword arguments; ``nodes`` defaults to
``--fabric-nodes``). When a test that used either fails, the agent's log and the services'
console output are attached to its report. If pytest is killed, even by SIGKILL, its clusters
stop by themselves (``LocalCluster``).

This module is imported by every pytest run of an environment that has fabrichost installed,
so it imports nothing of fabrichost's agent until a test asks for a cluster.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from fabrichost import LocalCluster

#: The clusters a test used, so that its report can carry their logs.
_USED: Final = pytest.StashKey[list["LocalCluster"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fabrichost", "fabrichost local clusters")
    group.addoption(
        "--fabric-nodes",
        type=int,
        default=1,
        metavar="N",
        help="node count of the fabric_cluster fixture's cluster (default 1)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # The call's report is made before the fixtures are torn down: the clusters still run.
    if report.failed:
        for cluster in item.stash.get(_USED, []):
            report.sections.append((f"fabrichost logs of {cluster.state_dir}", cluster.logs()))
    return report


def _use(request: pytest.FixtureRequest, cluster: LocalCluster) -> None:
    item = request.node
    used = item.stash.setdefault(_USED, [])
    if cluster not in used:
        used.append(cluster)


@pytest.fixture(scope="session")
def fabric_session_cluster(pytestconfig: pytest.Config) -> Iterator[LocalCluster]:
    """The cluster behind ``fabric_cluster``: one per pytest process (xdist worker)."""
    from fabrichost import LocalCluster

    with LocalCluster(nodes=pytestconfig.getoption("fabric_nodes")) as cluster:
        yield cluster


@pytest.fixture
def fabric_cluster(
    request: pytest.FixtureRequest, fabric_session_cluster: LocalCluster
) -> Iterator[LocalCluster]:
    """A running :class:`fabrichost.LocalCluster` shared by the tests of this process; the
    applications this test deploys through it are deleted after the test."""
    cluster = fabric_session_cluster
    _use(request, cluster)
    before = len(cluster.deployed)
    try:
        yield cluster
    finally:
        _delete_applications(cluster, cluster.deployed[before:])
        del cluster.deployed[before:]


def _delete_applications(cluster: LocalCluster, names: list[str]) -> None:
    from fabrichost.errors import NotFoundError

    for name in reversed(names):
        with contextlib.suppress(NotFoundError):  # the test deleted it itself
            cluster.client.delete_application(name)


@pytest.fixture
def fabric_cluster_factory(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config
) -> Iterator[Callable[..., LocalCluster]]:
    """Make clusters of this test's own: ``fabric_cluster_factory(nodes=3)`` takes
    :class:`fabrichost.LocalCluster`'s keyword arguments; each is stopped after the test."""
    from fabrichost import LocalCluster

    made: list[LocalCluster] = []

    def make(**kwargs: Any) -> LocalCluster:
        kwargs.setdefault("nodes", pytestconfig.getoption("fabric_nodes"))
        cluster = LocalCluster(**kwargs)
        made.append(cluster)
        _use(request, cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in reversed(made):
            cluster.stop()
