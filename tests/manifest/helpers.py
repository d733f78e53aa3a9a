"""Small XML fixtures for the manifest tests, written into tmp_path by each test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

NS: Final = "http://schemas.microsoft.com/2011/01/fabric"

DEFAULT_PARAMETERS: Final = """
  <Parameters>
    <Parameter Name="Web_InstanceCount" DefaultValue="2" />
    <Parameter Name="Greeting" DefaultValue="hello" />
    <Parameter Name="Mode" DefaultValue="dev" />
  </Parameters>"""

DEFAULT_IMPORT: Final = """
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="WebPkg" ServiceManifestVersion="1.0.0" />
    <ConfigOverrides>
      <ConfigOverride Name="Config">
        <Settings>
          <Section Name="App">
            <Parameter Name="Greeting" Value="[Greeting]" />
          </Section>
        </Settings>
      </ConfigOverride>
    </ConfigOverrides>
    <EnvironmentOverrides CodePackageRef="Code">
      <EnvironmentVariable Name="MODE" Value="[Mode]" />
    </EnvironmentOverrides>
  </ServiceManifestImport>"""

DEFAULT_SERVICES: Final = """
  <DefaultServices>
    <Service Name="Web">
      <StatelessService ServiceTypeName="WebType" InstanceCount="[Web_InstanceCount]">
        <SingletonPartition />
      </StatelessService>
    </Service>
  </DefaultServices>"""


def app_manifest(
    body: str | None = None,
    *,
    parameters: str = DEFAULT_PARAMETERS,
    attributes: str = 'ApplicationTypeName="MyAppType" ApplicationTypeVersion="1.0.0"',
) -> str:
    """An ApplicationManifest; ``body`` replaces the imports and default services."""
    inner = DEFAULT_IMPORT + DEFAULT_SERVICES if body is None else body
    return (
        f'<ApplicationManifest {attributes} xmlns="{NS}">{parameters}{inner}\n'
        "</ApplicationManifest>\n"
    )


DEFAULT_CODE: Final = """
  <CodePackage Name="Code" Version="1.0.0">
    <EntryPoint>
      <ExeHost>
        <Program>run.sh</Program>
      </ExeHost>
    </EntryPoint>
  </CodePackage>"""


def service_manifest(
    body: str | None = None,
    *,
    name: str = "WebPkg",
    version: str = "1.0.0",
    types: str = '<StatelessServiceType ServiceTypeName="WebType" />',
) -> str:
    """A ServiceManifest; ``body`` replaces the code, config and data packages and endpoints."""
    if body is None:
        body = (
            DEFAULT_CODE
            + """
  <ConfigPackage Name="Config" Version="1.0.0" />
  <DataPackage Name="Data" Version="1.0.0" />
  <Resources>
    <Endpoints>
      <Endpoint Name="WebEndpoint" Protocol="http" Port="8080" />
    </Endpoints>
  </Resources>"""
        )
    return (
        f'<ServiceManifest Name="{name}" Version="{version}" xmlns="{NS}">\n'
        f"  <ServiceTypes>{types}</ServiceTypes>{body}\n</ServiceManifest>\n"
    )


def settings(body: str | None = None) -> str:
    if body is None:
        body = """
  <Section Name="App">
    <Parameter Name="Greeting" Value="hi" />
    <Parameter Name="Color" Value="blue" />
  </Section>"""
    return f'<Settings xmlns="{NS}">{body}\n</Settings>\n'


def parameters_file(body: str, name: str = "fabric:/MyApp") -> str:
    return (
        f'<Application Name="{name}" xmlns="{NS}">\n'
        f"  <Parameters>{body}</Parameters>\n</Application>\n"
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_package(
    root: Path,
    *,
    application: str | None = None,
    service: str | None = None,
    settings_xml: str | None = None,
    service_folder: str = "WebPkg",
) -> Path:
    """A complete, valid application package; each argument replaces one file's text."""
    write(root / "ApplicationManifest.xml", application or app_manifest())
    package = root / service_folder
    write(package / "ServiceManifest.xml", service or service_manifest())
    program = write(package / "Code" / "run.sh", "#!/bin/sh\nexec sleep 1000\n")
    program.chmod(0o755)
    write(package / "Config" / "Settings.xml", settings_xml or settings())
    (package / "Data").mkdir(exist_ok=True)
    return root
