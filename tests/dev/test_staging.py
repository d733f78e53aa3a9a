"""The staged copy: the user's package, checked, with staged versions in the copy only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.dev import plan_versions, snapshot, write_versions
from fabrichost.errors import ManifestError
from fabrichost.manifest import load_application_package
from tests.dev.package import write_shop

if TYPE_CHECKING:
    from pathlib import Path


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_copy_carries_the_staged_versions_and_the_user_s_files_do_not(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "Shop")
    (root / "ShopPkg" / "Web" / "__pycache__").mkdir()
    (root / "ShopPkg" / "Web" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    before = contents(root)
    snap = snapshot(root, tmp_path / "stage" / "1")
    write_versions(snap, plan_versions(None, None, snap.package, (), 5).versions)

    assert contents(root) == before
    staged = load_application_package(snap.folder)
    assert staged.application.application_type_version == "2.0.0-dev.5"
    manifest = staged.service_manifests["ShopPkg"]
    assert manifest.version == "1.0.0-dev.5"
    assert [c.version for c in manifest.code_packages] == ["1.0.0-dev.5", "1.1.0-dev.5"]
    assert [p.version for p in (*manifest.config_packages, *manifest.data_packages)] == [
        "1.2.0-dev.5",
        "1.3.0-dev.5",
    ]
    copied = contents(snap.folder)
    assert "ShopPkg/Web/__pycache__/x.cpython-311.pyc" not in copied
    assert copied["ShopPkg/Data/prices.csv"] == before["ShopPkg/Data/prices.csv"]
    # Only the versions differ: every line is where the user wrote it.
    app_lines = before["ApplicationManifest.xml"].decode().splitlines()
    staged_lines = copied["ApplicationManifest.xml"].decode().splitlines()
    assert len(app_lines) == len(staged_lines)
    assert [a == b for a, b in zip(app_lines, staged_lines, strict=True)].count(False) == 2


def test_a_package_that_does_not_check_names_the_user_s_file_and_line(tmp_path: Path) -> None:
    root = write_shop(tmp_path / "Shop")
    manifest = root / "ShopPkg" / "ServiceManifest.xml"
    manifest.write_text(manifest.read_text().replace("<Program>run.sh", "<Program>gone.sh", 1))
    stage = tmp_path / "stage" / "1"
    with pytest.raises(ManifestError) as caught:
        snapshot(root, stage)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.file == str(manifest)
    assert diagnostic.line == 8
    assert "gone.sh" in diagnostic.message
    assert str(stage) not in str(caught.value)
