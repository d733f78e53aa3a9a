"""File-level semantic rules: unique names and references inside one file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ManifestError
from fabrichost.manifest import load_document

from .helpers import DEFAULT_CODE, app_manifest, parameters_file, service_manifest, settings, write

if TYPE_CHECKING:
    from pathlib import Path

REF = '<ServiceManifestRef ServiceManifestName="{0}" ServiceManifestVersion="1"/>'
IMPORT = "\n<ServiceManifestImport>" + REF + "{1}</ServiceManifestImport>"
SERVICE = (
    '\n<Service Name="{0}"><StatelessService ServiceTypeName="T"><SingletonPartition/>'
    "</StatelessService></Service>"
)


def exe(program: str, external: str = "false") -> str:
    return f"""
  <CodePackage Name="Code" Version="1">
    <EntryPoint><ExeHost IsExternalExecutable="{external}"><Program>{program}</Program>
    </ExeHost></EntryPoint>
  </CodePackage>"""


CASES = {
    "duplicate parameter (any case)": (
        app_manifest(
            IMPORT.format("P", ""),
            parameters='<Parameters>\n<Parameter Name="A" DefaultValue="1"/>'
            '\n<Parameter Name="a" DefaultValue="2"/></Parameters>',
        ),
        3,
        "duplicate parameter 'a' (first at line 2)",
    ),
    "duplicate service manifest import": (
        app_manifest(IMPORT.format("P", "") + IMPORT.format("P", ""), parameters=""),
        3,
        "duplicate ServiceManifestImport of 'P'",
    ),
    "duplicate default service": (
        app_manifest(
            IMPORT.format("P", "")
            + "<DefaultServices>"
            + SERVICE.format("S") * 2
            + "</DefaultServices>",
            parameters="",
        ),
        4,
        "duplicate default service 'S'",
    ),
    "duplicate config override": (
        app_manifest(
            IMPORT.format(
                "P",
                '<ConfigOverrides><ConfigOverride Name="C"/>\n'
                '<ConfigOverride Name="C"/></ConfigOverrides>',
            ),
            parameters="",
        ),
        3,
        "duplicate ConfigOverride 'C'",
    ),
    "duplicate user": (
        app_manifest(
            IMPORT.format("P", "")
            + '<Principals><Users><User Name="U"/>\n<User Name="U"/></Users></Principals>',
            parameters="",
        ),
        3,
        "duplicate user 'U'",
    ),
    "run-as user not in principals": (
        app_manifest(
            IMPORT.format(
                "P", '\n<Policies><RunAsPolicy CodePackageRef="Code" UserRef="Ghost"/></Policies>'
            ),
            parameters="",
        ),
        3,
        "RunAsPolicy UserRef 'Ghost' names no user in Principals",
    ),
    "duplicate service type": (
        service_manifest(
            types='<StatelessServiceType ServiceTypeName="T"/>\n'
            '<StatefulServiceType ServiceTypeName="T"/>'
        ),
        3,
        "duplicate service type 'T' (first at line 2)",
    ),
    "duplicate code package": (
        service_manifest(DEFAULT_CODE * 2),
        10,
        "duplicate code package 'Code'",
    ),
    "duplicate config package": (
        service_manifest(DEFAULT_CODE + '\n<ConfigPackage Name="C" Version="1"/>' * 2),
        11,
        "duplicate config package 'C'",
    ),
    "duplicate data package": (
        service_manifest(DEFAULT_CODE + '\n<DataPackage Name="D" Version="1"/>' * 2),
        11,
        "duplicate data package 'D'",
    ),
    "duplicate endpoint": (
        service_manifest(
            DEFAULT_CODE + '<Resources><Endpoints><Endpoint Name="E"/>\n<Endpoint Name="E"/>'
            "</Endpoints></Resources>"
        ),
        10,
        "duplicate endpoint 'E'",
    ),
    "endpoint code package reference": (
        service_manifest(
            DEFAULT_CODE
            + '<Resources><Endpoints><Endpoint Name="E" CodePackageRef="Nope"/></Endpoints>'
            + "</Resources>"
        ),
        9,
        "Endpoint 'E' CodePackageRef 'Nope' names no code package (have: Code)",
    ),
    "duplicate environment variable": (
        service_manifest(
            DEFAULT_CODE.replace(
                "</CodePackage>",
                '<EnvironmentVariables><EnvironmentVariable Name="X"/>\n'
                '<EnvironmentVariable Name="X"/></EnvironmentVariables></CodePackage>',
            )
        ),
        10,
        "duplicate environment variable in code package 'Code': 'X'",
    ),
    "program with ..": (service_manifest(exe("..\\evil.sh")), 4, "uses '..' to leave"),
    "absolute program": (service_manifest(exe("/bin/sh")), 4, "is an absolute path"),
    "drive-letter program": (service_manifest(exe("C:\\x.exe")), 4, "is an absolute path"),
    "duplicate section": (
        settings('<Section Name="S"/>\n<Section Name="S"/>'),
        2,
        "duplicate section",
    ),
    "duplicate settings parameter": (
        settings(
            '<Section Name="S"><Parameter Name="P" Value=""/>\n'
            '<Parameter Name="P" Value=""/></Section>'
        ),
        2,
        "duplicate parameter in section 'S': 'P'",
    ),
    "duplicate parameter in a parameter file": (
        parameters_file('<Parameter Name="A" Value="1"/>\n<Parameter Name="A" Value="2"/>'),
        3,
        "duplicate parameter 'A' (first at line 2); the schema allows it but Service Fabric's "
        "deployment tooling refuses it",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), CASES.values(), ids=CASES.keys())
def test_file_rule(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "file.xml", text)
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    found = [(d.line, d.message) for d in caught.value.diagnostics]
    assert any(where == line and message in what for where, what in found), found


def test_external_program_is_not_checked_as_a_path(tmp_path: Path) -> None:
    assert load_document(
        write(tmp_path / "s.xml", service_manifest(exe("/usr/bin/python3", "true")))
    )


def test_parameterised_user_ref_is_not_checked_against_principals(tmp_path: Path) -> None:
    text = app_manifest(
        IMPORT.format("P", '<Policies><RunAsPolicy CodePackageRef="C" UserRef="[U]"/></Policies>'),
        parameters='<Parameters><Parameter Name="U" DefaultValue="x"/></Parameters>',
    )
    assert load_document(write(tmp_path / "a.xml", text))
