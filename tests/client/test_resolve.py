"""``FabricClient.resolve_service`` and ``endpoints`` against a stand-in agent (no processes)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fabrichost.cli._output import readable_address
from fabrichost.client import FabricClient
from fabrichost.errors import ApiError, UnavailableError

GUEST = '{"Endpoints": {"Web": "http://127.0.0.1:30017/"}}'


def _replica(role: str, address: str, status: str = "Ready") -> dict[str, Any]:
    return {
        "ServiceKind": "Stateful",
        "ReplicaRole": role,
        "ReplicaStatus": status,
        "Address": address,
    }


def _client(partitions: dict[str, list[dict[str, Any]]]) -> FabricClient:
    """A client whose agent has one service with ``partitions`` (id → replicas)."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/$/GetPartitions"):
            items = [
                {"PartitionInformation": {"ServicePartitionKind": "Singleton", "Id": pid}}
                for pid in partitions
            ]
            return httpx.Response(200, json={"Items": items})
        pid = path.split("/")[2]
        return httpx.Response(200, json={"Items": partitions[pid]})

    return FabricClient("http://agent", transport=httpx.MockTransport(answer))


def test_the_primary_comes_first_and_only_ready_replicas_with_an_address_count() -> None:
    replicas = [
        _replica("ActiveSecondary", "tcp://b"),
        _replica("ActiveSecondary", "tcp://c", status="InBuild"),
        _replica("Primary", "tcp://a"),
        _replica("ActiveSecondary", ""),
    ]
    with _client({"p1": replicas}) as client:
        [partition] = client.resolve_service("fabric:/A/S")
        assert partition["Name"] == "fabric:/A/S"
        assert partition["PartitionInformation"]["Id"] == "p1"
        assert partition["Endpoints"] == [
            {"Kind": "StatefulPrimary", "Address": "tcp://a"},
            {"Kind": "StatefulSecondary", "Address": "tcp://b"},
        ]
        assert client.endpoints("fabric:/A/S") == {"": "tcp://a"}


def test_a_guest_s_endpoints_come_back_by_name() -> None:
    instance = {"ServiceKind": "Stateless", "ReplicaStatus": "Ready", "Address": GUEST}
    with _client({"p1": [instance]}) as client:
        assert client.endpoints("fabric:/A/Web") == {"Web": "http://127.0.0.1:30017/"}


def test_endpoints_of_a_partitioned_service_points_at_resolve_service() -> None:
    with _client({"p1": [], "p2": []}) as client, pytest.raises(ApiError, match="resolve_service"):
        client.endpoints("fabric:/A/S")


def test_endpoints_before_any_replica_is_ready_is_unavailable() -> None:
    agent = _client({"p1": [_replica("Primary", "", status="InBuild")]})
    with agent as client, pytest.raises(UnavailableError):
        client.endpoints("fabric:/A/S")


def test_a_table_shows_each_endpoint_as_name_equals_address() -> None:
    assert readable_address(GUEST) == "Web=http://127.0.0.1:30017/"
    two = '{"Endpoints": {"Web": "http://127.0.0.1:1/", "Raw": "127.0.0.1:2"}}'
    assert readable_address(two) == "Web=http://127.0.0.1:1/, Raw=127.0.0.1:2"
    assert readable_address("tcp://127.0.0.1:31001") == "tcp://127.0.0.1:31001"
    assert readable_address("") == ""
