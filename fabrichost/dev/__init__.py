"""The ``fabrichost dev`` loop's logic: what a saved file means and how it is applied.

Usage::

    from fabrichost.dev import DevSession, stage_folder, upgrade_application

    session = DevSession(client, Path("MyApp").resolve(), "fabric:/MyApp", {},
                         stage_root=stage_folder(state_dir, "fabric:/MyApp"),
                         apply=upgrade_application)
    session.start()                          # deploy, wait until Ready
    outcome = session.change([changed_path]) # one burst of saves → one upgrade
    outcome.bumped, outcome.restarted, outcome.config_delivered, outcome.seconds
    session.stop()                           # delete the application if it created it

A changed path is mapped (``classify``) to the code, config or data package it belongs to, or
to a manifest; the package is copied to a staged folder with new versions for what changed
(``plan_versions``; the user's files are never written), provisioned, and the application is
upgraded to it. Watching the folder and printing are the CLI's (``fabrichost.cli._dev``).
"""

from __future__ import annotations

from fabrichost.dev._apply import upgrade_application as upgrade_application
from fabrichost.dev._parts import Burst as Burst
from fabrichost.dev._parts import Layout as Layout
from fabrichost.dev._parts import ManifestFile as ManifestFile
from fabrichost.dev._parts import PackageKind as PackageKind
from fabrichost.dev._parts import PackagePart as PackagePart
from fabrichost.dev._parts import classify as classify
from fabrichost.dev._parts import sort_burst as sort_burst
from fabrichost.dev._restarts import CodePackageSlot as CodePackageSlot
from fabrichost.dev._restarts import kept_running as kept_running
from fabrichost.dev._restarts import restarted as restarted
from fabrichost.dev._restarts import running_code_packages as running_code_packages
from fabrichost.dev._session import Apply as Apply
from fabrichost.dev._session import DevSession as DevSession
from fabrichost.dev._session import Outcome as Outcome
from fabrichost.dev._session import stage_folder as stage_folder
from fabrichost.dev._staging import Snapshot as Snapshot
from fabrichost.dev._staging import snapshot as snapshot
from fabrichost.dev._staging import write_versions as write_versions
from fabrichost.dev._versions import StagedVersions as StagedVersions
from fabrichost.dev._versions import VersionPlan as VersionPlan
from fabrichost.dev._versions import next_counter as next_counter
from fabrichost.dev._versions import plan_versions as plan_versions
from fabrichost.dev._versions import staged as staged
from fabrichost.dev._xmltext import AttributeEdit as AttributeEdit
from fabrichost.dev._xmltext import EditError as EditError
from fabrichost.dev._xmltext import apply_edits as apply_edits

__all__ = (
    "Apply",
    "AttributeEdit",
    "Burst",
    "CodePackageSlot",
    "DevSession",
    "EditError",
    "Layout",
    "ManifestFile",
    "Outcome",
    "PackageKind",
    "PackagePart",
    "Snapshot",
    "StagedVersions",
    "VersionPlan",
    "apply_edits",
    "classify",
    "kept_running",
    "next_counter",
    "plan_versions",
    "restarted",
    "running_code_packages",
    "snapshot",
    "sort_burst",
    "stage_folder",
    "staged",
    "upgrade_application",
    "write_versions",
)
