"""The staged versions: a new ``-dev.<n>`` for what changed, the staged one kept otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.dev import PackageKind, PackagePart, next_counter, plan_versions
from fabrichost.manifest import load_application_package
from tests.dev.package import write_shop

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.dev import StagedVersions
    from fabrichost.manifest import ApplicationPackage

WEB = PackagePart("ShopPkg", PackageKind.CODE, "Web")
WORKER = PackagePart("ShopPkg", PackageKind.CODE, "Worker")
CONFIG = PackagePart("ShopPkg", PackageKind.CONFIG, "Config")
DATA = PackagePart("ShopPkg", PackageKind.DATA, "Data")
ALL = {WEB, WORKER, CONFIG, DATA}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "Shop")


def first(root: Path) -> tuple[ApplicationPackage, StagedVersions]:
    package = load_application_package(root)
    return package, plan_versions(None, None, package, (), 1).versions


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_first_deploy_stages_every_version(root: Path) -> None:
    package = load_application_package(root)
    plan = plan_versions(None, None, package, (), 7)
    assert plan.changed
    assert plan.bumped == ALL
    assert plan.versions.application == "2.0.0-dev.7"
    assert plan.versions.service_manifests == {"ShopPkg": "1.0.0-dev.7"}
    assert plan.versions.parts == {
        WEB: "1.0.0-dev.7",
        WORKER: "1.1.0-dev.7",
        CONFIG: "1.2.0-dev.7",
        DATA: "1.3.0-dev.7",
    }


@pytest.mark.parametrize("part", [WEB, WORKER, CONFIG, DATA])
def test_a_changed_package_alone_gets_a_new_version(root: Path, part: PackagePart) -> None:
    package, versions = first(root)
    plan = plan_versions(versions, package, load_application_package(root), {part}, 2)
    assert plan.changed
    assert plan.bumped == {part}
    assert plan.versions.parts[part].endswith("-dev.2")
    assert all(plan.versions.parts[p] == versions.parts[p] for p in ALL - {part})
    assert plan.versions.service_manifests == {"ShopPkg": "1.0.0-dev.2"}
    assert plan.versions.application == "2.0.0-dev.2"


def test_a_code_package_whose_declaration_changed_gets_a_new_version(root: Path) -> None:
    package, versions = first(root)
    edit(root / "ShopPkg" / "ServiceManifest.xml", 'Value="unset"', 'Value="none"')
    plan = plan_versions(versions, package, load_application_package(root), (), 2)
    assert plan.bumped == {WEB}


def test_an_endpoint_change_gives_every_code_package_of_its_manifest_a_new_version(
    root: Path,
) -> None:
    package, versions = first(root)
    edit(
        root / "ShopPkg" / "ServiceManifest.xml",
        '<Endpoint Name="Web" />',
        '<Endpoint Name="Web" /><Endpoint Name="Admin" />',
    )
    plan = plan_versions(versions, package, load_application_package(root), (), 2)
    assert plan.bumped == {WEB, WORKER}


def test_an_override_in_the_import_gives_its_service_package_new_versions(root: Path) -> None:
    package, versions = first(root)
    edit(root / "ApplicationManifest.xml", 'Value="[Greeting]"', 'Value="hi [Greeting]"')
    plan = plan_versions(versions, package, load_application_package(root), (), 2)
    assert plan.bumped == ALL


def test_a_parameter_default_gives_every_package_a_new_version(root: Path) -> None:
    package, versions = first(root)
    edit(root / "ApplicationManifest.xml", 'DefaultValue="hello"', 'DefaultValue="bye"')
    plan = plan_versions(versions, package, load_application_package(root), (), 2)
    assert plan.bumped == ALL


def test_a_comment_or_a_moved_line_changes_nothing(root: Path) -> None:
    package, versions = first(root)
    manifest = root / "ShopPkg" / "ServiceManifest.xml"
    edit(manifest, "<ServiceTypes>", "<!-- hi -->\n\n<ServiceTypes>")
    edit(root / "ApplicationManifest.xml", "<Parameters>", "\n<Parameters>")
    plan = plan_versions(versions, package, load_application_package(root), (), 2)
    assert not plan.changed
    assert plan.bumped == set()
    assert plan.versions.parts == versions.parts
    assert plan.versions.service_manifests == versions.service_manifests


def test_a_new_package_gets_a_version_and_the_others_keep_theirs(root: Path) -> None:
    package, versions = first(root)
    (root / "ShopPkg" / "Assets").mkdir()
    edit(
        root / "ShopPkg" / "ServiceManifest.xml",
        '<DataPackage Name="Data" Version="1.3.0" />',
        '<DataPackage Name="Data" Version="1.3.0" />\n  <DataPackage Name="Assets" Version="9" />',
    )
    plan = plan_versions(versions, package, load_application_package(root), (), 2)
    assets = PackagePart("ShopPkg", PackageKind.DATA, "Assets")
    assert plan.bumped == {assets}
    assert plan.versions.parts[assets] == "9-dev.2"
    assert plan.versions.service_manifests == {"ShopPkg": "1.0.0-dev.2"}


def test_the_user_s_new_version_is_the_base_of_the_staged_one(root: Path) -> None:
    package, versions = first(root)
    edit(root / "ShopPkg" / "ServiceManifest.xml", 'Version="1.1.0"', 'Version="1.5.0"')
    plan = plan_versions(versions, package, load_application_package(root), (), 3)
    assert plan.bumped == {WORKER}
    assert plan.versions.parts[WORKER] == "1.5.0-dev.3"


def test_the_counter_starts_above_every_staged_version_of_the_type() -> None:
    provisioned = [
        ("ShopType", "2.0.0"),
        ("ShopType", "2.0.0-dev.4"),
        ("ShopType", "1.0.0-dev.11"),
        ("OtherType", "1.0.0-dev.50"),
        ("ShopType", "2.0.0-dev.x"),
    ]
    assert next_counter("ShopType", provisioned) == 12
    assert next_counter("NewType", provisioned) == 1
