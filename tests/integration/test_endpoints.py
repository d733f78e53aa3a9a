"""Endpoints a user can find: a guest publishes SF's endpoints JSON, and it is reachable."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.wire import ServiceDescription, ServiceKind, endpoints_of
from tests.integration.conftest import (
    fh,
    runtime_host_script,
    write_guest_package,
    write_runtime_package,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

# Serves HTTP where Service Fabric says: the port in Fabric_Endpoint_Web, on the endpoint's IP.
WEB_SERVER = """
import http.server, json, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k: v for k, v in os.environ.items() if k.startswith("Fabric_End")})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass

host = os.environ["Fabric_Endpoint_IPOrFQDN_Web"]
http.server.HTTPServer((host, int(os.environ["Fabric_Endpoint_Web"])), Handler).serve_forever()
"""

ENDPOINTS = (
    '<Endpoint Name="Web" Protocol="http" UriScheme="http" PathSuffix="app/" />'
    '<Endpoint Name="Raw" Protocol="http" />'
)


def _web_package(root: Path) -> Path:
    package = write_guest_package(root, script=WEB_SERVER)
    manifest = package / "GuestPkg" / "ServiceManifest.xml"
    text = manifest.read_text()
    assert '<Endpoint Name="Web" />' in text
    manifest.write_text(text.replace('<Endpoint Name="Web" />', ENDPOINTS))
    return package


def _get(url: str, deadline: float = 30.0) -> httpx.Response:
    """GET ``url`` once the guest listens: a Ready guest has started, not necessarily bound."""
    end = time.monotonic() + deadline
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.ConnectError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def test_a_guest_publishes_its_endpoints_and_serves_there(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.client.deploy(_web_package(tmp_path / "WebApp"), "fabric:/G")
    description = ServiceDescription(
        name="fabric:/G/Web", type_name="GuestType", kind=ServiceKind.STATELESS, instance_count=1
    )
    cluster.client.create_service("fabric:/G", description, wait=True, wait_timeout=30)

    code, out, _ = fh(cluster, capsys, "service", "resolve", "fabric:/G/Web", "--json")
    assert code == 0
    [partition] = json.loads(out)
    [endpoint] = partition["Endpoints"]
    assert endpoint["Kind"] == "Stateless"
    published = json.loads(endpoint["Address"])  # SF's endpoints JSON, as published
    assert set(published) == {"Endpoints"}
    endpoints = endpoints_of(endpoint["Address"])
    assert endpoints == cluster.client.endpoints("fabric:/G/Web")  # one call, same answer

    # As SF spells them: <UriScheme>://<ip>:<port>/<PathSuffix>, and <ip>:<port> without one.
    web, raw = endpoints["Web"], endpoints["Raw"]
    assert web.startswith("http://127.0.0.1:")
    assert web.endswith("/app/")
    assert raw.startswith("127.0.0.1:")
    answer = _get(web)
    assert answer.status_code == 200
    env = answer.json()
    assert web == f"http://127.0.0.1:{env['Fabric_Endpoint_Web']}/app/"
    assert raw == f"127.0.0.1:{env['Fabric_Endpoint_Raw']}"
    assert env["Fabric_Endpoint_IPOrFQDN_Web"] == "127.0.0.1"

    # The tables show them readably.
    code, out, _ = fh(cluster, capsys, "service", "resolve", "fabric:/G/Web")
    assert code == 0
    assert "Stateless" in out
    assert web in out
    assert raw in out
    code, out, _ = fh(cluster, capsys, "service", "show", "fabric:/G/Web")
    assert code == 0
    assert f"Web={web}" in out
    code, out, _ = fh(
        cluster, capsys, "deployed", "replicas", "--node", "_Node_0", "--app", "fabric:/G"
    )
    assert code == 0
    assert f"Web={web}" in out
    assert f"Raw={raw}" in out


def test_a_runtime_service_publishes_what_open_returned_primary_first(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_runtime_package(
        tmp_path / "Rt", {"Code": ("CounterType", runtime_host_script("CounterType"))}
    )
    cluster3.client.deploy(package, "fabric:/Rt")
    description = ServiceDescription(
        name="fabric:/Rt/Counter",
        type_name="CounterType",
        kind=ServiceKind.STATEFUL,
        target_replica_set_size=3,
        min_replica_set_size=2,
    )
    cluster3.client.create_service("fabric:/Rt", description, wait=True, wait_timeout=30)

    [partition] = cluster3.client.resolve_service("fabric:/Rt/Counter")
    kinds = [e["Kind"] for e in partition["Endpoints"]]
    assert kinds == ["StatefulPrimary", "StatefulSecondary", "StatefulSecondary"]
    primary = partition["Endpoints"][0]["Address"]
    assert primary.startswith("replica://")
    assert primary.endswith("/Primary")  # the string change_role returned, unchanged
    assert cluster3.client.endpoints("fabric:/Rt/Counter") == {"": primary}

    code, out, _ = fh(cluster3, capsys, "service", "resolve", "fabric:/Rt/Counter")
    assert code == 0
    lines = [line for line in out.splitlines() if "replica://" in line]
    assert len(lines) == 3
    assert "StatefulPrimary" in lines[0]
    assert primary in lines[0]
