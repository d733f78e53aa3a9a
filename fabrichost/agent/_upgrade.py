"""Application upgrades, rolling and monitored, as Service Fabric does them.

Theory of operation. An upgrade moves an application to another provisioned version of its type
(and new parameters). Everything is checked before anything changes: the version exists and
differs, the parameters resolve, the running services can run in it (``_upgrade_plan``). Then it
walks the nodes in order, each one an upgrade domain: the node's activations are moved to the
new version (``_upgrade_domain``: only what changed restarts), and, in ``Monitored`` mode, the
application must be whole on that node again (``_upgrade_health``) before the next one starts.
When a check fails (or a domain or the whole upgrade runs out of time) and the failure action
is ``Rollback``, the nodes already moved are moved back, last first, and the upgrade ends
``RollingBackCompleted`` with the cause; with ``Manual`` it waits (``RollingForwardPending``)
for :meth:`ApplicationUpgrades.resume` or :meth:`ApplicationUpgrades.rollback`.
``UnmonitoredManual`` waits for :meth:`resume` before every domain after the first.

Durability: the application's row keeps the version in force until the upgrade completes; the
upgrade's row (``Persistence.upgrade_saved``) records where it goes and how far it got, at every
step. A restarted agent runs the version in force on every node (everything starts anew at a
restore), and an upgrade it finds in progress is recorded as rolled back, ``Interrupted``: there
is never a mixed, unknown state. While an upgrade runs, the nodes already moved keep their
version for anything placed there (``ClusterState.node_packages``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fabrichost.agent._image_copy import read_chunks
from fabrichost.agent._provision import instantiate
from fabrichost.agent._upgrade_domain import DomainUpgrader
from fabrichost.agent._upgrade_health import wait_node_whole
from fabrichost.agent._upgrade_plan import (
    RunningService,
    check_services,
    kept_versions,
    plan_upgrade,
)
from fabrichost.agent._upgrade_progress import (
    DomainState,
    FailureAction,
    FailureReason,
    UpgradeDescription,
    UpgradeMode,
    UpgradeProgress,
    UpgradeState,
)
from fabrichost.errors import ApiError, ConflictError, FabricHostError, NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.agent._election import PrimaryElection
    from fabrichost.agent._health_view import HealthView
    from fabrichost.agent._model import Application
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._placement import Placement
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._spec import ServicePackageSpec
    from fabrichost.agent._state import ClusterState
    from fabrichost.agent._tasks import BackgroundTasks
    from fabrichost.agent._upgrade_plan import UpgradePlan

log = logging.getLogger(__name__)

Packages = dict[str, "ServicePackageSpec"]


class _Failed(Exception):
    def __init__(self, reason: FailureReason, cause: str) -> None:
        super().__init__(cause)
        self.reason = reason
        self.cause = cause


class ApplicationUpgrades:
    """Starts, walks, rolls back and reports the upgrades of a cluster's applications."""

    def __init__(
        self,
        state: ClusterState,
        persist: Persistence,
        placement: Placement,
        election: PrimaryElection,
        settings: AgentSettings,
        tasks: BackgroundTasks,
        health: HealthView,
    ) -> None:
        self._state = state
        self._health = health
        self._persist = persist
        self._settings = settings
        self._tasks = tasks
        self._domains = DomainUpgrader(state, placement, election, settings)
        self._progress: dict[str, UpgradeProgress] = {}
        # Set to go on: a manual mode waits for it (MoveToNextUpgradeDomain or RollbackUpgrade).
        self._go_on: dict[str, asyncio.Event] = {}
        self._rollback_asked: set[str] = set()

    # -- queries --------------------------------------------------------------------------------

    def progress(self, app_name: str) -> UpgradeProgress:
        """The application's latest upgrade; for one never upgraded, a completed one to the
        version it runs (as Service Fabric answers)."""
        app = self._state.application(app_name)
        progress = self._progress.get(app_name)
        if progress is None or progress.type_name != app.type_name:
            return _never_upgraded(app, list(self._state.nodes))
        return progress

    # -- commands -------------------------------------------------------------------------------

    async def start(self, app_name: str, description: UpgradeDescription) -> UpgradeProgress:
        """Check and record an upgrade of ``app_name``, and start walking it in the background.

        Raises:
            NotFoundError: no such application, or the target version is not provisioned.
            ConflictError: an upgrade of it is in progress.
            ApiError: the application already runs that version, a parameter is wrong, the
                version cannot run its services, or it keeps a code or data package's version
                whose files changed. Nothing changed.
        """
        state = self._state
        first = _checked_start(state, self._progress.get(app_name), app_name, description)
        # Reading the kept packages' files takes a while: off the event loop.
        await asyncio.to_thread(check_kept_content, first.old, first.new, first.target)
        # The state may have moved on meanwhile (another upgrade, a delete): checked again.
        checked = _checked_start(state, self._progress.get(app_name), app_name, description)
        if checked.old != first.old:
            raise ConflictError(
                f"application {app_name} changed while its upgrade was being checked; try again",
                code="FABRIC_E_APPLICATION_UPGRADE_IN_PROGRESS",
            )
        app, old, new, target = checked.app, checked.old, checked.new, checked.target
        plan = plan_upgrade(old, new)
        progress = UpgradeProgress(
            app.name,
            app.type_name,
            app.type_version,
            dict(app.parameters),
            description,
            dict.fromkeys(state.nodes, DomainState.PENDING),
            details=[f"plan: {plan.describe()}"],
        )
        self._persist.upgrade_saved(progress)  # the intent first
        app.target_version = target
        self._progress[app_name] = progress
        self._go_on[app_name] = asyncio.Event()
        self._rollback_asked.discard(app_name)
        log.info(
            "upgrading %s from %s to %s: %s", app_name, app.type_version, target, plan.describe()
        )
        self._tasks.spawn(self._walk(app, progress, old, new, plan, checked.parameters))
        return progress

    def resume(self, app_name: str, domain: str | None = None) -> None:
        """Go on with a pending upgrade (SF MoveToNextUpgradeDomain).

        Raises:
            ApiError: it is not waiting, or ``domain`` is not the one it waits to start.
        """
        progress = self._pending(app_name)
        if domain and progress.next_domain and domain != progress.next_domain:
            raise ApiError(
                f"the upgrade of {app_name} waits to start {progress.next_domain}, not {domain}"
            )
        if (event := self._go_on.get(app_name)) is not None:
            event.set()

    def rollback(self, app_name: str) -> None:
        """Roll an upgrade in progress back to the version it started from (SF
        RollbackUpgrade).

        Raises:
            ApiError: no upgrade of it is rolling forward.
        """
        progress = self.progress(app_name)
        if progress.state not in (
            UpgradeState.ROLLING_FORWARD_IN_PROGRESS,
            UpgradeState.ROLLING_FORWARD_PENDING,
        ):
            raise ApiError(
                f"application {app_name} has no upgrade rolling forward ({progress.state})",
                code="FABRIC_E_INVALID_OPERATION",
            )
        self._rollback_asked.add(app_name)
        if (event := self._go_on.get(app_name)) is not None:
            event.set()

    def application_deleted(self, app_name: str) -> None:
        """An application is being deleted: its upgrade stops where it is (a waiting one is
        woken to see it is gone) and is forgotten with it."""
        self._progress.pop(app_name, None)
        for node_name in self._state.nodes:
            self._state.node_packages.pop((app_name, node_name), None)
        event = self._go_on.pop(app_name, None)
        if event is not None:
            event.set()

    def _pending(self, app_name: str) -> UpgradeProgress:
        progress = self.progress(app_name)
        if progress.state is not UpgradeState.ROLLING_FORWARD_PENDING:
            raise ApiError(
                f"the upgrade of {app_name} is not waiting to go on ({progress.state})",
                code="FABRIC_E_INVALID_OPERATION",
            )
        return progress

    # -- the walk -------------------------------------------------------------------------------

    def _gone(self, app: Application) -> bool:
        """Deleted, or being deleted: its upgrade goes no further."""
        return self._state.applications.get(app.name) is not app or app.status == "Deleting"

    def _save(self, app: Application, progress: UpgradeProgress) -> None:
        if not self._gone(app):  # a deleted one took its row along
            self._persist.upgrade_saved(progress)
        self._state.changes.notify()

    async def _walk(
        self,
        app: Application,
        progress: UpgradeProgress,
        old: Packages,
        new: Packages,
        plan: UpgradePlan,
        parameters: dict[str, str],
    ) -> None:
        moved: list[str] = []  # the domains that run the new version (or part of it)
        try:
            async with asyncio.timeout(progress.description.upgrade_timeout):
                await self._roll_forward(app, progress, new, plan, moved)
        except _Failed as failed:
            await self._after_failure(app, progress, old, new, moved, failed)
            return
        except TimeoutError:
            timeout = _Failed(
                FailureReason.OVERALL_UPGRADE_TIMEOUT,
                f"the upgrade did not finish in {progress.description.upgrade_timeout:g} s",
            )
            await self._after_failure(app, progress, old, new, moved, timeout)
            return
        except Exception as exc:  # a mechanism failed (or a bug): undone like a failed check
            if not isinstance(exc, FabricHostError):
                log.exception("upgrade of %s failed", app.name)
            await self._after_failure(
                app, progress, old, new, moved, _Failed(FailureReason.HEALTH_CHECK, str(exc))
            )
            return
        if self._gone(app):
            return  # deleted meanwhile
        if app.name in self._rollback_asked:
            await self._roll_back(app, progress, old, new, moved)
            return
        self._complete(app, progress, new, parameters)

    async def _roll_forward(
        self,
        app: Application,
        progress: UpgradeProgress,
        new: Packages,
        plan: UpgradePlan,
        moved: list[str],
    ) -> None:
        description = progress.description
        for index, node_name in enumerate(list(progress.domains)):
            if self._gone(app):
                return
            if index and description.mode is UpgradeMode.UNMONITORED_MANUAL:
                progress.next_domain = node_name
                await self._wait_to_go_on(app, progress)
            if app.name in self._rollback_asked or self._gone(app):
                return
            progress.current_domain = node_name
            progress.domain_started_at = time.time()
            progress.domains[node_name] = DomainState.IN_PROGRESS
            self._save(app, progress)
            moved.append(node_name)
            self._state.node_packages[(app.name, node_name)] = new
            try:
                async with asyncio.timeout(description.upgrade_domain_timeout):
                    await self._upgrade_domain(app, progress, node_name, new, plan)
            except TimeoutError:
                cause = (
                    f"upgrade domain {node_name} did not finish in "
                    f"{description.upgrade_domain_timeout:g} s"
                )
                if description.failure_action is not FailureAction.MANUAL:
                    raise _Failed(FailureReason.UPGRADE_DOMAIN_TIMEOUT, cause) from None
                # Manual: the operator goes on or rolls back, as after a failed check (ending
                # it Failed instead left the nodes moved so far with no way back).
                progress.failed(FailureReason.UPGRADE_DOMAIN_TIMEOUT, cause)
                await self._wait_to_go_on(app, progress)
            progress.domains[node_name] = DomainState.COMPLETED
            self._save(app, progress)

    async def _upgrade_domain(
        self,
        app: Application,
        progress: UpgradeProgress,
        node_name: str,
        new: Packages,
        plan: UpgradePlan,
    ) -> None:
        description = progress.description
        lines = await self._domains.apply(
            node_name, app.name, new, plan, force_restart=description.force_restart
        )
        progress.details.extend(lines)
        self._save(app, progress)
        if description.mode is not UpgradeMode.MONITORED:
            return
        if description.health_check_wait:
            await asyncio.sleep(description.health_check_wait)  # SF's wait, as asked
        problem = await wait_node_whole(
            self._state,
            node_name,
            app.name,
            settle=self._settings.guest_settle,
            retry_timeout=description.health_check_retry_timeout,
            stable=description.health_check_stable,
            health=self._health,
        )
        if problem is None:
            return
        if description.failure_action is FailureAction.ROLLBACK:
            raise _Failed(FailureReason.HEALTH_CHECK, f"{node_name}: {problem}")
        # Manual: it waits to be told to go on (the failed domain taken as it is, as in SF) or
        # to roll back (the walk sees that next).
        progress.failed(FailureReason.HEALTH_CHECK, f"{node_name}: {problem}")
        await self._wait_to_go_on(app, progress)

    async def _wait_to_go_on(self, app: Application, progress: UpgradeProgress) -> None:
        event = self._go_on.get(app.name)
        if event is None:
            return  # deleted meanwhile
        event.clear()
        progress.state = UpgradeState.ROLLING_FORWARD_PENDING
        self._save(app, progress)
        await event.wait()
        progress.state = UpgradeState.ROLLING_FORWARD_IN_PROGRESS
        progress.next_domain = None
        self._save(app, progress)

    def _complete(
        self, app: Application, progress: UpgradeProgress, new: Packages, parameters: dict[str, str]
    ) -> None:
        state = self._state
        app.type_version = progress.target_version
        app.parameters = parameters
        app.target_version = None
        state.packages[app.name] = new
        for node_name in state.nodes:
            state.node_packages.pop((app.name, node_name), None)
        for service in app.services.values():
            service.service_manifest_version = new[service.service_manifest_name].version
        progress.state = UpgradeState.ROLLING_FORWARD_COMPLETED
        progress.current_domain = None
        progress.finished_at = time.time()
        with self._persist.transaction():  # the version in force and the record, together
            self._persist.application_version_saved(app)
            self._persist.upgrade_saved(progress)
        state.changes.notify()
        log.info("upgraded %s to %s", app.name, app.type_version)

    # -- failure and rollback -------------------------------------------------------------------

    async def _after_failure(
        self,
        app: Application,
        progress: UpgradeProgress,
        old: Packages,
        new: Packages,
        moved: list[str],
        failed: _Failed,
    ) -> None:
        progress.failed(failed.reason, failed.cause)
        log.warning("upgrade of %s to %s failed: %s", app.name, progress.target_version, failed)
        if self._gone(app):
            return
        if progress.description.failure_action is FailureAction.MANUAL and (
            failed.reason is not FailureReason.HEALTH_CHECK
        ):
            # The whole upgrade's timeout under Manual: SF leaves it for the operator; so do
            # we (as failed; a domain's timeout waits to go on or to roll back instead).
            progress.state = UpgradeState.FAILED
            app.target_version = None
            self._save(app, progress)
            return
        await self._roll_back(app, progress, old, new, moved)

    async def _roll_back(
        self,
        app: Application,
        progress: UpgradeProgress,
        old: Packages,
        new: Packages,
        moved: list[str],
    ) -> None:
        """Move the domains in ``moved`` back to ``old``, last first, then wait for each to be
        whole again (reported, not judged: there is nothing older to go back to)."""
        progress.state = UpgradeState.ROLLING_BACK_IN_PROGRESS
        self._save(app, progress)
        back = plan_upgrade(new, old)
        for node_name in reversed(moved):
            if self._gone(app):
                return
            progress.current_domain = node_name
            progress.domains[node_name] = DomainState.IN_PROGRESS
            self._save(app, progress)
            self._state.node_packages.pop((app.name, node_name), None)
            try:
                lines = await self._domains.apply(node_name, app.name, old, back)
            except FabricHostError as exc:
                lines = [f"{node_name}: rolling back failed: {exc}"]
            progress.details.extend(f"rollback {line}" for line in lines)
            problem = await wait_node_whole(
                self._state,
                node_name,
                app.name,
                settle=self._settings.guest_settle,
                retry_timeout=progress.description.health_check_retry_timeout,
            )
            if problem is not None:
                progress.details.append(f"rollback {node_name}: {problem}")
            progress.domains[node_name] = DomainState.COMPLETED
            self._save(app, progress)
        progress.state = UpgradeState.ROLLING_BACK_COMPLETED
        progress.current_domain = None
        progress.finished_at = time.time()
        app.target_version = None
        self._save(app, progress)
        log.info("rolled %s back to %s", app.name, app.type_version)

    # -- restore --------------------------------------------------------------------------------

    def restore(self) -> None:
        """Load every application's latest upgrade; one that was in progress when the agent
        stopped is over: the version in force runs everywhere (it was restored), and it is
        recorded as rolled back, ``Interrupted``."""
        for progress in restored_upgrades(self._state, self._persist):
            self._progress[progress.application] = progress
            self._go_on[progress.application] = asyncio.Event()


