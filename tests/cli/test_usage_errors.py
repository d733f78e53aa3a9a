"""Usage errors of the command line and the client, found before anything is sent: bad
instance IDs (stating the rule), contradictory options, service names without a service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.cli import main
from fabrichost.client import FabricClient

if TYPE_CHECKING:
    from pathlib import Path

ID_RULE = "letters, digits and ._:@- only"


@pytest.mark.parametrize("bad", ["", "..", ".", "a b", "-x", "a/b"])
def test_a_bad_instance_id_is_a_usage_error_stating_the_rule(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["instance", "start", "EchoJob", "--id", bad, "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert ID_RULE in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["status", "terminate", "purge"])
@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_an_instance_id_that_cannot_be_a_path_segment_is_a_usage_error(
    command: str, bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["instance", command, bad, "--state-dir", str(tmp_path)]) == 2
    assert ID_RULE in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["", "..", "a b"])
def test_the_client_refuses_a_bad_instance_id_before_sending(bad: str) -> None:
    sent: list[httpx.Request] = []

    def agent(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202)

    with FabricClient("http://agent", transport=httpx.MockTransport(agent)) as client:
        with pytest.raises(ValueError, match="1-256 characters"):
            client.start_instance("EchoJob", bad)
        with pytest.raises(ValueError, match="not valid"):
            client.instance_status("..")
    assert sent == []


def test_stateless_and_stateful_together_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["service", "create", "fabric:/A/S", "--type", "T", "--stateless", "--stateful"]
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    assert "exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["fabric:/App1", "fabric:/", "App1/S"])
def test_a_service_name_without_a_service_segment_is_a_usage_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["service", "create", name, "--type", "T", "--stateless"]
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    assert "fabric:/<Application>/<Service>" in capsys.readouterr().err
