"""Application types: provisioning a package into the image store, and unprovisioning it.

Provisions and unprovisions take turns: an unprovision deletes image store folders that a
concurrent provision of the same content might be about to register.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import TYPE_CHECKING

from fabrichost.agent._provision import ProvisionedType, provision_package
from fabrichost.errors import ApiError, ConflictError, NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._state import ClusterState


class ApplicationTypes:
    """The provisioned application types of one cluster, and its image store."""

    def __init__(self, state: ClusterState, persist: Persistence, image_store: Path) -> None:
        self._state = state
        self._persist = persist
        self._image_store = image_store
        self._lock = asyncio.Lock()

    async def provision(
        self, package_dir: Path, *, reuse_existing: bool = False
    ) -> ProvisionedType:
        """Validate a package, copy it into the image store and register its type and version.

        With ``reuse_existing``, provisioning the very same content again returns the type
        already registered (a second deploy of one package). The same type and version with
        different content is always refused: running stale code silently would surprise.
        """
        async with self._lock:
            return await self._provision_locked(package_dir, reuse_existing=reuse_existing)

    async def _provision_locked(
        self, package_dir: Path, *, reuse_existing: bool
    ) -> ProvisionedType:
        ptype = await asyncio.to_thread(provision_package, package_dir, self._image_store)
        key = (ptype.name, ptype.version)
        types = self._state.application_types
        existing = types.get(key)
        if existing is not None:
            if reuse_existing and existing.digest == ptype.digest:
                return existing
            differs = "" if existing.digest == ptype.digest else " with different content"
            await self._discard_image(ptype)  # the refused copy stays out of the image store
            raise ConflictError(
                f"application type {ptype.name} version {ptype.version} is already "
                f"provisioned{differs}; bump ApplicationTypeVersion or unprovision it first",
                code="FABRIC_E_APPLICATION_TYPE_ALREADY_EXISTS",
            )
        with self._persist.transaction():  # the store first: memory follows a commit
            # A row whose image store copy was lost is skipped at restore but still there.
            self._persist.application_type_removed(*key)
            self._persist.application_type_added(ptype)
        types[key] = ptype
        return ptype

    async def _discard_image(self, ptype: ProvisionedType) -> None:
        """Delete a type's image store folder unless a registered type uses it."""
        root = ptype.package.root
        if any(t.package.root == root for t in self._state.application_types.values()):
            return
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.parent.rmdir()  # the type's folder, once its last version is gone

    async def unprovision(self, name: str, version: str) -> None:
        """Unregister a type no application uses, and delete its image store copy."""
        async with self._lock:
            self._unregister(name, version)
            await self._discard_image(self._state.application_types.pop((name, version)))

    def _unregister(self, name: str, version: str) -> None:
        """Every check, then the store; memory is updated by the caller."""
        if (name, version) not in self._state.application_types:
            raise NotFoundError(
                f"application type {name} version {version} is not provisioned",
                code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
            )
        users = [
            a.name
            for a in self._state.applications.values()
            if a.type_name == name and version in (a.type_version, a.target_version)
        ]
        if users:
            raise ApiError(
                f"application type {name} {version} is used by {', '.join(users)}",
                code="FABRIC_E_APPLICATION_TYPE_IN_USE",
            )
        root = self._state.application_types[(name, version)].package.root
        # A code package an upgrade did not change keeps its process, which runs from the
        # copy of the version it was started with: that copy must stay while it runs.
        running = [
            f"{host.spec.name} of {act.identity.application_name} on {node.name}"
            for node in self._state.nodes.values()
            for act in node.activations.values()
            for host in act.hosts.values()
            if host.spec.folder.is_relative_to(root)
        ]
        if running:
            shown = ", ".join(running[:3]) + (
                f" and {len(running) - 3} more" if len(running) > 3 else ""
            )
            raise ApiError(
                f"application type {name} {version} is still run by code packages an upgrade "
                f"kept ({shown}); it can be unprovisioned once they restart with another "
                "version (bump their Version) or their application is deleted",
                code="FABRIC_E_APPLICATION_TYPE_IN_USE",
            )
        self._persist.application_type_removed(name, version)
