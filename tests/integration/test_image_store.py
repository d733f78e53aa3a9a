"""The image store holds exactly the provisioned types: unprovision and refusals leave no copy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ApiError, ConflictError, NotFoundError
from tests.integration.conftest import write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def _copies(cluster: Cluster) -> list[str]:
    store = cluster.state_dir / "ImageStore"
    return sorted(str(p.relative_to(store)) for p in store.glob("*/*") if p.is_dir())


def test_unprovision_removes_the_type_and_its_copy(cluster: Cluster, tmp_path: Path) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    cluster.client.deploy(package, "fabric:/G")
    (copy,) = _copies(cluster)
    assert copy.startswith("GuestAppType/1.0.0-")
    with pytest.raises(ApiError, match="is used by fabric:/G") as in_use:
        cluster.client.unprovision("GuestAppType", "1.0.0")
    assert in_use.value.code == "FABRIC_E_APPLICATION_TYPE_IN_USE"
    assert _copies(cluster) == [copy]  # refused: nothing changed
    cluster.client.delete_application("fabric:/G")
    cluster.client.unprovision("GuestAppType", "1.0.0")
    assert cluster.client.application_types() == []
    assert _copies(cluster) == []
    assert not (cluster.state_dir / "ImageStore" / "GuestAppType").exists()
    with pytest.raises(NotFoundError):
        cluster.client.unprovision("GuestAppType", "1.0.0")
    cluster.client.deploy(package, "fabric:/G")  # and it can be provisioned again
    assert _copies(cluster) == [copy]


def test_a_provision_refused_for_different_content_leaves_no_copy(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.provision(write_guest_package(tmp_path / "A", script=SLEEPER))
    before = _copies(cluster)
    changed = write_guest_package(tmp_path / "B", script=SLEEPER + "# changed\n")
    with pytest.raises(ConflictError, match="with different content"):
        cluster.client.provision(changed)
    assert _copies(cluster) == before
    with pytest.raises(ConflictError, match="already provisioned;"):  # same content, no reuse
        cluster.client.provision(tmp_path / "A")
    assert _copies(cluster) == before  # the registered copy is kept
