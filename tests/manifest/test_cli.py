"""`fabrichost manifest check`: files alone, folders as packages, human and JSON output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fabrichost.cli import main

from .helpers import (
    NS,
    app_manifest,
    make_package,
    parameters_file,
    service_manifest,
    settings,
    write,
)

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_valid_files_and_package_print_ok_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_package(tmp_path / "app")
    params = write(tmp_path / "Local.xml", parameters_file('<Parameter Name="Mode" Value="x"/>'))
    paths = [
        root,
        root / "ApplicationManifest.xml",
        root / "WebPkg" / "ServiceManifest.xml",
        root / "WebPkg" / "Config" / "Settings.xml",
        params,
    ]
    assert main(["manifest", "check", *map(str, paths)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {root} (ApplicationPackage MyAppType 1.0.0, 1 service package)",
        f"ok: {paths[1]} (ApplicationManifest MyAppType 1.0.0)",
        f"ok: {paths[2]} (ServiceManifest WebPkg 1.0.0)",
        f"ok: {paths[3]} (Settings 1 sections)",
        f"ok: {params} (Application fabric:/MyApp, 1 parameters)",
    ]


def test_problems_print_file_line_message_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "Settings.xml", settings())
    bad = write(tmp_path / "bad.xml", settings('\n<Section Name="a" Oops="1"/>\n<Section/>'))
    assert main(["manifest", "check", str(good), str(bad)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {good} (Settings 1 sections)",
        f"{bad}:2: unexpected attribute 'Oops' on Section (allowed: Name)",
        f"{bad}:3: Section is missing the required attribute 'Name' (required: Name)",
    ]


def test_unknown_root_and_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write(
        tmp_path / "Cluster.xml", f'<?xml version="1.0"?>\n<ClusterManifest xmlns="{NS}"/>'
    )
    startup = write(
        tmp_path / "StartupServices.xml",
        f'<?xml version="1.0"?>\n<StartupServicesManifest xmlns="{NS}"/>',
    )
    missing = tmp_path / "nope.xml"
    assert main(["manifest", "check", str(other), str(startup), str(missing)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{other}:2: root element ClusterManifest is not one of")
    assert out[1].startswith(f"{startup}:2: a Visual Studio startup services file")
    assert "declare the services in ApplicationManifest.xml under <DefaultServices>" in out[1]
    assert out[2] == f"{missing}: no such file or folder"


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_package(tmp_path / "app", service=service_manifest(name="Wrong"))
    unreadable = write(tmp_path / "broken.xml", "<Settings")
    app = write(tmp_path / "ApplicationManifest.xml", app_manifest())
    assert main(["manifest", "check", "--json", str(root), str(unreadable), str(app)]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["kind"], r["ok"]) for r in results] == [
        (str(root), "ApplicationPackage", False),
        (str(unreadable), "unknown", False),
        (str(app), "ApplicationManifest", True),
    ]
    (error,) = results[0]["errors"]
    assert error["file"] == str(root / "ApplicationManifest.xml")
    assert error["line"] == 8
    assert "ServiceManifestRef names 'WebPkg'" in error["message"]
    assert results[1]["errors"][0]["line"] == 1
    assert results[2]["errors"] == []


def test_json_output_when_all_is_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "ServiceManifest.xml", service_manifest())
    assert main(["manifest", "check", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"path": str(path), "kind": "ServiceManifest", "ok": True, "errors": []}
    ]


def test_a_path_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "check"]) == 2
    assert "Missing argument" in capsys.readouterr().err
