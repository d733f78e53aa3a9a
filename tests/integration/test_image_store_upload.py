"""The native image store over REST, as sfctl uses it, and provisioning from it.

Requests go over raw HTTP where a client library would clean the path first (``..``, ``//``),
so the agent sees exactly what a hostile or careless client could send.
"""

from __future__ import annotations

import http.client
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from fabrichost.agent import MAX_FILE_BYTES
from fabrichost.wire import CREATE_HEADER, ServiceDescription, ServiceKind
from tests.integration.conftest import write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def raw(
    cluster: Cluster,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, http.client.HTTPResponse]:
    """Send ``path`` exactly as written; (status, JSON body or None, the response)."""
    url = urlsplit(cluster.client.endpoint)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    return response.status, (json.loads(data) if data else None), response


def upload(cluster: Cluster, package: Path, name: str) -> None:
    """What ``sfctl application upload`` sends: each file with PUT, then each folder's
    ``_.dir`` marker with no body."""
    for here, _, files in os.walk(package):
        relative = os.path.relpath(here, package)
        folder = name if relative == "." else f"{name}/{relative}"
        for file in files:
            with open(os.path.join(here, file), "rb") as content:
                answer = httpx.put(
                    f"{cluster.client.endpoint}/ImageStore/{folder}/{file}",
                    params={"api-version": "6.1"},
                    content=content.read(),
                    timeout=30,
                )
            assert answer.status_code == 200, answer.text
        marker = httpx.put(f"{cluster.client.endpoint}/ImageStore/{folder}/_.dir", timeout=30)
        assert marker.status_code == 200, marker.text


def content_tree(cluster: Cluster) -> list[str]:
    root = cluster.state_dir / "ImageStoreContent"
    return sorted(
        os.path.relpath(os.path.join(here, n), root)
        for here, dirs, files in os.walk(root)
        for n in dirs + files
    )


def test_root_and_cluster_version_answer_as_sfctl_expects(cluster: Cluster) -> None:
    status, body, _ = raw(cluster, "GET", "/")
    assert status == 200
    assert body["Name"] == "fabrichost"
    status, body, _ = raw(cluster, "GET", "/$/GetClusterVersion?api-version=6.4")
    assert (status, body) == (200, {"Version": "8.2.0.0"})


def test_unknown_paths_and_methods_answer_service_fabric_error_json(cluster: Cluster) -> None:
    status, body, _ = raw(cluster, "GET", "/$/GetClusterHealthChunk")
    assert status == 404
    assert body["Error"]["Code"] == "FABRIC_E_NOT_SUPPORTED"
    assert "GET /$/GetClusterHealthChunk" in body["Error"]["Message"]
    status, body, response = raw(cluster, "GET", "/ApplicationTypes/$/Provision")
    assert status == 405
    assert "not allowed" in body["Error"]["Message"]
    assert response.getheader("Allow") == "POST"
    status, body, response = raw(cluster, "PATCH", "/ImageStore/App/x.txt", b"x")
    assert (status, body["Error"]["Code"]) == (405, "FABRIC_E_NOT_SUPPORTED")
    allowed = set((response.getheader("Allow") or "").split(", "))
    assert allowed == {"GET", "HEAD", "PUT", "DELETE", "POST"}


