"""A failure that hits many replicas is reported once, with the count (issue 13).

A host dies while it opens 200 replicas: each of them fails for the same reason, the channel to
that host closed. The next host holds their opens forever, so a wait that ends reports them:
once, counted, with the first few replicas, in a message of bounded length (it was one line
per replica, 375 KB for 4,000).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import FabricHostError
from tests.integration.conftest import fh, write_runtime_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.beacon import Beacon
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

REPLICAS = 200
MAX_MESSAGE = 600  # characters, whatever the number of replicas

# The first host exits once all its opens have arrived; the next one holds them forever. Each
# tells the beacon (its address is in the script) when it has them all.
DIES_THEN_HOLDS = """
import asyncio, os, socket
from pathlib import Path
from fabrichost.runtime import StatefulService, run_host

EXPECTED = {replicas}
opening = 0
marker = Path(os.environ["Fabric_Folder_App_Work"]) / "died-once"


def tell(event):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({address!r})
    s.sendall(f"{{event}} {{os.getpid()}}\\n".encode())
    s.close()


class Svc(StatefulService):
    async def open(self):
        global opening
        opening += 1
        if opening == EXPECTED:
            if not marker.exists():
                marker.write_text("")
                tell("dying")
                os._exit(3)
            tell("holding")
        await asyncio.Event().wait()

run_host({{"HeldType": Svc}})
"""


def test_issue_13_a_failure_of_many_replicas_is_one_short_counted_message(
    cluster: Cluster, tmp_path: Path, beacon: Beacon, capsys: pytest.CaptureFixture[str]
) -> None:
    script = DIES_THEN_HOLDS.format(replicas=REPLICAS, address=beacon.address)
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("HeldType", script)})
    code, _, err = fh(cluster, capsys, "app", "deploy", str(pkg), "--name", "fabric:/Many")
    assert code == 0, err
    service = "fabric:/Many/S"
    create = [
        *("service", "create", service, "--type", "HeldType", "--stateful"),
        *("--replicas", "1", "--partitions", f"uniform:{REPLICAS}:0:{REPLICAS - 1}"),
    ]
    code, _, err = fh(cluster, capsys, *create)
    assert code == 0, err
    died = beacon.wait("dying", timeout=120)
    beacon.wait("holding", timeout=120)  # the next host has every open: none can succeed

    expected = re.compile(
        rf"{REPLICAS} replicas could not be opened: the channel to host {died} closed "
        r"\(first: replica \d+, \d+, \d+, …\)"
    )
    # The API's error: a wait that ends reports every replica's reason once.
    with pytest.raises(FabricHostError) as caught:
        cluster.client.wait_service_ready(service, timeout=1)
    message = str(caught.value)
    assert expected.search(message), message
    assert len(message) < MAX_MESSAGE, message
    # The CLI's (the same create, waiting this time).
    code, _, err = fh(
        cluster, capsys, *create, "--if-exists", "use-existing", "--wait", "--timeout", "1"
    )
    assert code == 1
    assert expected.search(err), err
    assert len(err) < MAX_MESSAGE, err
