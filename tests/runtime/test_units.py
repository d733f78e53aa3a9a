"""The runtime's pieces that need no process: exports, the token, the context, the timeouts."""

from __future__ import annotations

import asyncio
import threading

import pytest

import fabrichost.protocol
import fabrichost.runtime
from fabrichost.protocol import Endpoint, OpenReplica, ReplicaRole, ServiceKind
from fabrichost.runtime import CancellationToken, StatelessService
from fabrichost.runtime._context import ProcessEnvironment, Timeouts, make_context, pick_config


@pytest.mark.parametrize("module", [fabrichost.protocol, fabrichost.runtime])
def test_all_lists_exactly_the_public_names(module: object) -> None:
    exported = module.__all__  # type: ignore[attr-defined]
    assert isinstance(exported, tuple)
    assert list(exported) == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:  # a part may load its names on first use (PEP 562)
        getattr(module, name)
    public = {name for name in vars(module) if not name.startswith("_")}
    public -= {"annotations"}  # from __future__
    assert public == set(exported)


def test_a_thread_waiting_on_the_token_wakes_when_cancelled() -> None:
    token = CancellationToken()
    woke = threading.Event()

    def wait() -> None:
        if token.wait(timeout=20):
            woke.set()

    thread = threading.Thread(target=wait)
    thread.start()
    assert not token.cancelled
    token.cancel()
    thread.join(timeout=20)
    assert woke.is_set()
    assert token.cancelled
    assert "cancelled=True" in repr(token)


def test_async_waiters_wake_when_cancelled_from_another_thread() -> None:
    async def main() -> None:
        token = CancellationToken()
        waiters = [asyncio.create_task(token.wait_cancelled()) for _ in range(3)]
        await asyncio.sleep(0)
        threading.Thread(target=token.cancel).start()
        async with asyncio.timeout(20):
            await asyncio.gather(*waiters)
        await token.wait_cancelled()  # already cancelled: returns at once
        token.cancel()  # twice is fine

    asyncio.run(main())


def test_an_abandoned_async_wait_leaves_no_waiter_behind() -> None:
    async def main() -> CancellationToken:
        token = CancellationToken()
        task = asyncio.create_task(token.wait_cancelled())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return token

    token = asyncio.run(main())
    assert token._waiters == []
    token.cancel()


def test_endpoints_and_folders_come_from_the_fabric_variables() -> None:
    env = ProcessEnvironment.from_environ(
        {
            "Fabric_NodeName": "_Node_3",
            "Fabric_Endpoint_Web": "8080",
            "Fabric_Endpoint_IPOrFQDN_Web": "localhost",
            "Fabric_Endpoint_Bad": "eighty",
            "Fabric_Endpoint_Zero": "0",
            "Fabric_Folder_App_Work": "/w",
        }
    )
    assert env.node_name == "_Node_3"
    assert env.work_folder == "/w"
    assert env.endpoints == {"Web": Endpoint(port=8080)}
    assert env.application_name == ""


def test_open_replica_endpoints_take_precedence_over_the_environment() -> None:
    env = ProcessEnvironment.from_environ({"Fabric_Endpoint_Web": "8080"})
    request = OpenReplica(
        id=1,
        service_name="fabric:/A/S",
        service_type="T",
        service_kind=ServiceKind.STATELESS,
        partition_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        replica_id=2,
        role=ReplicaRole.NONE,
        init_data=None,
        endpoints={"Web": Endpoint(port=9090)},
    )
    context = make_context(env, request, node_name="", config_packages={})
    assert context.endpoints == {"Web": Endpoint(port=9090)}
    assert context.node_name == ""
    assert not context.is_stateful


def test_config_shows_the_config_package_or_the_only_one() -> None:
    assert pick_config({"Config": {"A": {}}, "Other": {"B": {}}}) == {"A": {}}
    assert pick_config({"Other": {"B": {}}}) == {"B": {}}
    assert pick_config({"X": {}, "Y": {}}) == {}


@pytest.mark.parametrize(
    ("value", "expected"), [("2.5", 2.5), ("0", 0.0), ("-1", 10.0), ("inf", 10.0), ("x", 10.0)]
)
def test_close_timeout_comes_from_the_environment_when_sane(value: str, expected: float) -> None:
    assert Timeouts.from_environ({"FABRICHOST_CLOSE_TIMEOUT": value}).close_all == expected
    assert Timeouts.from_environ({}).run_grace == 5.0


def test_reporting_outside_a_host_is_a_clear_error() -> None:
    env = ProcessEnvironment.from_environ({})
    request = OpenReplica(
        id=1,
        service_name="fabric:/A/S",
        service_type="T",
        service_kind=ServiceKind.STATELESS,
        partition_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        replica_id=2,
        role=ReplicaRole.NONE,
        init_data=None,
        endpoints={},
    )
    service = StatelessService(make_context(env, request, node_name="n", config_packages={}))
    with pytest.raises(RuntimeError, match="not hosted by run_host"):
        service.report_load({"x": 1})


def test_run_host_refuses_what_is_not_a_service_class() -> None:
    with pytest.raises(ValueError, match="at least one service type"):
        fabrichost.runtime.run_host({})
    with pytest.raises(TypeError, match="StatelessService or StatefulService subclass"):
        fabrichost.runtime.run_host({"T": int})  # type: ignore[dict-item]