def test_an_uploaded_package_is_listed_provisioned_and_deleted(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    (package / "GuestPkg" / "Data").mkdir()  # an empty folder: only its _.dir marks it
    upload(cluster, package, "Guest")
    status, root, _ = raw(cluster, "GET", "/ImageStore?api-version=6.1")
    assert status == 200
    assert root == {
        "StoreFiles": [],
        "StoreFolders": [{"StoreRelativePath": "Guest", "FileCount": "4"}],
    }
    status, listing, _ = raw(cluster, "GET", "/ImageStore/Guest")
    assert [f["StoreRelativePath"] for f in listing["StoreFiles"]] == [
        "Guest/ApplicationManifest.xml"
    ]
    size = (package / "ApplicationManifest.xml").stat().st_size
    assert listing["StoreFiles"][0]["FileSize"] == str(size)
    assert listing["StoreFiles"][0]["ModifiedDate"].endswith("Z")
    status, pkg, _ = raw(cluster, "GET", "/ImageStore/Guest/GuestPkg")
    assert [(f["StoreRelativePath"], f["FileCount"]) for f in pkg["StoreFolders"]] == [
        ("Guest/GuestPkg/Code", "2"),
        ("Guest/GuestPkg/Data", "0"),
    ]

    head, _, _ = raw(cluster, "HEAD", "/ImageStore/Guest/ApplicationManifest.xml")
    assert head == 200
    # Provision by the path in the store (SF's ApplicationTypeBuildPath), as sfctl sends it.
    provision = {"Kind": "ImageStorePath", "Async": False, "ApplicationTypeBuildPath": "Guest"}
    status, body, _ = raw(
        cluster, "POST", "/ApplicationTypes/$/Provision", json.dumps(provision).encode()
    )
    assert status == 200, body
    assert [t["Name"] for t in cluster.client.application_types()] == ["GuestAppType"]
    # The store's content may go: the type runs from its own copy.
    status, _, _ = raw(cluster, "DELETE", "/ImageStore/Guest")
    assert status == 200
    assert content_tree(cluster) == []
    status, body, _ = raw(cluster, "GET", "/ImageStore/Guest")
    assert (status, body["Error"]["Code"]) == (404, "FABRIC_E_FILE_NOT_FOUND")
    created = cluster.client.create_application_outcome("fabric:/G", "GuestAppType", "1.0.0")
    assert created.created
    # An upload carries no file modes: the program is made executable at start, as SF does.
    description = ServiceDescription(
        name="fabric:/G/S", type_name="GuestType", kind=ServiceKind.STATELESS
    )
    cluster.client.create_service("fabric:/G", description, wait=True, wait_timeout=30)


def test_provision_refuses_what_the_store_cannot_give(cluster: Cluster) -> None:
    cases = [
        ({"ApplicationTypeBuildPath": "Missing"}, 404, "holds nothing at 'Missing'"),
        ({"ApplicationTypeBuildPath": "../state"}, 400, "'..'"),
        ({"ApplicationTypeBuildPath": "Store/x"}, 400, "reserved"),
        (
            {
                "Kind": "ExternalStore",
                "ApplicationPackageDownloadUri": "https://example.com/x.sfpkg",
                "ApplicationTypeName": "X",
                "ApplicationTypeVersion": "1",
            },
            501,
            "external store",
        ),
    ]
    for body, expected, words in cases:
        status, answer, _ = raw(
            cluster, "POST", "/ApplicationTypes/$/Provision", json.dumps(body).encode()
        )
        assert status == expected, (body, answer)
        assert words in answer["Error"]["Message"], (body, answer)
    assert cluster.client.application_types() == []


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/ImageStore/../escape.txt", "'..'"),
        ("/ImageStore/%2e%2e/escape.txt", "'..'"),
        ("/ImageStore/App/%2E%2E/%2E%2E/escape.txt", "'..'"),
        ("/ImageStore//tmp/escape.txt", "not absolute"),
        ("/ImageStore/App/x%00y", "NUL"),
        ("/ImageStore/Store/App/x.txt", "reserved"),
        ("/ImageStore/App/_.dir/x.txt", "reserved"),
        ("/ImageStore/App%5Cx.txt", "'/'"),
    ],
)
def test_an_upload_outside_the_store_or_to_a_reserved_name_is_refused(
    cluster: Cluster, path: str, words: str
) -> None:
    status, body, _ = raw(cluster, "PUT", path, b"payload")
    assert status == 400, body
    assert body["Error"]["Code"].startswith("FABRIC_E_")
    assert words in body["Error"]["Message"]
    assert content_tree(cluster) == []
    assert not (cluster.state_dir / "escape.txt").exists()
    assert not (cluster.state_dir.parent / "escape.txt").exists()


def test_a_link_planted_in_the_store_is_not_followed(cluster: Cluster, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = cluster.state_dir / "ImageStoreContent"
    root.mkdir(exist_ok=True)
    (root / "Link").symlink_to(outside)
    for method, body in (("PUT", b"x"), ("GET", b""), ("DELETE", b"")):
        status, answer, _ = raw(cluster, method, "/ImageStore/Link/secret.txt", body)
        assert status == 400, (method, answer)
        assert "symbolic link" in answer["Error"]["Message"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_bodies_are_bounded_and_markers_take_none(cluster: Cluster) -> None:
    url = urlsplit(cluster.client.endpoint)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:  # announced too large: refused before any of it is sent
        connection.putrequest("PUT", "/ImageStore/App/huge.bin")
        connection.putheader("Content-Length", str(MAX_FILE_BYTES + 1))
        connection.endheaders()
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert (response.status, answer["Error"]["Code"]) == (413, "FABRIC_E_VALUE_TOO_LARGE")
    status, answer, _ = raw(cluster, "PUT", "/ImageStore/App/_.dir", b"not empty")
    assert status == 400
    assert "takes no body" in answer["Error"]["Message"]
    status, answer, _ = raw(cluster, "PUT", "/ImageStore/App/$/UploadChunk?session-id=1", b"x")
    assert status == 501
    assert "'UploadChunk' is not built" in answer["Error"]["Message"]
    assert content_tree(cluster) == []


def test_creates_answer_service_fabrics_status_and_say_whether_they_created(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    client = cluster.client
    client.provision(package)
    url = f"{client.endpoint}/Applications/$/Create"
    body = {"Name": "fabric:/G", "TypeName": "GuestAppType", "TypeVersion": "1.0.0"}
    first = httpx.post(url, json=body, timeout=30)
    assert (first.status_code, first.headers[CREATE_HEADER]) == (201, "created")
    again = httpx.post(url, json=body, params={"IfExists": "use-existing"}, timeout=30)
    assert (again.status_code, again.headers[CREATE_HEADER]) == (201, "existing")
    description = ServiceDescription(
        name="fabric:/G/S", type_name="GuestType", kind=ServiceKind.STATELESS
    )
    made = client.create_service_outcome("fabric:/G", description)
    assert made.created
    found = client.create_service_outcome("fabric:/G", description, if_exists="use-existing")
    assert not found.created
    assert not client.create_application_outcome(
        "fabric:/G", "GuestAppType", "1.0.0", if_exists="use-existing"
    ).created
    stateless = {
        "ServiceKind": "Stateless",
        "ServiceName": "fabric:/G/T",
        "ServiceTypeName": "GuestType",
        "PartitionDescription": {"PartitionScheme": "Singleton"},
        "InstanceCount": 1,
    }
    service = httpx.post(
        f"{client.endpoint}/Applications/G/$/GetServices/$/Create", json=stateless, timeout=30
    )
    assert (service.status_code, service.headers[CREATE_HEADER]) == (202, "created")
