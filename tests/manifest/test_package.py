"""Loading a package folder: folders, programs, path escapes, references between files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ManifestError
from fabrichost.manifest import (
    ApplicationPackage,
    instantiate,
    load_application_package,
    program_path,
)

from .helpers import (
    DEFAULT_CODE,
    DEFAULT_IMPORT,
    DEFAULT_SERVICES,
    NS,
    app_manifest,
    make_package,
    service_manifest,
    settings,
    write,
)

if TYPE_CHECKING:
    from pathlib import Path


def load_and_instantiate(root: Path) -> None:
    instantiate(load_application_package(root))


def failure(root: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_and_instantiate(root)
    return [str(d) for d in caught.value.diagnostics]


def test_valid_package_loads_with_everything_typed(tmp_path: Path) -> None:
    root = make_package(tmp_path / "app")
    package = load_application_package(root)
    assert isinstance(package, ApplicationPackage)
    assert package.root == root
    assert package.application.application_type_name == "MyAppType"
    assert list(package.service_manifests) == ["WebPkg"]
    assert package.settings["WebPkg"]["Config"].as_dict() == {
        "App": {"Greeting": "hi", "Color": "blue"}
    }
    instance = instantiate(package, {"greeting": "bonjour"})
    assert instance.settings["WebPkg"]["Config"].as_dict() == {
        "App": {"Greeting": "bonjour", "Color": "blue"}
    }
    assert package.settings["WebPkg"]["Config"].as_dict()["App"]["Greeting"] == "hi"  # unchanged
    assert [v.value for v in instance.imports[0].environment_overrides["Code"]] == ["dev"]
    assert instance.default_services[0].instance_count == 2
    assert program_path(package, "WebPkg", "Code") == root / "WebPkg" / "Code" / "run.sh"


def test_not_a_package(tmp_path: Path) -> None:
    assert failure(tmp_path) == [
        f"{tmp_path}: not an application package: ApplicationManifest.xml not found"
    ]


def test_a_visual_studio_project_folder_points_at_its_package(tmp_path: Path) -> None:
    make_package(tmp_path / "ApplicationPackageRoot")
    write(tmp_path / "StartupServices.xml", f'<StartupServicesManifest xmlns="{NS}"/>')
    assert failure(tmp_path) == [
        f"{tmp_path}: not an application package: ApplicationManifest.xml not found; this looks "
        f"like a Visual Studio project: the package is {tmp_path / 'ApplicationPackageRoot'}"
    ]


def test_broken_application_manifest_stops_early(tmp_path: Path) -> None:
    root = make_package(tmp_path, application=app_manifest("", parameters=""))
    assert failure(root) == [
        f"{root / 'ApplicationManifest.xml'}:1: ApplicationManifest is missing a required element: "
        "ServiceManifestImport"
    ]


def test_missing_service_package_folder(tmp_path: Path) -> None:
    root = make_package(tmp_path, service_folder="Elsewhere")
    (found,) = failure(root)
    assert f"{root / 'WebPkg' / 'ServiceManifest.xml'} not found" in found
    assert "ServiceManifestRef 'WebPkg'" in found
    assert "ApplicationManifest.xml:8:" in found


def test_name_and_version_must_match_the_reference(tmp_path: Path) -> None:
    root = make_package(tmp_path, service=service_manifest(name="Other", version="2.0"))
    found = failure(root)
    assert any("ServiceManifestRef names 'WebPkg' but" in f and 'Name="Other"' in f for f in found)
    assert any("asks for version 1.0.0 but" in f and 'Version="2.0"' in f for f in found)


def test_errors_of_every_file_are_collected(tmp_path: Path) -> None:
    root = make_package(tmp_path, settings_xml=settings('<Section Name="S" Bad="x"/>'))
    (root / "WebPkg" / "Data").rmdir()
    found = failure(root)
    assert any("unexpected attribute 'Bad'" in f for f in found)
    assert any("data package 'Data': folder" in f and "not found" in f for f in found)


def test_missing_code_and_config_folders(tmp_path: Path) -> None:
    root = make_package(tmp_path)
    for name in ("Code/run.sh", "Config/Settings.xml"):
        (root / "WebPkg" / name).unlink()
    (root / "WebPkg" / "Code").rmdir()
    (root / "WebPkg" / "Config").rmdir()
    found = failure(root)
    assert any("code package 'Code': folder" in f for f in found)
    assert any("config package 'Config': folder" in f for f in found)


def test_config_package_without_settings_file_cannot_be_overridden(tmp_path: Path) -> None:
    root = make_package(tmp_path)
    (root / "WebPkg" / "Config" / "Settings.xml").unlink()
    package = load_application_package(root)
    assert dict(package.settings["WebPkg"]) == {}
    (found,) = failure(root)
    assert (
        "ConfigOverride 'Config': service manifest WebPkg has no config package 'Config'" in found
    )


@pytest.mark.parametrize(
    ("settings_body", "message"),
    [
        ('<Section Name="Other"/>', "section 'App' is not in"),
        (
            '<Section Name="App"><Parameter Name="Color" Value="x"/></Section>',
            "parameter 'Greeting' is not in section 'App'",
        ),
    ],
)
def test_override_of_a_missing_section_or_parameter(
    tmp_path: Path, settings_body: str, message: str
) -> None:
    root = make_package(tmp_path, settings_xml=settings(settings_body))
    (found,) = failure(root)
    assert message in found
    assert str(root / "ApplicationManifest.xml") in found


def test_must_override_parameters_must_be_overridden(tmp_path: Path) -> None:
    body = (
        '<Section Name="App"><Parameter Name="Greeting" Value="" MustOverride="true"/>'
        '\n<Parameter Name="Secret" Value="" MustOverride="true"/></Section>'
    )
    root = make_package(tmp_path, settings_xml=settings(body))
    (found,) = failure(root)
    assert found.startswith(f"{root / 'WebPkg' / 'Config' / 'Settings.xml'}:2:")
    assert (
        "'Secret' of section 'App' has MustOverride=\"true\" but no ConfigOverride sets it" in found
    )


def test_program_not_found_says_which_path_was_tried(tmp_path: Path) -> None:
    root = make_package(tmp_path)
    (root / "WebPkg" / "Code" / "run.sh").unlink()
    (found,) = failure(root)
    assert f"Program 'run.sh' not found: tried {root / 'WebPkg' / 'Code' / 'run.sh'}" in found


def test_empty_program_is_refused_at_package_level(tmp_path: Path) -> None:
    root = make_package(tmp_path, service=service_manifest(DEFAULT_CODE.replace("run.sh", "")))
    (found,) = failure(root)
    assert "Program: the path is empty" in found


def test_windows_separators_and_quotes_resolve_inside(tmp_path: Path) -> None:
    code = DEFAULT_CODE.replace("run.sh", '"bin\\run.sh"')
    root = make_package(tmp_path, service=service_manifest(code))
    write(root / "WebPkg" / "Code" / "bin" / "run.sh", "")
    package = load_application_package(root)
    assert program_path(package, "WebPkg", "Code") == root / "WebPkg" / "Code" / "bin" / "run.sh"


def test_symlinked_program_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = make_package(tmp_path / "app")
    outside = write(tmp_path / "outside.sh", "")
    link = root / "WebPkg" / "Code" / "run.sh"
    link.unlink()
    link.symlink_to(outside)
    (found,) = failure(root)
    assert f"resolves to {outside}, outside {root / 'WebPkg' / 'Code'}" in found


def test_symlinked_code_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = make_package(tmp_path / "app")
    code = root / "WebPkg" / "Code"
    code.rename(tmp_path / "elsewhere")
    code.symlink_to(tmp_path / "elsewhere")
    (found,) = failure(root)
    assert "code package 'Code'" in found
    assert "outside" in found


@pytest.mark.parametrize(
    "name", ["ApplicationManifest.xml", "WebPkg/ServiceManifest.xml", "WebPkg/Config/Settings.xml"]
)
def test_a_manifest_linking_outside_the_package_is_not_read(tmp_path: Path, name: str) -> None:
    """The loader reads no file outside the package, even a valid one a link names."""
    root = make_package(tmp_path / "app")
    inside = root / name
    outside = tmp_path / "elsewhere.xml"
    inside.rename(outside)
    inside.symlink_to(outside)
    (found,) = failure(root)
    assert found.startswith(f"{inside}: links outside the package: ")
    assert f"resolves to {outside}, outside {root}" in found


def test_service_package_folder_escape_is_refused(tmp_path: Path) -> None:
    text = app_manifest(
        DEFAULT_IMPORT.replace('ServiceManifestName="WebPkg"', 'ServiceManifestName="../WebPkg"')
    )
    root = make_package(tmp_path / "app", application=text)
    (found,) = failure(root)
    assert "ServiceManifestRef '../WebPkg'" in found
    assert "uses '..'" in found


def test_escaping_program_in_the_manifest_is_refused_before_any_lookup(tmp_path: Path) -> None:
    root = make_package(
        tmp_path, service=service_manifest(DEFAULT_CODE.replace("run.sh", "../../x"))
    )
    (found,) = failure(root)
    assert "Program: '../../x' uses '..'" in found


def test_package_level_references(tmp_path: Path) -> None:
    imports = """
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="WebPkg" ServiceManifestVersion="1.0.0" />
    <ResourceOverrides><Endpoints><Endpoint Name="Nope" /></Endpoints></ResourceOverrides>
    <EnvironmentOverrides CodePackageRef="Ghost" />
    <Policies><ResourceGovernancePolicy CodePackageRef="Ghost2" /></Policies>
  </ServiceManifestImport>"""
    services = DEFAULT_SERVICES.replace('"WebType"', '"MissingType"')
    root = make_package(tmp_path, application=app_manifest(imports + services))
    found = failure(root)
    assert any("endpoint override 'Nope' names no endpoint of WebPkg" in f for f in found)
    assert any(
        "EnvironmentOverrides CodePackageRef 'Ghost' names no code package" in f for f in found
    )
    assert any("ResourceGovernancePolicy CodePackageRef 'Ghost2'" in f for f in found)
    assert any(
        "service type 'MissingType' of default service 'Web' is not declared by any imported "
        "service manifest (declared: WebType)" in f
        for f in found
    )


def test_container_code_package_needs_no_folder(tmp_path: Path) -> None:
    container = """
  <CodePackage Name="Box" Version="1">
    <EntryPoint><ContainerHost><ImageName>x</ImageName></ContainerHost></EntryPoint>
  </CodePackage>"""
    root = make_package(
        tmp_path,
        service=service_manifest(
            DEFAULT_CODE
            + container
            + '\n<ConfigPackage Name="Config" Version="1"/><DataPackage Name="Data" Version="1"/>'
        ),
    )
    package = load_application_package(root)
    with pytest.raises(ValueError, match="no ExeHost entry point"):
        program_path(package, "WebPkg", "Box")


def test_program_path_errors_and_external_programs(tmp_path: Path) -> None:
    code = DEFAULT_CODE.replace("<ExeHost>", '<ExeHost IsExternalExecutable="true">').replace(
        "run.sh", "python3"
    )
    root = make_package(tmp_path / "app", service=service_manifest(code))
    package = load_application_package(root)
    assert program_path(package, "WebPkg", "Code") is None
    with pytest.raises(KeyError):
        program_path(package, "WebPkg", "Nope")
    with pytest.raises(ValueError, match="no ExeHost"):
        program_path(package, "WebPkg", "Code", setup=True)
    with pytest.raises(KeyError):
        program_path(package, "Nope", "Code")


def test_program_path_refuses_an_escape_made_after_loading(tmp_path: Path) -> None:
    root = make_package(tmp_path / "app")
    package = load_application_package(root)
    link = root / "WebPkg" / "Code" / "run.sh"
    link.unlink()
    link.symlink_to(os.devnull)
    with pytest.raises(ManifestError, match="outside"):
        program_path(package, "WebPkg", "Code")


def test_parameterised_service_type_is_checked_after_substitution_only(tmp_path: Path) -> None:
    parameters = (
        '<Parameters><Parameter Name="Type" DefaultValue="WebType"/>'
        '<Parameter Name="Web_InstanceCount" DefaultValue="1"/></Parameters>'
    )
    services = DEFAULT_SERVICES.replace('"WebType"', '"[Type]"')
    imports = DEFAULT_IMPORT.replace('Value="[Greeting]"', 'Value="x"').replace(
        'Value="[Mode]"', 'Value="y"'
    )
    root = make_package(
        tmp_path, application=app_manifest(imports + services, parameters=parameters)
    )
    instance = instantiate(load_application_package(root))
    assert instance.default_services[0].service_type_name == "WebType"
