"""``DevSession``: one application kept running from a package folder that keeps changing.

Each change is staged (a checked copy of the user's package with the staged versions written
in; see ``_staging`` and ``_versions``), provisioned as a new version of the application type,
and applied to the running application by an :data:`Apply` function, which upgrades it; the
previous staged version is then unprovisioned. A change that does not check keeps the running
version and is remembered, so the save that fixes it applies both.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from fabrichost.dev._parts import Burst, Layout, PackageKind, PackagePart, sort_burst
from fabrichost.dev._restarts import (
    CodePackageSlot,
    kept_running,
    restarted,
    running_code_packages,
)
from fabrichost.dev._staging import Snapshot, snapshot, user_paths, write_versions
from fabrichost.dev._versions import DEV_SUFFIX, StagedVersions, next_counter, plan_versions
from fabrichost.errors import (
    ConflictError,
    Diagnostic,
    FabricHostError,
    ManifestError,
    NotFoundError,
)
from fabrichost.wire import name_to_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from fabrichost.client import FabricClient
    from fabrichost.manifest import ApplicationPackage


class Apply(Protocol):
    """Bring the running application ``app_name`` to the provisioned ``type_version`` of its
    type; return once it serves it (raise ``FabricHostError`` saying why it does not)."""

    def __call__(
        self,
        client: FabricClient,
        app_name: str,
        type_version: str,
        parameters: Mapping[str, str],
        timeout: float,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one change did. ``applied`` False: nothing deployed changed (``diagnostics`` or
    ``error`` say why, or nothing did). ``config_delivered``: the code packages that took a
    changed config package while they ran (their process is the one it was)."""

    files: str  # the changed files, as the user named them
    applied: bool
    version: str = ""
    bumped: tuple[PackagePart, ...] = ()
    restarted: tuple[CodePackageSlot, ...] = ()
    config_delivered: tuple[CodePackageSlot, ...] = ()
    seconds: float = 0.0
    diagnostics: tuple[Diagnostic, ...] = ()
    error: str = ""
    ignored_only: bool = False


