"""An application package with every kind of part, written into a test's folder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

APP: Final = """<?xml version="1.0" encoding="utf-8"?>
<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    ApplicationTypeName="ShopType" ApplicationTypeVersion="2.0.0">
  <Parameters>
    <Parameter Name="Greeting" DefaultValue="hello" />
  </Parameters>
  <ServiceManifestImport>
    <ServiceManifestRef ServiceManifestName="ShopPkg" ServiceManifestVersion="1.0.0" />
    <EnvironmentOverrides CodePackageRef="Web">
      <EnvironmentVariable Name="GREETING" Value="[Greeting]" />
    </EnvironmentOverrides>
  </ServiceManifestImport>
  <!-- <ServiceManifestRef ServiceManifestName="ShopPkg" ServiceManifestVersion="0.1" /> -->
</ApplicationManifest>
"""

SERVICE: Final = """<?xml version="1.0" encoding="utf-8"?>
<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric"
    Name="ShopPkg" Version="1.0.0">
  <ServiceTypes>
    <StatelessServiceType ServiceTypeName="WebType" UseImplicitHost="true" />
  </ServiceTypes>
  <CodePackage Name="Web" Version="1.0.0">
    <EntryPoint><ExeHost><Program>run.sh</Program></ExeHost></EntryPoint>
    <EnvironmentVariables>
      <EnvironmentVariable Name="GREETING" Value="unset" />
    </EnvironmentVariables>
  </CodePackage>
  <CodePackage Name="Worker" Version="1.1.0">
    <EntryPoint><ExeHost><Program>run.sh</Program></ExeHost></EntryPoint>
  </CodePackage>
  <ConfigPackage Name="Config" Version="1.2.0" />
  <DataPackage Name="Data" Version="1.3.0" />
  <Resources>
    <Endpoints><Endpoint Name="Web" /></Endpoints>
  </Resources>
</ServiceManifest>
"""

SETTINGS: Final = """<?xml version="1.0" encoding="utf-8"?>
<Settings xmlns="http://schemas.microsoft.com/2011/01/fabric">
  <Section Name="Shop"><Parameter Name="Colour" Value="blue" /></Section>
</Settings>
"""


def write_shop(root: Path) -> Path:
    """``root`` holding ShopType 2.0.0: ShopPkg with code packages Web and Worker, config
    package Config and data package Data."""
    pkg = root / "ShopPkg"
    for folder in ("Web", "Worker", "Config", "Data"):
        (pkg / folder).mkdir(parents=True)
    (root / "ApplicationManifest.xml").write_text(APP)
    (pkg / "ServiceManifest.xml").write_text(SERVICE)
    for code in ("Web", "Worker"):
        program = pkg / code / "run.sh"
        program.write_text("#!/bin/sh\nexec sleep 1000\n")
        program.chmod(0o755)
    (pkg / "Config" / "Settings.xml").write_text(SETTINGS)
    (pkg / "Data" / "prices.csv").write_text("apple,1\n")
    return root
