"""The image store holds exactly the provisioned types: unprovision and refusals leave no copy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from fabrichost.client import FabricClient
from fabrichost.errors import ApiError, ConflictError, NotFoundError
from fabrichost.wire import ServiceDescription, ServiceKind
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


def test_links_inside_the_package_are_copied_as_what_they_name(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    code = package / "GuestPkg" / "Code"
    (code / "real.sh").write_text((code / "run.sh").read_text())
    (code / "real.sh").chmod(0o755)
    (code / "run.sh").unlink()
    (code / "run.sh").symlink_to(code / "real.sh")  # the program: absolute, inside the package
    (code / "lib").mkdir()
    (code / "lib" / "data.txt").write_text("v1")
    (code / "data.txt").symlink_to("lib/data.txt")
    (code / "alias.txt").symlink_to("data.txt")  # a link to a link
    (code / "libdir").symlink_to("lib")
    cluster.client.deploy(package, "fabric:/G")
    (copy,) = _copies(cluster)
    copied = cluster.state_dir / "ImageStore" / copy / "GuestPkg" / "Code"
    assert [p for p in copied.rglob("*") if p.is_symlink()] == []
    for name in ("data.txt", "alias.txt", "libdir/data.txt"):
        assert (copied / name).read_text() == "v1", name
    (code / "lib" / "data.txt").write_text("v2")  # the user's package changes later:
    assert (copied / "alias.txt").read_text() == "v1"  # the provisioned type does not
    cluster.client.create_service(  # and the linked program runs from the copy
        "fabric:/G",
        ServiceDescription(name="fabric:/G/Web", type_name="GuestType", kind=ServiceKind.STATELESS),
        wait=True,
    )


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


def test_a_deploy_provisions_again_when_a_concurrent_failed_deploy_took_the_type_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    other_package = write_guest_package(tmp_path / "O", script=SLEEPER, app_type="Other")
    cluster.client.deploy(other_package, "fabric:/Taken")
    other = FabricClient(cluster.client.endpoint)

    class Interleaved(FabricClient):
        """Plays a second deploy of the same new type, which fails, around this one's
        provision: it provisions first, this deploy finds the type there, then the other's
        create fails and it takes the type back before this deploy creates its application."""

        def provision_outcome(
            self, package_dir: str | Path, *, reuse_existing: bool = False
        ) -> Any:
            if not interleaved:
                interleaved.append(True)
                theirs = other.provision_outcome(package_dir, reuse_existing=True)
                assert theirs.created
                ours = super().provision_outcome(package_dir, reuse_existing=reuse_existing)
                assert not ours.created
                with pytest.raises(ConflictError):
                    other.create_application_outcome("fabric:/Taken", "GuestAppType", "1.0.0")
                other.unprovision("GuestAppType", "1.0.0")  # what its failed deploy does
                return ours
            return super().provision_outcome(package_dir, reuse_existing=reuse_existing)

    interleaved: list[bool] = []
    with Interleaved(cluster.client.endpoint) as client, other:
        outcome = client.deploy_outcome(package, "fabric:/Mine")
    assert interleaved
    assert outcome.application["Name"] == "fabric:/Mine"
    assert outcome.type_provisioned  # this deploy provisioned the type again
    names = sorted(a["Name"] for a in cluster.client.applications())
    assert names == ["fabric:/Mine", "fabric:/Taken"]
