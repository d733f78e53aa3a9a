"""Which code packages a change restarted, and which took new config while they ran (pure)."""

from __future__ import annotations

from fabrichost.dev import CodePackageSlot, kept_running, restarted

WEB = CodePackageSlot("_Node_0", "WebPkg", "Code", "a1")
WEB_1 = CodePackageSlot("_Node_1", "WebPkg", "Code", "a2")
JOBS = CodePackageSlot("_Node_0", "JobsPkg", "Code", "a3")


def test_a_process_of_another_id_or_instance_is_restarted_and_a_new_slot_counts() -> None:
    before = {WEB: ("100", "1"), WEB_1: ("200", "1"), JOBS: ("300", "1")}
    after = {WEB: ("101", "2"), WEB_1: ("200", "2"), JOBS: ("300", "1")}
    assert restarted(before, after) == [WEB, WEB_1]
    assert restarted({}, {JOBS: ("300", "1")}) == [JOBS]


def test_config_was_delivered_to_the_unchanged_processes_of_its_service_manifests_only() -> None:
    before = {WEB: ("100", "1"), WEB_1: ("200", "1"), JOBS: ("300", "1")}
    after = {WEB: ("100", "1"), WEB_1: ("201", "2"), JOBS: ("300", "1")}
    # WebPkg's config changed: _Node_1's host was restarted (it does not take config), _Node_0's
    # took it; JobsPkg's process is unchanged but its config did not change.
    assert kept_running(before, after, {"WebPkg"}) == [WEB]
    assert kept_running(before, after, set()) == []
    assert kept_running({}, after, {"WebPkg"}) == []  # new processes read it at their start