@dataclass(frozen=True, slots=True)
class _Start:
    """An upgrade found possible: the application, its packages now and at the target."""

    app: Application
    target: str
    old: Packages
    new: Packages
    parameters: dict[str, str]


def _checked_start(
    state: ClusterState,
    current: UpgradeProgress | None,
    app_name: str,
    description: UpgradeDescription,
) -> _Start:
    """Whether ``app_name`` can be upgraded as ``description`` says (see
    :meth:`ApplicationUpgrades.start` for what it raises)."""
    app = state.application(app_name)
    if app.status == "Deleting":
        raise NotFoundError(
            f"application {app_name} is being deleted", code="FABRIC_E_APPLICATION_NOT_FOUND"
        )
    if current is not None and not current.state.finished:
        raise ConflictError(
            f"application {app_name} is being upgraded to {current.target_version} "
            f"({current.state}); roll it back or wait for it",
            code="FABRIC_E_APPLICATION_UPGRADE_IN_PROGRESS",
        )
    target = description.target_version
    if target == app.type_version:
        raise ApiError(
            f"application {app_name} runs {app.type_name} {target} already; an upgrade "
            "needs another ApplicationTypeVersion",
            code="FABRIC_E_APPLICATION_ALREADY_IN_TARGET_VERSION",
        )
    ptype = state.application_types.get((app.type_name, target))
    if ptype is None:
        raise NotFoundError(
            f"application type {app.type_name} version {target} is not provisioned",
            code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
        )
    resolved = instantiate(ptype, description.parameters)
    new = dict(resolved.packages)
    check_services(
        (
            RunningService(s.name, s.type_name, s.kind.value == "Stateful", s.service_manifest_name)
            for s in app.services.values()
        ),
        new,
        target,
    )
    return _Start(app, target, dict(state.packages[app_name]), new, dict(resolved.parameters))


