from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fabrichost import LocalCluster

PACKAGE = Path(__file__).resolve().parents[1] / "WebApp"


def test_web_answers_with_its_greeting(fabric_cluster: LocalCluster) -> None:
    fabric_cluster.deploy(PACKAGE, name="fabric:/Web", params={"Greeting": "hi"})
    url = fabric_cluster.endpoints("fabric:/Web/Web")["Web"]
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.read() == b"hi"


def test_each_test_starts_without_the_last_one_s_applications(
    fabric_cluster: LocalCluster,
) -> None:
    assert fabric_cluster.client.applications() == []
    fabric_cluster.deploy(PACKAGE, name="fabric:/Web")  # the name is free again
    url = fabric_cluster.endpoints("fabric:/Web/Web")["Web"]
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"hello"