@dataclass
class DevSession:
    """Deploys the package at ``source`` as ``app_name`` and applies its changes.

    ``stage_root`` is a folder of the session's own (in the state directory) where staged
    copies are made; each is deleted once provisioned (the image store holds its own copy).
    """

    client: FabricClient
    source: Path
    app_name: str
    parameters: Mapping[str, str]
    stage_root: Path
    apply: Apply
    timeout: float = 120.0
    created: bool = False  # this session created the application
    type_name: str = ""
    versions: StagedVersions | None = None
    _package: ApplicationPackage | None = None
    _counter: int = 0
    _pending: Burst = field(default_factory=Burst)
    # Staged versions the agent would not unprovision yet: a process a config-only change kept
    # runs from its version's copy. Tried again after every change and at stop.
    _retired: list[str] = field(default_factory=list)

    def start(self) -> Outcome:
        """Deploy the package (a new application, or an upgrade of an existing one of the same
        type) and wait until its services are Ready.

        Raises:
            ManifestError: the package's problems, naming the user's files.
            ConflictError: an application of that name and another type exists.
            FabricHostError: the agent refused it or it did not become Ready (a later call
                tries again: an application it created is upgraded).
        """
        shutil.rmtree(self.stage_root, ignore_errors=True)  # an earlier session's leftovers
        began = time.monotonic()
        snap = self._snapshot(0)
        try:
            app = snap.package.application
            self.type_name = app.application_type_name
            provisioned = [(t["Name"], t["Version"]) for t in self.client.application_types()]
            self._counter = next_counter(self.type_name, provisioned)
            plan = plan_versions(None, None, snap.package, (), self._counter)
            write_versions(snap, plan.versions)
            existing = self._existing_version()
            self._provision(snap)
            try:
                if existing is None:
                    self.client.create_application(
                        self.app_name, self.type_name, plan.versions.application, self.parameters
                    )
                    self.created = True
                else:
                    self.apply(
                        self.client,
                        self.app_name,
                        plan.versions.application,
                        self.parameters,
                        self.timeout,
                    )
                self._wait_ready()
            except FabricHostError:
                if not self.created:
                    self._unprovision(plan.versions.application)
                raise
        finally:
            shutil.rmtree(snap.folder, ignore_errors=True)
        if existing is not None:
            self._unprovision(existing)
        self.versions, self._package = plan.versions, snap.package
        return Outcome(
            files=str(self.source),
            applied=True,
            version=plan.versions.application,
            bumped=tuple(sorted(plan.bumped)),
            seconds=time.monotonic() - began,
        )

    def change(self, paths: Iterable[Path]) -> Outcome:
        """Apply one burst of saves to ``paths`` (absolute paths inside ``source``)."""
        began = time.monotonic()
        paths = list(paths)
        layout = Layout.of(self._package) if self._package is not None else None
        burst = self._pending.merged(sort_burst(self.source, paths, layout))
        files = burst.describe(self.source)
        if burst.empty:
            return Outcome(files=files, applied=False, ignored_only=True)
        self._counter += 1
        try:
            snap = self._snapshot(self._counter)
        except ManifestError as exc:
            self._pending = burst  # applied with the save that fixes it
            return Outcome(files=files, applied=False, diagnostics=exc.diagnostics)
        try:
            return self._upgrade(snap, burst, files, began)
        finally:
            shutil.rmtree(snap.folder, ignore_errors=True)

    def stop(self) -> bool:
        """Delete the application if this session created it, and unprovision its staged
        type versions; an application that was there before is left as it is. Whether it
        deleted the application."""
        if not self.created:
            return False
        with contextlib.suppress(NotFoundError):
            self.client.delete_application(self.app_name)
        if self.versions is not None:
            self._unprovision(self.versions.application)
        self._unprovision_retired()
        return True

    # -- steps ----------------------------------------------------------------------------------
    def _upgrade(self, snap: Snapshot, burst: Burst, files: str, began: float) -> Outcome:
        # A package's files may only now belong to a part (its folder and its declaration
        # saved together): sort them by the layout just checked.
        type_name = snap.package.application.application_type_name
        if type_name != self.type_name:
            self._pending = burst
            return Outcome(
                files=files,
                applied=False,
                error=f"ApplicationTypeName is {type_name} now: an application keeps its type "
                f"({self.type_name}); change it back, or restart `dev` with another --name",
            )
        layout = Layout.of(snap.package)
        touched = burst.parts | sort_burst(self.source, burst.ignored, layout).parts
        plan = plan_versions(self.versions, self._package, snap.package, touched, self._counter)
        if not plan.changed:
            self._pending = Burst()
            self._package = snap.package
            return Outcome(files=files, applied=False)
        write_versions(snap, plan.versions)
        before = running_code_packages(self.client, self.app_name)
        try:
            self._provision(snap)
            try:
                self.apply(
                    self.client,
                    self.app_name,
                    plan.versions.application,
                    self.parameters,
                    self.timeout,
                )
                self._wait_ready()
            except FabricHostError:
                self._unprovision(plan.versions.application)
                raise
        except FabricHostError as exc:
            self._pending = burst
            error = user_paths(str(exc), snap.folder, self.source)
            return Outcome(files=files, applied=False, error=error)
        after = running_code_packages(self.client, self.app_name)
        if self.versions is not None:
            self._unprovision(self.versions.application)
        self._unprovision_retired()
        self.versions, self._package = plan.versions, snap.package
        self._pending = Burst()
        new_config = {p.service_manifest for p in plan.bumped if p.kind is PackageKind.CONFIG}
        return Outcome(
            files=files,
            applied=True,
            version=plan.versions.application,
            bumped=tuple(sorted(plan.bumped)),
            restarted=tuple(restarted(before, after)),
            config_delivered=tuple(kept_running(before, after, new_config)),
            seconds=time.monotonic() - began,
        )

    def _snapshot(self, n: int) -> Snapshot:
        self.stage_root.mkdir(parents=True, exist_ok=True)
        folder = self.stage_root / str(n)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            return snapshot(self.source, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _provision(self, snap: Snapshot) -> None:
        try:
            self.client.provision(snap.folder)
        except FabricHostError as exc:
            raise FabricHostError(user_paths(str(exc), snap.folder, self.source)) from exc

    def _existing_version(self) -> str | None:
        """The type version of an application already named ``app_name`` (an agent reused),
        refused if it is of another type."""
        try:
            app = self.client.application(self.app_name)
        except NotFoundError:
            return None
        if app["TypeName"] != self.type_name:
            raise ConflictError(
                f"{self.app_name} exists with type {app['TypeName']} {app['TypeVersion']}, not "
                f"{self.type_name}: delete it or choose another name with --name"
            )
        return str(app["TypeVersion"])

    def _wait_ready(self) -> None:
        for service in self.client.services(self.app_name):
            self.client.wait_service_ready(service["Name"], self.timeout)

    def _unprovision(self, version: str) -> bool:
        """Unprovision a staged version of the type nobody uses any more (a user's own
        version is left alone); one still in use is kept in ``_retired`` for later."""
        if DEV_SUFFIX not in version:
            return True
        try:
            self.client.unprovision(self.type_name, version)
        except NotFoundError:
            return True
        except FabricHostError:
            if version not in self._retired:
                self._retired.append(version)
            return False
        return True

    def _unprovision_retired(self) -> None:
        self._retired = [v for v in list(self._retired) if not self._unprovision(v)]


def stage_folder(state_dir: Path, app_name: str) -> Path:
    """Where the session for ``app_name`` stages its copies: inside the state directory."""
    return state_dir / "dev" / name_to_id(app_name).replace("~", "_")
