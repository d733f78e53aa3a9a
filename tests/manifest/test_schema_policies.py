"""Parts of the schema fabrichost does not act on are still checked as the schema says.

Container host policies, certificates, diagnostics, extensions and application policies were
once accepted unchecked; a real cluster refuses what the schema refuses, so fabrichost does too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, cast

import pytest
from lxml import etree

from fabrichost.errors import ManifestError
from fabrichost.manifest import load_document

from .helpers import DEFAULT_CODE, app_manifest, service_manifest, write

if TYPE_CHECKING:
    from collections.abc import Iterable


class LogEntry(Protocol):
    line: int


SCHEMA: Final = (
    Path(__file__).resolve().parents[2].parent
    / "shared/sfcorpus/schema/ServiceFabricServiceModel.xsd"
)

IMPORT_HEAD = (
    '\n  <ServiceManifestImport>\n    <ServiceManifestRef ServiceManifestName="WebPkg" '
    'ServiceManifestVersion="1.0.0" />'
)  # ServiceManifestRef on line 3 of app(...), what follows from line 4


def app(policies: str = "", after_imports: str = "") -> str:
    """An ApplicationManifest without parameters; ``policies`` start on line 4."""
    body = f"{IMPORT_HEAD}\n{policies}\n  </ServiceManifestImport>{after_imports}"
    return app_manifest(body, parameters="")


def container(inner: str, attributes: str = 'CodePackageRef="Code"') -> str:
    """Import policies holding one ContainerHostPolicies; its children start on line 6."""
    return (
        f"<Policies>\n<ContainerHostPolicies {attributes}>\n{inner}\n"
        "</ContainerHostPolicies>\n</Policies>"
    )


def problems(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    path = write(tmp_path / "file.xml", text)
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    return [(d.line, d.message) for d in caught.value.diagnostics]


GOOD = {
    "container host policies": app(
        container(
            '<RepositoryCredentials AccountName="me" Password="pw" PasswordEncrypted="false"/>\n'
            '<HealthConfig IncludeDockerHealthStatusInSystemHealthReport="true"/>\n'
            '<PortBinding ContainerPort="80" EndpointRef="Web"/>\n'
            '<PortBinding ContainerPort="443"/>\n'
            '<CertificateRef Name="Cert" X509FindValue="ab12"/>\n'
            '<LogConfig Driver="etwlogs"><DriverOption Name="a" Value="b"/></LogConfig>\n'
            '<NetworkConfig NetworkType="Open"/>\n'
            '<Volume Source="c:\\data" Destination="c:\\in" IsReadOnly="true">'
            '<DriverOption Name="x" Value="y"/></Volume>\n'
            '<SecurityOption Value="credentialspec=file://gmsa.json"/>\n'
            '<ImageOverrides><Image Name="img:1809" Os="14393"/></ImageOverrides>\n'
            '<Label Name="team" Value="web"/>',
            'CodePackageRef="Code" Isolation="hyperv" AutoRemove="true"',
        )
    ),
    "certificates in any order and number": app(
        after_imports=(
            "\n  <Certificates>"
            '<EndpointCertificate X509FindValue="aa" Name="e1"/>'
            '<SecretsCertificate X509FindType="FindByThumbprint" X509FindValue="bb" Name="s"/>'
            '<EndpointCertificate X509FindValue="cc" Name="e2"/>'
            "</Certificates>"
        )
    ),
    "application diagnostics": app(
        after_imports=(
            "\n  <Diagnostics>"
            '<CrashDumpSource IsEnabled="true"><Destinations>'
            '<LocalStore RelativeFolderPath="dumps"/>'
            '<AzureBlob ConnectionString="cs" ConnectionStringIsEncrypted="false"/>'
            "</Destinations></CrashDumpSource>"
            '<ETWSource><Parameters><Parameter Name="p" Value="v"/></Parameters></ETWSource>'
            '<FolderSource RelativeFolderPath="logs"/><FolderSource RelativeFolderPath="more"/>'
            "</Diagnostics>"
        )
    ),
    "application policies in any order": app(
        after_imports=(
            "\n  <Policies>"
            '<HealthPolicy ConsiderWarningAsError="true"><ServiceTypeHealthPolicy '
            'ServiceTypeName="WebType" MaxPercentUnhealthyServices="10"/></HealthPolicy>'
            '<DefaultRunAsPolicy UserRef="me"/>'
            "</Policies>"
        )
    ),
    "service diagnostics": service_manifest(
        DEFAULT_CODE + "\n<Diagnostics><ETW><ProviderGuids>"
        '<ProviderGuid Value="12345678-9abc-DEF0-1234-56789abcdef0"/>'
        '</ProviderGuids><ManifestDataPackages><ManifestDataPackage Name="Etw" Version="1"/>'
        "</ManifestDataPackages></ETW></Diagnostics>"
    ),
    "extensions with foreign content": service_manifest(
        types=(
            '<StatelessServiceType ServiceTypeName="WebType"><Extensions>'
            '<Extension Name="a"><x:Labels xmlns:x="urn:x"><x:Label Key="k">v</x:Label>'
            '</x:Labels></Extension><Extension Name="b" GeneratedId="g"><y:Any xmlns:y="urn:y"/>'
            "</Extension></Extensions></StatelessServiceType>"
        )
    ),
}


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_good_examples_load(tmp_path: Path, text: str) -> None:
    assert load_document(write(tmp_path / "file.xml", text))


def test_port_binding_with_container_host_is_refused_twice(tmp_path: Path) -> None:
    # The example: an attribute PortBinding doesn't have, and ContainerPort missing.
    found = problems(
        tmp_path, app(container('<PortBinding ContainerHost="80" EndpointRef="Web"/>'))
    )
    assert found == [
        (
            6,
            "unexpected attribute 'ContainerHost' on PortBinding "
            "(allowed: ContainerPort, EndpointRef)",
        ),
        (
            6,
            "PortBinding is missing the required attribute 'ContainerPort' "
            "(required: ContainerPort)",
        ),
    ]


BAD = {
    "container port not an integer": (
        app(container('<PortBinding ContainerPort="eighty"/>')),
        6,
        "PortBinding ContainerPort: expected an integer; got 'eighty'",
    ),
    "container port beyond xs:int": (
        app(container('<PortBinding ContainerPort="4294967296"/>')),
        6,
        "PortBinding ContainerPort: must be at most 2147483647; got 4294967296",
    ),
    "text in container host policies": (
        app(container("80:8080")),
        5,
        "element 'ContainerHostPolicies' may only contain elements, not text (found '80:8080')",
    ),
    "unknown child of container host policies": (
        app(container('<Ports Value="80"/>')),
        6,
        "element 'Ports' is not expected here in ContainerHostPolicies; expected "
        "RepositoryCredentials, HealthConfig, PortBinding, CertificateRef, LogConfig",
    ),
    "container host policies without a code package": (
        app(container("", attributes='Isolation="process"')),
        5,
        "ContainerHostPolicies is missing the required attribute 'CodePackageRef' "
        "(required: CodePackageRef)",
    ),
    "volume without a destination": (
        app(container('<Volume Source="s"/>')),
        6,
        "Volume is missing the required attribute 'Destination' (required: Source, Destination)",
    ),
    "health config boolean": (
        app(container('<HealthConfig RestartContainerOnUnhealthyDockerHealthStatus="yes"/>')),
        6,
        "RestartContainerOnUnhealthyDockerHealthStatus: expected true or false; got 'yes'",
    ),
    "certificate find type": (
        app(
            after_imports='\n<Certificates><SecretsCertificate X509FindType="FindByName" '
            'X509FindValue="x"/></Certificates>'
        ),
        6,
        "SecretsCertificate X509FindType: expected one of FindByThumbprint, FindBySubjectName, "
        "FindByExtension; got 'FindByName'",
    ),
    "certificate without a find value": (
        app(after_imports='\n<Certificates><EndpointCertificate Name="e"/></Certificates>'),
        6,
        "EndpointCertificate is missing the required attribute 'X509FindValue'",
    ),
    "unknown certificate kind": (
        app(after_imports='\n<Certificates><ClientCertificate Name="e"/></Certificates>'),
        6,
        "element 'ClientCertificate' is not expected here in Certificates; expected "
        "SecretsCertificate, EndpointCertificate",
    ),
    "diagnostics out of order": (
        app(
            after_imports='\n<Diagnostics><FolderSource RelativeFolderPath="a"/>'
            "<ETWSource/></Diagnostics>"
        ),
        6,
        "element 'ETWSource' is not expected here in Diagnostics; expected FolderSource",
    ),
    "diagnostics store without its folder": (
        app(
            after_imports="\n<Diagnostics><CrashDumpSource><Destinations><LocalStore/>"
            "</Destinations></CrashDumpSource></Diagnostics>"
        ),
        6,
        "LocalStore is missing the required attribute 'RelativeFolderPath'",
    ),
    "diagnostics blob names both required attributes": (
        app(
            after_imports="\n<Diagnostics><ETWSource><Destinations><AzureBlob/>"
            "</Destinations></ETWSource></Diagnostics>"
        ),
        6,
        "AzureBlob is missing the required attribute 'ConnectionString' "
        "(required: ConnectionString, ConnectionStringIsEncrypted)",
    ),
    "provider guid pattern": (
        service_manifest(
            DEFAULT_CODE + '\n<Diagnostics><ETW><ProviderGuids><ProviderGuid Value="not-a-guid"/>'
            "</ProviderGuids></ETW></Diagnostics>"
        ),
        10,
        "ProviderGuid Value: expected a value matching [a-fA-F0-9]{8}-",
    ),
    "extension holding a fabric element": (
        service_manifest(
            types='<StatelessServiceType ServiceTypeName="T"><Extensions><Extension Name="e">'
            "<Labels/></Extension></Extensions></StatelessServiceType>"
        ),
        2,
        "element 'Labels' is not expected here in Extension; expected an element of another "
        "namespace",
    ),
    "empty extension": (
        service_manifest(
            types='<StatelessServiceType ServiceTypeName="T"><Extensions><Extension Name="e"/>'
            "</Extensions></StatelessServiceType>"
        ),
        2,
        "Extension is missing a required element: an element of another namespace",
    ),
    "extension with two elements": (
        service_manifest(
            types='<StatelessServiceType ServiceTypeName="T"><Extensions><Extension Name="e">'
            '<x:A xmlns:x="urn:x"/><x:B xmlns:x="urn:x"/></Extension></Extensions>'
            "</StatelessServiceType>"
        ),
        2,
        "element 'B' (namespace 'urn:x') is not expected here in Extension; expected nothing "
        "more inside Extension",
    ),
    "extension without a name": (
        service_manifest(
            types='<StatelessServiceType ServiceTypeName="T"><Extensions><Extension>'
            '<x:A xmlns:x="urn:x"/></Extension></Extensions></StatelessServiceType>'
        ),
        2,
        "Extension is missing the required attribute 'Name' (required: Name)",
    ),
    "application policy twice": (
        app(
            after_imports='\n<Policies><DefaultRunAsPolicy UserRef="a"/>\n'
            '<DefaultRunAsPolicy UserRef="b"/></Policies>'
        ),
        7,
        "element 'DefaultRunAsPolicy' is not expected again (first at line 6) in Policies; "
        "expected LogCollectionPolicies, HealthPolicy, SecurityAccessPolicies",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), BAD.values(), ids=BAD.keys())
def test_bad_examples_are_refused(tmp_path: Path, text: str, line: int, message: str) -> None:
    found = problems(tmp_path, text)
    assert any(where == line and message in what for where, what in found), found


@pytest.fixture(scope="module")
def libxml2_schema() -> etree.XMLSchema:
    if not SCHEMA.is_file():
        pytest.skip(f"schema not found at {SCHEMA}")
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_libxml2_accepts_the_good_examples(libxml2_schema: etree.XMLSchema, text: str) -> None:
    # The examples themselves are checked against the real schema by another validator.
    libxml2_schema.assertValid(etree.fromstring(text.encode()))


@pytest.mark.parametrize(("text", "line", "message"), BAD.values(), ids=BAD.keys())
def test_libxml2_refuses_the_bad_examples_on_the_same_line(
    libxml2_schema: etree.XMLSchema, text: str, line: int, message: str
) -> None:
    assert not libxml2_schema.validate(etree.fromstring(text.encode()))
    # lxml-stubs leave the error log opaque; its entries carry the line libxml2 reports.
    errors = cast("Iterable[LogEntry]", libxml2_schema.error_log)
    assert line in {error.line for error in errors}, message
