"""Application upgrade rows (migration 2) and the version an upgrade puts in force."""

from __future__ import annotations

import pytest

from fabrichost.errors import StoreError
from fabrichost.store import Store, UpgradeRow

from .helpers import app_type, seed_application


def _upgrade(state: str = "RollingForwardInProgress") -> UpgradeRow:
    return UpgradeRow(
        "fabric:/App1", "1.0.0", "2.0.0", '{"P": "1"}', '{"P": "2"}', state, "{}", "{}", 12.5
    )


def test_an_upgrade_round_trips_and_a_later_one_replaces_it(store: Store) -> None:
    seed_application(store)
    store.put_upgrade(_upgrade())
    assert store.upgrades() == [_upgrade()]
    store.put_upgrade(_upgrade("RollingForwardCompleted"))
    assert store.upgrades() == [_upgrade("RollingForwardCompleted")]


def test_an_upgrade_goes_with_its_application(store: Store) -> None:
    seed_application(store)
    store.put_upgrade(_upgrade())
    store.remove_application("fabric:/App1")
    assert store.upgrades() == []


def test_an_upgrade_of_an_unknown_application_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="application 'fabric:/App1' does not exist"):
        store.put_upgrade(_upgrade())


def test_a_completed_upgrade_puts_its_version_in_force(store: Store) -> None:
    seed_application(store)
    store.add_application_type(app_type(version="2.0.0"))
    assert store.set_application_version("fabric:/App1", "2.0.0", '{"P": "2"}')
    (app,) = store.applications()
    assert (app.type_version, app.parameters_json) == ("2.0.0", '{"P": "2"}')
    # The version in force is a provisioned one: the other can be unprovisioned now.
    assert store.remove_application_type("MyAppType", "1.0.0")
    assert not store.set_application_version("fabric:/Nope", "2.0.0", "{}")


def test_a_version_that_is_not_provisioned_cannot_be_put_in_force(store: Store) -> None:
    seed_application(store)
    with pytest.raises(StoreError):
        store.set_application_version("fabric:/App1", "9.9.9", "{}")
    assert store.applications()[0].type_version == "1.0.0"
