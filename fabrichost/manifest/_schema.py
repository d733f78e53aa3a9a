"""The structure of Service Fabric manifests, as the real schema states it.

The rules are generated from ``ServiceFabricServiceModel.xsd`` (``V1_RTM_3``) into
``_schema_table.py`` by ``tools/gen_manifest_schema.py``: every element that can appear in an
ApplicationManifest, ServiceManifest, Settings file or application parameter file, with its
attributes (allowed, required, typed, enumerated), its children (order and counts) and whether
it holds text. ``tests/manifest/test_schema_xsd.py`` reads the schema itself and compares it
with the table element by element. The schema file is not shipped with fabrichost.

Content is unchecked (:class:`~fabrichost.manifest._schema_rules.Open`) only where the schema
says ``xs:anyType``, and an ``Extension``'s content only has to be one element from another
namespace (``xs:any namespace="##other"``), as the schema says.

What the schema cannot see but Service Fabric refuses (an undefined ``[Param]``, duplicate
names, references between files) is checked later, in ``_validate.py``, ``_params.py`` and
``_instance.py``; docs/manifests.md lists each rule and where it comes from.

Usage::

    decl = ROOTS["ServiceManifest"]
    diagnostics = check_element(node, decl, "ServiceManifest.xml")
"""

from __future__ import annotations

from typing import Final

from fabrichost.manifest._schema_table import (
    APPLICATION_MANIFEST,
    APPLICATION_PARAMETERS,
    SERVICE_MANIFEST,
    SETTINGS,
)

# The limits of ResourceGovernancePolicy that fabrichost enforces or reports
# (ResourceGovernancePolicyType in the schema, besides CodePackageRef).
RESOURCE_GOVERNANCE_LIMITS: Final = (
    "MemoryInMB",
    "MemorySwapInMB",
    "MemoryReservationInMB",
    "CpuShares",
    "CpuPercent",
    "MaximumIOps",
    "MaximumIOBandwidth",
    "BlockIOWeight",
    "DiskQuotaInMB",
    "KernelMemoryInMB",
    "ShmSizeInMB",
)

ROOTS: Final = {
    decl.name: decl
    for decl in (APPLICATION_MANIFEST, SERVICE_MANIFEST, SETTINGS, APPLICATION_PARAMETERS)
}
