"""Usage errors of the command line and the client, found before anything is sent: bad
instance IDs (stating the rule), contradictory options, service names without a service, names
with dot segments, and instance inputs too large (or ambiguous) to deliver."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.cli import main
from fabrichost.client import FabricClient
from fabrichost.errors import TooLargeError
from fabrichost.wire import MAX_INSTANCE_INPUT_BYTES

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


DOT_NAMES = [
    "fabric:/../x",
    "fabric:/a/b/../c",
    "fabric:/%2e%2e/S",
    "fabric:/A/./S",
    "fabric:/A/..",
]


@pytest.mark.parametrize("name", DOT_NAMES)
def test_a_service_name_with_a_dot_segment_is_a_usage_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without the check, fabric:/../x became a request to /Applications/../$/GetServices/...
    argv = ["service", "create", name, "--type", "T", "--stateless"]
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert name in err
    assert "'.' or '..'" in err


@pytest.mark.parametrize("name", DOT_NAMES)
def test_an_application_name_with_a_dot_segment_is_a_usage_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "Pkg"
    package.mkdir()
    argv = ["app", "deploy", str(package), "--name", name, "--state-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--name" in err
    assert name in err


@pytest.mark.parametrize("source", ["argument", "file"])
def test_an_input_too_large_to_deliver_is_a_usage_error_naming_the_limit(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = json.dumps("x" * 1_100_000)  # a shell cannot pass this as an argument; a file holds it
    (tmp_path / "big.json").write_text(big)
    value = big if source == "argument" else f"@{tmp_path / 'big.json'}"
    argv = ["instance", "start", "EchoJob", "--input", value, "--state-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--input" in err
    assert f"at most {MAX_INSTANCE_INPUT_BYTES} bytes" in err
    assert len(err) < 1000, "the input is not echoed back"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read"),
        (b"{not json" + b" " * 100_000, "not valid JSON (Expecting property name enclosed in"),
        (b"\xff\xfe", "not UTF-8"),
        (b" " * (16 * 1024 * 1024 + 1), "larger than 16777216 bytes"),
    ],
    ids=["missing", "not-json", "not-utf8", "huge"],
)
def test_a_bad_input_file_is_a_usage_error_saying_why(
    content: bytes | None, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.json"
    if content is not None:
        path.write_bytes(content)
    argv = ["instance", "start", "EchoJob", "--input", f"@{path}", "--state-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err
    assert len(err) < 1000


def test_an_input_with_a_key_twice_is_a_usage_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["instance", "start", "EchoJob", "--input", '{"n": 1, "n": 2}']
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    assert "the key 'n' appears twice" in capsys.readouterr().err


def test_the_client_refuses_an_input_too_large_to_deliver_before_sending() -> None:
    sent: list[httpx.Request] = []

    def agent(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"id": "job-1"})

    with FabricClient("http://agent", transport=httpx.MockTransport(agent)) as client:
        with pytest.raises(TooLargeError, match=f"at most {MAX_INSTANCE_INPUT_BYTES} bytes"):
            client.start_instance("EchoJob", "job-1", "x" * (MAX_INSTANCE_INPUT_BYTES + 1))
        with pytest.raises(ValueError, match="not JSON"):
            client.start_instance("EchoJob", "job-1", float("nan"))
        assert sent == []
        client.start_instance("EchoJob", "job-1", "x" * 1000)  # a small one is sent
    assert len(sent) == 1


@pytest.mark.parametrize("inside", [".", "state", "deep/state"])
def test_dev_refuses_a_state_directory_inside_its_package_and_starts_nothing(
    inside: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "App"
    package.mkdir()
    state = package / inside
    assert main(["dev", str(package), "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert "inside the package" in err
    assert not (state / "agent.json").exists()
