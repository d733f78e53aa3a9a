"""Hostile or broken input the manifest layer refuses with a diagnostic, never a crash: a
DOCTYPE naming a FIFO (not opened), too many attributes, an overlong program name, a symlink
loop, a settings file linking outside the package."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fabrichost.manifest import check_path

if TYPE_CHECKING:
    from pathlib import Path

NS = "http://schemas.microsoft.com/2011/01/fabric"


def test_a_utf16_doctype_naming_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block the parser forever
    doc = (
        f'<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE Settings SYSTEM "{fifo}">\n'
        f'<Settings xmlns="{NS}"/>\n'
    )
    path = tmp_path / "Settings.xml"
    path.write_bytes(doc.encode("utf-16"))
    result = check_path(path)
    assert not result.ok
    assert "DOCTYPE" in result.diagnostics[0].message


def test_an_element_with_too_many_attributes_is_refused_at_once(tmp_path: Path) -> None:
    attributes = " ".join(f'a{i}="1"' for i in range(20000))
    path = tmp_path / "Settings.xml"
    path.write_text(f'<Settings xmlns="{NS}"><Section Name="S" {attributes}/></Settings>')
    result = check_path(path)
    assert not result.ok
    assert "20001 attributes" in result.diagnostics[0].message


def _package(root: Path, program: str) -> Path:
    (root / "Pkg" / "Code").mkdir(parents=True)
    (root / "ApplicationManifest.xml").write_text(
        f'<ApplicationManifest xmlns="{NS}" ApplicationTypeName="T" ApplicationTypeVersion="1">'
        '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="Pkg" '
        'ServiceManifestVersion="1"/></ServiceManifestImport></ApplicationManifest>'
    )
    (root / "Pkg" / "ServiceManifest.xml").write_text(
        f'<ServiceManifest xmlns="{NS}" Name="Pkg" Version="1"><ServiceTypes>'
        '<StatelessServiceType ServiceTypeName="S" UseImplicitHost="true"/></ServiceTypes>'
        f'<CodePackage Name="Code" Version="1"><EntryPoint><ExeHost><Program>{program}</Program>'
        "</ExeHost></EntryPoint></CodePackage></ServiceManifest>"
    )
    return root


def test_a_program_name_too_long_is_a_diagnostic_not_a_crash(tmp_path: Path) -> None:
    result = check_path(_package(tmp_path / "App", "x" * 300))
    assert not result.ok
    assert any("ServiceManifest.xml" in d.file for d in result.diagnostics)


def test_a_program_that_is_a_symlink_loop_is_a_diagnostic_not_a_crash(tmp_path: Path) -> None:
    package = _package(tmp_path / "App", "run.sh")
    (package / "Pkg" / "Code" / "run.sh").symlink_to("run.sh")
    result = check_path(package)
    assert not result.ok
    assert any("run.sh" in d.message for d in result.diagnostics)


def test_a_settings_file_linking_outside_the_package_is_refused(tmp_path: Path) -> None:
    package = _package(tmp_path / "App", "run.sh")
    (package / "Pkg" / "Code" / "run.sh").write_text("#!/bin/sh\n")
    outside = tmp_path / "elsewhere.xml"
    outside.write_text(f'<Settings xmlns="{NS}"><Section Name="Leaked"/></Settings>')
    manifest = package / "Pkg" / "ServiceManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            "</CodePackage>", '</CodePackage><ConfigPackage Name="Config" Version="1"/>'
        )
    )
    (package / "Pkg" / "Config").mkdir()
    (package / "Pkg" / "Config" / "Settings.xml").symlink_to(outside)
    result = check_path(package)
    assert not result.ok
    assert any("links outside the package" in d.message for d in result.diagnostics)
