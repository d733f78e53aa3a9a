"""A changed path → the package part or manifest it belongs to, by the manifests' names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.dev import Layout, ManifestFile, PackageKind, PackagePart, classify, sort_burst
from fabrichost.manifest import load_application_package
from tests.dev.package import write_shop

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Layout]:
    root = write_shop(tmp_path / "Shop")
    return root, Layout.of(load_application_package(root))


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("ApplicationManifest.xml", ManifestFile(None)),
        ("ShopPkg/ServiceManifest.xml", ManifestFile("ShopPkg")),
        ("ShopPkg/Web/run.sh", PackagePart("ShopPkg", PackageKind.CODE, "Web")),
        ("ShopPkg/Web/lib/deep/util.py", PackagePart("ShopPkg", PackageKind.CODE, "Web")),
        ("ShopPkg/Worker/new.py", PackagePart("ShopPkg", PackageKind.CODE, "Worker")),
        ("ShopPkg/Config/Settings.xml", PackagePart("ShopPkg", PackageKind.CONFIG, "Config")),
        ("ShopPkg/Data/prices.csv", PackagePart("ShopPkg", PackageKind.DATA, "Data")),
        # Not deployed: beside the manifests, a folder no manifest declares, an unknown package.
        ("README.md", None),
        ("ShopPkg/notes.txt", None),
        ("ShopPkg/Old/run.sh", None),
        ("OtherPkg/Code/run.sh", None),
        ("ShopPkg", None),
        ("ShopPkg/Web", None),
        # A service manifest the application does not import yet: its import may be on its way.
        ("OtherPkg/ServiceManifest.xml", ManifestFile("OtherPkg")),
    ],
)
def test_a_path_belongs_to_what_the_manifests_name_it(
    shop: tuple[Path, Layout], relative: str, expected: object
) -> None:
    root, layout = shop
    assert classify(root, root / relative, layout) == expected


def test_a_path_outside_the_package_belongs_to_nothing(
    shop: tuple[Path, Layout], tmp_path: Path
) -> None:
    root, layout = shop
    assert classify(root, tmp_path / "elsewhere" / "ApplicationManifest.xml", layout) is None
    assert classify(root, root.parent / "ShopPkg" / "Web" / "run.sh", layout) is None


def test_without_a_layout_only_the_manifests_are_known(shop: tuple[Path, Layout]) -> None:
    root, _ = shop
    assert classify(root, root / "ApplicationManifest.xml", None) == ManifestFile(None)
    assert classify(root, root / "ShopPkg" / "ServiceManifest.xml", None) == ManifestFile("ShopPkg")
    assert classify(root, root / "ShopPkg" / "Web" / "run.sh", None) is None


def test_a_burst_is_sorted_into_parts_manifests_and_the_rest(shop: tuple[Path, Layout]) -> None:
    root, layout = shop
    burst = sort_burst(
        root,
        [
            root / "ShopPkg" / "Web" / "a.py",
            root / "ShopPkg" / "Web" / "b.py",
            root / "ShopPkg" / "Config" / "Settings.xml",
            root / "ApplicationManifest.xml",
            root / "notes.txt",
        ],
        layout,
    )
    assert burst.parts == {
        PackagePart("ShopPkg", PackageKind.CODE, "Web"),
        PackagePart("ShopPkg", PackageKind.CONFIG, "Config"),
    }
    assert burst.manifests == {ManifestFile(None)}
    assert burst.ignored == (root / "notes.txt",)
    assert not burst.empty
    assert sort_burst(root, [root / "notes.txt"], layout).empty


def test_a_burst_not_applied_is_merged_with_the_next_and_both_are_named(
    shop: tuple[Path, Layout],
) -> None:
    root, layout = shop
    first = sort_burst(root, [root / "ShopPkg" / "Web" / "a.py"], layout)
    later = sort_burst(root, [root / "ShopPkg" / "ServiceManifest.xml"], layout)
    merged = first.merged(later)
    assert merged.parts == first.parts
    assert merged.manifests == later.manifests
    assert merged.describe(root) == "ShopPkg/ServiceManifest.xml, ShopPkg/Web/a.py"
    many = sort_burst(root, [root / "ShopPkg" / "Web" / f"{n}.py" for n in range(5)], layout)
    assert many.describe(root) == "ShopPkg/Web/0.py, ShopPkg/Web/1.py, ShopPkg/Web/2.py and 2 more"
