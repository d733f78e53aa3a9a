"""The pure plan of an application upgrade: which code, config and data packages changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fabrichost.agent._spec import (
    CodePackageSpec,
    EndpointSpec,
    ProgramSpec,
    ServicePackageSpec,
    ServiceTypeSpec,
)
from fabrichost.agent._upgrade_plan import (
    RunningService,
    check_services,
    kept_versions,
    plan_upgrade,
)
from fabrichost.errors import ApiError


def _cp(name: str, version: str, root: Path, *, args: tuple[str, ...] = ()) -> CodePackageSpec:
    folder = root / "Pkg" / name
    return CodePackageSpec(name, version, folder, ProgramSpec(folder / "run.sh", args))


def _package(
    root: Path,
    *,
    a: str = "1.0.0",
    b: str = "1.0.0",
    greeting: str = "hello",
    data: str = "1.0.0",
    endpoints: tuple[EndpointSpec, ...] = (),
) -> ServicePackageSpec:
    """A package with code packages A and B, config package Config and data package Data;
    ``root`` stands for its version's image store folder."""
    return ServicePackageSpec(
        "Pkg",
        "1.0.0",
        (_cp("A", a, root), _cp("B", b, root)),
        (ServiceTypeSpec("TypeA", stateful=True), ServiceTypeSpec("TypeB", stateful=False)),
        endpoints,
        {"Config": {"Section": {"Greeting": greeting}}},
        (("Data", data),),
    )


OLD = Path("/store/MyAppType/1.0.0-abc")
NEW = Path("/store/MyAppType/2.0.0-def")  # every version has its own folder: no change alone


def test_the_same_packages_in_another_folder_change_nothing() -> None:
    plan = plan_upgrade({"Pkg": _package(OLD)}, {"Pkg": _package(NEW)})
    assert plan.changes == {}
    assert plan.describe() == "no service package changed"


def test_a_code_package_of_another_version_is_the_only_one_restarted() -> None:
    plan = plan_upgrade({"Pkg": _package(OLD)}, {"Pkg": _package(NEW, a="1.0.1")})
    change = plan.change("Pkg")
    assert change is not None
    assert change.code_packages == ("A",)
    assert (change.config_packages, change.data_packages, change.whole) == ((), (), "")
    assert change.restarted(["A", "B"]) == {"A"}
    assert change.describe() == "Pkg: code A"


def test_a_code_package_launched_differently_restarts_though_its_version_is_the_same() -> None:
    new = _package(NEW)
    b = dataclasses.replace(new.code_packages[1], main=ProgramSpec(NEW / "Pkg/B/run.sh", ("-v",)))
    new = dataclasses.replace(new, code_packages=(new.code_packages[0], b))
    change = plan_upgrade({"Pkg": _package(OLD)}, {"Pkg": new}).change("Pkg")
    assert change is not None
    assert change.code_packages == ("B",)


def test_changed_settings_are_a_config_change_and_restart_nothing_by_themselves() -> None:
    change = plan_upgrade({"Pkg": _package(OLD)}, {"Pkg": _package(NEW, greeting="hi")}).change(
        "Pkg"
    )
    assert change is not None
    assert (change.code_packages, change.config_packages) == ((), ("Config",))
    assert change.restarted(["A", "B"]) == frozenset()


def test_a_data_package_of_another_version_restarts_every_code_package() -> None:
    change = plan_upgrade({"Pkg": _package(OLD)}, {"Pkg": _package(NEW, data="2.0.0")}).change(
        "Pkg"
    )
    assert change is not None
    assert change.data_packages == ("Data",)
    assert change.restarted(["A", "B"]) == {"A", "B"}
    assert change.describe() == "Pkg: data Data"


def test_a_package_whose_endpoints_changed_is_activated_again_whole() -> None:
    new = _package(NEW, endpoints=(EndpointSpec("Web", 8080),))
    change = plan_upgrade({"Pkg": _package(OLD)}, {"Pkg": new}).change("Pkg")
    assert change is not None
    assert change.whole == "its endpoints changed"
    assert change.restarted(["A", "B"]) == {"A", "B"}


def test_the_rollback_plan_is_the_same_diff_read_backwards() -> None:
    old, new = {"Pkg": _package(OLD)}, {"Pkg": _package(NEW, a="1.0.1", greeting="hi")}
    forward, back = plan_upgrade(old, new).change("Pkg"), plan_upgrade(new, old).change("Pkg")
    assert forward is not None
    assert back is not None
    assert (back.code_packages, back.config_packages) == (
        forward.code_packages,
        forward.config_packages,
    )


def test_a_package_new_in_the_target_has_nothing_running_to_change() -> None:
    assert plan_upgrade({}, {"Pkg": _package(NEW)}).changes == {}


def test_services_whose_type_is_gone_or_changed_kind_are_refused_by_name() -> None:
    services = [
        RunningService("fabric:/App/A", "TypeA", stateful=True, package="Pkg"),
        RunningService("fabric:/App/B", "TypeB", stateful=True, package="Pkg"),
        RunningService("fabric:/App/C", "TypeC", stateful=False, package="Pkg"),
    ]
    with pytest.raises(ApiError) as caught:
        check_services(services, {"Pkg": _package(NEW)}, "2.0.0")
    message = str(caught.value)
    assert "version 2.0.0 cannot run the application's services" in message
    assert "fabric:/App/B: service type TypeB is stateless now" in message
    assert "fabric:/App/C: service type TypeC is gone" in message
    assert "fabric:/App/A" not in message


def test_services_that_still_fit_pass() -> None:
    services = [RunningService("fabric:/App/A", "TypeA", stateful=True, package="Pkg")]
    check_services(services, {"Pkg": _package(NEW)}, "2.0.0")


def test_kept_versions_are_the_code_and_data_packages_whose_version_stays_in_a_new_copy() -> None:
    kept = kept_versions({"Pkg": _package(OLD)}, {"Pkg": _package(NEW, a="1.0.1", data="2.0.0")})
    assert [(k.what, k.old_folder, k.new_folder) for k in kept] == [
        ("Pkg code package B 1.0.0", OLD / "Pkg" / "B", NEW / "Pkg" / "B")
    ]
    assert [k.what for k in kept_versions({"Pkg": _package(OLD)}, {"Pkg": _package(NEW)})] == [
        "Pkg code package A 1.0.0",
        "Pkg code package B 1.0.0",
        "Pkg data package Data 1.0.0",
    ]
    # The same copy (a reused provision) is the same files: nothing to compare.
    assert kept_versions({"Pkg": _package(OLD)}, {"Pkg": _package(OLD)}) == []