@functools.cache
def _folder_digest(folder: Path) -> str:
    """A digest of the relative paths and bytes of the files below ``folder``. Not their
    modes: a package uploaded over REST (``sfctl application upload``) has none of its
    source's, which is no change of its content. Cached: an image store copy never changes
    once made (its folder is named by its digest)."""
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        for chunk in read_chunks(path):
            digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def check_kept_content(old: Packages, new: Packages, version: str) -> None:
    """Refuse a version that keeps a code or data package's version but not its files: the
    upgrade would restart nothing for it and leave the old files running (Service Fabric
    refuses such a package too). Reads the files: call it off the event loop.

    Raises:
        ApiError: naming each such package.
    """
    changed = [
        kept.what
        for kept in kept_versions(old, new)
        if _folder_digest(kept.old_folder) != _folder_digest(kept.new_folder)
    ]
    if changed:
        raise ApiError(
            f"version {version} keeps the version of {', '.join(changed)} but not its files: "
            "bump the Version of each package you changed (and of its service manifest)",
            code="FABRIC_E_INVALID_ARGUMENT",
        )


def restored_upgrades(state: ClusterState, persist: Persistence) -> list[UpgradeProgress]:
    """The upgrade records of the restored applications, any in progress turned rolled back
    (``Interrupted``) and saved so; a record that cannot be read is logged and left out."""
    found: list[UpgradeProgress] = []
    for row in persist.upgrade_rows():
        app = state.applications.get(row.application)
        if app is None:
            continue
        try:
            description = UpgradeDescription.from_record(json.loads(row.description_json))
            progress = UpgradeProgress.from_record(
                row.application,
                row.from_version,
                json.loads(row.from_parameters_json),
                row.state,
                description,
                json.loads(row.progress_json),
            )
        except (ValueError, KeyError, TypeError, FabricHostError) as exc:
            log.error("the upgrade record of %s cannot be read: %s", row.application, exc)
            continue
        if not progress.state.finished:
            progress.failed(
                FailureReason.INTERRUPTED,
                f"the agent stopped during the upgrade; {app.type_version} runs everywhere",
            )
            progress.state = UpgradeState.ROLLING_BACK_COMPLETED
            progress.finished_at = time.time()
            progress.current_domain = None
            progress.next_domain = None  # it waits for nothing any more
            persist.upgrade_saved(progress)
        found.append(progress)
    return found


def _never_upgraded(app: Application, nodes: list[str]) -> UpgradeProgress:
    """What Service Fabric answers for an application never upgraded: a completed upgrade to
    the version it runs."""
    now = time.time()
    return UpgradeProgress(
        app.name,
        app.type_name,
        app.type_version,
        dict(app.parameters),
        UpgradeDescription(app.type_version, dict(app.parameters)),
        dict.fromkeys(nodes, DomainState.COMPLETED),
        UpgradeState.ROLLING_FORWARD_COMPLETED,
        started_at=now,
        finished_at=now,
    )
