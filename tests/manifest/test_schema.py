"""The structure check: each rule taken from the schema, on a small file written per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ManifestError
from fabrichost.manifest import load_document
from fabrichost.manifest._schema_rules import (
    All,
    Attr,
    Elem,
    Particle,
    Text,
    check_element,
    one,
)
from fabrichost.manifest._xml import parse_xml

from .helpers import (
    DEFAULT_CODE,
    NS,
    app_manifest,
    parameters_file,
    service_manifest,
    settings,
    write,
)

if TYPE_CHECKING:
    from pathlib import Path


def problems(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    path = write(tmp_path / "file.xml", text)
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    assert all(d.file == str(path) for d in caught.value.diagnostics)
    return [(d.line, d.message) for d in caught.value.diagnostics]


def ep(inner: str) -> str:
    """A service manifest whose only code package has ``inner`` as its ExeHost content."""
    code = f"""
  <CodePackage Name="Code" Version="1">
    <EntryPoint>
      <ExeHost>{inner}</ExeHost>
    </EntryPoint>
  </CodePackage>"""
    return service_manifest(code)


CASES = {
    "missing required attribute": (
        app_manifest(attributes='ApplicationTypeName="A"'),
        1,
        "missing the required attribute 'ApplicationTypeVersion'",
    ),
    "empty nonempty attribute": (
        service_manifest(name=""),
        1,
        "ServiceManifest Name: must not be empty",
    ),
    "enumeration": (
        service_manifest(
            DEFAULT_CODE
            + '\n<Resources><Endpoints><Endpoint Name="e" Protocol="ftp"/></Endpoints></Resources>'
        ),
        10,
        "Protocol: expected one of http, https, tcp, udp; got 'ftp'",
    ),
    "boolean": (
        service_manifest(types='<StatelessServiceType ServiceTypeName="T" UseImplicitHost="yes"/>'),
        2,
        "UseImplicitHost: expected true or false; got 'yes'",
    ),
    "integer": (
        service_manifest(
            DEFAULT_CODE
            + '\n<Resources><Endpoints><Endpoint Name="e" Port="1_0"/></Endpoints></Resources>'
        ),
        10,
        "Port: expected an integer; got '1_0'",
    ),
    "integer above maximum": (
        service_manifest(
            DEFAULT_CODE
            + '\n<Resources><Endpoints><Endpoint Name="e" Port="70000"/></Endpoints></Resources>'
        ),
        10,
        "Port: must be at most 65535; got 70000",
    ),
    "integer below minimum": (
        ep('<Program>a</Program>\n<ConsoleRedirection FileMaxSizeInKb="64"/>'),
        6,
        "FileMaxSizeInKb: must be at least 128; got 64",
    ),
    "text enumeration": (
        ep("<Program>a</Program>\n<WorkingFolder>Home</WorkingFolder>"),
        6,
        "'WorkingFolder' must be one of Work, CodePackage, CodeBase; got 'Home'",
    ),
    "unexpected attribute": (
        settings('<Section Name="s" Color="red"/>'),
        1,
        "unexpected attribute 'Color' on Section (allowed: Name)",
    ),
    "element order": (
        app_manifest(
            '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="a" '
            'ServiceManifestVersion="1"/></ServiceManifestImport>\n<Parameters/>',
            parameters="",
        ),
        2,
        "element 'Parameters' is not expected here in ApplicationManifest; expected "
        "ServiceManifestImport, ServiceTemplates, DefaultServices",
    ),
    "missing required child": (
        app_manifest("", parameters=""),
        1,
        "ApplicationManifest is missing a required element: ServiceManifestImport",
    ),
    "missing required child in a choice": (
        service_manifest("\n<CodePackage Name='C' Version='1'><EntryPoint/></CodePackage>"),
        3,
        "EntryPoint is missing a required element: ExeHost or DllHost or ContainerHost",
    ),
    "too many of an element": (
        ep("<Program>a</Program>\n<Program>b</Program>"),
        6,
        "element 'Program' is not expected here in ExeHost; expected Arguments, WorkingFolder",
    ),
    "element from another namespace": (
        settings('\n<x:Section xmlns:x="urn:other" Name="s"/>'),
        2,
        "element 'Section' (namespace 'urn:other') is not expected here in Settings",
    ),
    "text in an element-only element": (
        settings('\n<Section Name="s">oops</Section>'),
        2,
        "element 'Section' may only contain elements, not text (found 'oops')",
    ),
    "element inside a text element": (
        ep("<Program>a<b/></Program>"),
        5,
        "element 'Program' holds text only; unexpected element 'b'",
    ),
    "text in an empty element": (
        app_manifest(
            '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="a" '
            'ServiceManifestVersion="1">x</ServiceManifestRef></ServiceManifestImport>'
        ),
        6,
        "element 'ServiceManifestRef' may only contain elements",
    ),
    "unknown root": (
        f'<ClusterManifest xmlns="{NS}"/>',
        1,
        "root element ClusterManifest is not one of ApplicationManifest, ServiceManifest, "
        "Settings, Application",
    ),
    "startup services file": (
        f'<?xml version="1.0"?>\n<StartupServicesManifest xmlns="{NS}"><Services/>'
        "</StartupServicesManifest>",
        2,
        "a Visual Studio startup services file (StartupServices.xml): only Visual Studio's "
        "deployment tooling reads it; it is not part of an application package and the Service "
        "Fabric schema does not declare it. fabrichost does not read it: declare the services "
        "in ApplicationManifest.xml under <DefaultServices> (their parameters under "
        "<Parameters>), or create them after deploying with 'fabrichost service create'",
    ),
    "startup services parameter file": (
        f'<StartupServices xmlns="{NS}"><Parameters/></StartupServices>',
        1,
        "a Visual Studio startup services parameter file (StartupServiceParameters/*.xml): only",
    ),
    "root without the fabric namespace": (
        "<Settings/>",
        1,
        "root element Settings is not one of",
    ),
    "root in another namespace": (
        '<Settings xmlns="urn:x"/>',
        1,
        "root element {urn:x}Settings",
    ),
    "parameter file needs Parameters": (
        f'<Application Name="fabric:/A" xmlns="{NS}"/>',
        1,
        "Application is missing a required element: Parameters",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), CASES.values(), ids=CASES.keys())
def test_structure_rule(tmp_path: Path, text: str, line: int, message: str) -> None:
    found = problems(tmp_path, text)
    assert any(where == line and message in what for where, what in found), found


def test_every_problem_of_a_file_is_reported_together(tmp_path: Path) -> None:
    text = settings(
        '\n<Section Name="a" Bad="1"/>\n<Section>text</Section>\n<Other/>\n<Section Name="b"/>'
    )
    found = problems(tmp_path, text)
    assert [line for line, _ in found] == [2, 3, 3, 4]


def test_children_after_an_order_error_are_still_checked(tmp_path: Path) -> None:
    text = parameters_file('\n<Parameter Name="a" Value="1"/>').replace(
        "<Parameters>", '<Bogus/>\n  <Parameters><Parameter Name=""/>'
    )
    found = problems(tmp_path, text)
    messages = [m for _, m in found]
    assert any("'Bogus' is not expected" in m for m in messages)
    assert any("Parameter Name: must not be empty" in m for m in messages)
    assert any("missing the required attribute 'Value'" in m for m in messages)


def test_namespaced_attributes_are_allowed_and_unknown_ones_on_manifests_too(
    tmp_path: Path,
) -> None:
    text = app_manifest(
        attributes='ApplicationTypeName="A" ApplicationTypeVersion="1" ___CorrelationId___="x" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="a b"'
    )
    assert load_document(write(tmp_path / "a.xml", text))


def test_extension_content_is_one_element_of_another_namespace(tmp_path: Path) -> None:
    # ExtensionsType: <xs:any namespace="##other" processContents="lax"/>, the only content the
    # schema leaves open; anything inside the foreign element is accepted, text included.
    types = (
        '<StatelessServiceType ServiceTypeName="T"><Extensions>'
        '<Extension Name="e"><x:Labels xmlns:x="urn:x" Any="1"><x:L>text</x:L></x:Labels>'
        "</Extension></Extensions></StatelessServiceType>"
    )
    assert load_document(write(tmp_path / "ok.xml", service_manifest(types=types)))


def test_check_element_directly_on_a_tiny_model() -> None:
    decl = Elem("Root", (Attr("N", required=True),), (one(Elem("Leaf", content=Text(("a",)))),))
    node = parse_xml(f'<Root xmlns="{NS}" N="1"><Leaf>a</Leaf></Root>'.encode(), "f")
    assert check_element(node, decl, "f") == []
    bad = parse_xml(f'<Root xmlns="{NS}"><Leaf>b</Leaf><Leaf>a</Leaf></Root>'.encode(), "f")
    assert [d.message for d in check_element(bad, decl, "f")] == [
        "Root is missing the required attribute 'N' (required: N)",
        "'Leaf' must be one of a; got 'b'",
        "element 'Leaf' is not expected here in Root; expected nothing more inside Root",
    ]


def test_an_all_group_takes_each_element_once_in_any_order() -> None:
    decl = Elem("Root", content=All((Particle(Elem("A"), 1, 1), Particle(Elem("B"), 0, 1))))
    good = parse_xml(f'<Root xmlns="{NS}"><B/><A/></Root>'.encode(), "f")
    assert check_element(good, decl, "f") == []
    twice = parse_xml(f'<Root xmlns="{NS}">\n<B/>\n<B/></Root>'.encode(), "f")
    assert [(d.line, d.message) for d in check_element(twice, decl, "f")] == [
        (3, "element 'B' is not expected again (first at line 2) in Root; expected A"),
        (1, "Root is missing a required element: A"),
    ]
    extra = parse_xml(f'<Root xmlns="{NS}"><B/><A/><C/><A xmlns="urn:x"/></Root>'.encode(), "f")
    assert [d.message for d in check_element(extra, decl, "f")] == [
        "element 'C' is not expected in Root; expected nothing more inside Root",
        "element 'A' (namespace 'urn:x') is not expected in Root; expected nothing more inside "
        "Root",
    ]
