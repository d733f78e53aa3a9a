"""Rows to put in a store, with defaults that fit together."""

from __future__ import annotations

from fabrichost.store import (
    ApplicationRow,
    ApplicationTypeRow,
    PartitionRow,
    ServiceRow,
    Store,
)


def app_type(name: str = "MyAppType", version: str = "1.0.0") -> ApplicationTypeRow:
    return ApplicationTypeRow(name, version, f"sha256:{name}{version}", f"/img/{name}/{version}")


def application(name: str = "fabric:/App1", n: int = 1) -> ApplicationRow:
    return ApplicationRow(name, "MyAppType", "1.0.0", f"MyAppType_App{n}", '{"P": "1"}', 10.5)


def service(name: str = "fabric:/App1/Svc", app: str = "fabric:/App1") -> ServiceRow:
    return ServiceRow(name, app, '{"ServiceKind": "Stateful"}', 11.25)


def partition(service_name: str = "fabric:/App1/Svc", ordinal: int = 0) -> PartitionRow:
    return PartitionRow(f"{service_name}#{ordinal}", service_name, ordinal, "Singleton")


def seed_application(store: Store, name: str = "fabric:/App1", n: int = 1) -> None:
    """A provisioned type (once) and an application of it."""
    if not store.application_types():
        store.add_application_type(app_type())
    store.add_application(application(name, n))
