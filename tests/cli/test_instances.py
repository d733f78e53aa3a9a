"""`fabrichost instance ...` and the client calls under it.

The first half needs no agent: the requests the client sends (an httpx ``MockTransport`` stands
in for the agent), argument errors, and the exit codes. The second half, marked
``integration``, deploys ``manifests/SingletonJobs`` on a real agent and drives singletons end
to end through the command line.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.cli import main
from fabrichost.client import FabricClient
from fabrichost.errors import ApiError, ConflictError, NotFoundError
from sample_services.jobs import read_journal
from tests.integration.conftest import MANIFESTS, cluster, fh

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.conftest import Cluster

__all__ = ("cluster",)  # the fixture, re-exported for the integration tests below

PAYLOAD = {
    "id": "job-1",
    "statusQueryGetUri": "http://agent/runtime/webhooks/durabletask/instances/job-1",
    "sendEventPostUri": "http://agent/runtime/webhooks/durabletask/instances/job-1/raiseEvent",
    "terminatePostUri": "http://agent/runtime/webhooks/durabletask/instances/job-1/terminate",
    "purgeHistoryDeleteUri": "http://agent/runtime/webhooks/durabletask/instances/job-1",
}
CONFLICT = {
    "Error": {
        "Code": "FABRIC_E_SERVICE_ALREADY_EXISTS",
        "Message": "An instance with ID 'job-1' already exists.",
    }
}


class FakeAgent:
    """Records each request and answers with the next canned response."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._responses.pop(0)

    def client(self) -> FabricClient:
        return FabricClient("http://agent", transport=httpx.MockTransport(self))

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


# -- the client ---------------------------------------------------------------------------------


def test_start_posts_the_input_as_the_body_with_the_policy_and_idempotency_key() -> None:
    agent = FakeAgent(httpx.Response(202, json=PAYLOAD))
    with agent.client() as client:
        started = client.start_instance(
            "EchoJob", "job-1", {"n": 1}, if_exists="use-existing", request_id="req-7"
        )
    assert started == PAYLOAD
    request = agent.last
    assert (request.method, request.url.path) == ("POST", "/orchestrators/EchoJob/job-1")
    assert request.url.params["ifExists"] == "use-existing"
    assert request.headers["Idempotency-Key"] == "req-7"
    assert json.loads(request.content) == {"n": 1}


def test_start_without_an_id_or_input_posts_an_empty_body_to_the_function_route() -> None:
    agent = FakeAgent(httpx.Response(202, json=PAYLOAD))
    with agent.client() as client:
        client.start_instance("EchoJob")
    request = agent.last
    assert request.url.path == "/orchestrators/EchoJob"
    assert request.url.params["ifExists"] == "fail"
    assert "Idempotency-Key" not in request.headers
    assert request.content == b""  # the agent reads an empty body as a null input


@pytest.mark.parametrize("data", [[1, 2], "text", 0, False])
def test_start_sends_any_json_value(data: object) -> None:
    agent = FakeAgent(httpx.Response(202, json=PAYLOAD))
    with agent.client() as client:
        client.start_instance("EchoJob", "job-1", data)
    assert json.loads(agent.last.content) == data


def test_an_instance_id_stays_one_path_segment() -> None:
    agent = FakeAgent(httpx.Response(200, json={"instanceId": "a/b c?d"}))
    with agent.client() as client:
        client.instance_status("a/b c?d")
    assert agent.last.url.raw_path == b"/runtime/webhooks/durabletask/instances/a%2Fb%20c%3Fd"


def test_start_refuses_an_unknown_policy_before_calling() -> None:
    agent = FakeAgent()
    with agent.client() as client, pytest.raises(ValueError, match="use-existing"):
        client.start_instance("EchoJob", "job-1", if_exists="overwrite")
    assert agent.requests == []


def test_a_taken_id_is_a_conflict_error_naming_it() -> None:
    agent = FakeAgent(httpx.Response(409, json=CONFLICT))
    with agent.client() as client, pytest.raises(ConflictError) as raised:
        client.start_instance("EchoJob", "job-1")
    assert raised.value.message == "An instance with ID 'job-1' already exists."
    assert raised.value.code == "FABRIC_E_SERVICE_ALREADY_EXISTS"


def test_an_ambiguous_function_is_an_api_error() -> None:
    error = {"Error": {"Code": "FABRIC_E_INVALID_ARGUMENT", "Message": "in fabric:/A, fabric:/B"}}
    agent = FakeAgent(httpx.Response(400, json=error))
    with agent.client() as client, pytest.raises(ApiError, match="fabric:/A") as raised:
        client.start_instance("EchoJob")
    assert raised.value.status == 400


def test_status_with_wait_long_polls_for_at_most_the_timeout() -> None:
    agent = FakeAgent(httpx.Response(200, json={"runtimeStatus": "Completed"}))
    with agent.client() as client:
        assert client.instance_status("job-1", wait=True, timeout=7.5) == {
            "runtimeStatus": "Completed"
        }
    params = agent.last.url.params
    assert (params["waitForCompletion"], params["timeout"]) == ("true", "7.5")
    # The HTTP deadline covers the wait, so a long poll is not cut short by the client.
    assert agent.last.extensions["timeout"]["read"] >= 60.0 + 7.5


def test_list_terminate_and_purge_use_the_durable_task_routes() -> None:
    agent = FakeAgent(
        httpx.Response(200, json={"Items": [{"instanceId": "job-1"}]}),
        httpx.Response(202),
        httpx.Response(200, json={"instancesDeleted": 1}),
    )
    with agent.client() as client:
        assert client.instances() == [{"instanceId": "job-1"}]
        assert client.terminate_instance("job-1") is None
        assert client.purge_instance("job-1") == {"instancesDeleted": 1}
    base = "/runtime/webhooks/durabletask/instances"
    assert [(r.method, r.url.path) for r in agent.requests] == [
        ("GET", base),
        ("POST", f"{base}/job-1/terminate"),
        ("DELETE", f"{base}/job-1"),
    ]


def test_an_unknown_instance_is_not_found() -> None:
    agent = FakeAgent(httpx.Response(404, json={"instancesDeleted": 0}))
    with agent.client() as client, pytest.raises(NotFoundError):
        client.purge_instance("nope")


def test_raise_event_posts_the_data_as_json_to_the_raise_event_route() -> None:
    agent = FakeAgent(httpx.Response(202), httpx.Response(202))
    with agent.client() as client:
        client.raise_event("a/b", "approval", {"ok": True}, timeout=5)
        client.raise_event("job-1", "ping")  # no data: the body is null, never empty
    first, second = agent.requests
    assert first.method == "POST"
    assert first.url.raw_path.startswith(
        b"/runtime/webhooks/durabletask/instances/a%2Fb/raiseEvent/approval"
    )
    assert json.loads(first.content) == {"ok": True}
    assert first.headers["Content-Type"] == "application/json"
    assert first.url.params["timeout"] == "5"
    assert first.extensions["timeout"]["read"] >= 60.0 + 5
    assert second.content == b"null"


@pytest.mark.parametrize("name", ["", "a b", "a/b", "9x", "x" * 129])
def test_raise_event_refuses_a_bad_name_before_calling(name: str) -> None:
    agent = FakeAgent()
    with agent.client() as client, pytest.raises(ValueError, match="event name"):
        client.raise_event("job-1", name)
    assert agent.requests == []


@pytest.mark.parametrize("data", [float("nan"), {1, 2}, object()], ids=["nan", "set", "object"])
def test_raise_event_refuses_data_that_is_not_json(data: object) -> None:
    agent = FakeAgent()
    with agent.client() as client, pytest.raises(ValueError, match="not JSON"):
        client.raise_event("job-1", "x", data)
    assert agent.requests == []


def test_an_event_for_a_finished_instance_is_an_api_error_with_status_410() -> None:
    gone = {
        "Error": {
            "Code": "FABRIC_E_INSTANCE_NOT_RUNNING",
            "Message": "Instance 'job-1' is Completed and cannot process any raised events.",
        }
    }
    agent = FakeAgent(httpx.Response(410, json=gone))
    with agent.client() as client, pytest.raises(ApiError, match="Completed") as raised:
        client.raise_event("job-1", "approval")
    assert raised.value.status == 410


# -- the command line without an agent ----------------------------------------------------------


@pytest.mark.parametrize("text", ["{bad", "", "'single'", "NaN-ish", "[1,"])
def test_input_that_is_not_json_is_a_usage_error(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["instance", "start", "EchoJob", "--input", text, "--state-dir", str(tmp_path)])
    assert code == 2
    assert "--input" in capsys.readouterr().err


def test_an_unknown_policy_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "instance",
        "start",
        "EchoJob",
        "--if-exists",
        "overwrite",
        "--state-dir",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "--if-exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["start", "EchoJob", "--input", "{}"],
        ["status", "job-1"],
        ["status", "job-1", "--wait", "--timeout", "1"],
        ["list"],
        ["terminate", "job-1"],
        ["purge", "job-1"],
        ["raise-event", "job-1", "approval", "--data", "true"],
    ],
    ids=["start", "status", "status-wait", "list", "terminate", "purge", "raise-event"],
)
def test_without_an_agent_every_command_fails_saying_so(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["instance", *argv, "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no agent is running" in err
    assert "fabrichost up" in err


def test_a_conflict_exits_3_naming_the_existing_instance(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = FakeAgent(httpx.Response(409, json=CONFLICT))
    monkeypatch.setattr("fabrichost.cli._instances.client_for", lambda _state_dir: agent.client())
    assert main(["instance", "start", "EchoJob", "--id", "job-1"]) == 3
    assert "An instance with ID 'job-1' already exists." in capsys.readouterr().err


def test_start_prints_the_id_and_where_to_ask_for_its_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = FakeAgent(httpx.Response(202, json=PAYLOAD))
    monkeypatch.setattr("fabrichost.cli._instances.client_for", lambda _state_dir: agent.client())
    assert main(["instance", "start", "EchoJob", "--input", "null", "--request-id", "r"]) == 0
    out = capsys.readouterr().out
    assert "job-1" in out
    assert PAYLOAD["statusQueryGetUri"] in out
    assert agent.last.content == b""  # --input null is the same as no input
    assert agent.last.headers["Idempotency-Key"] == "r"


@pytest.mark.parametrize(
    ("args", "option"),
    [(["job-1", "approval", "--data", "{bad"], "--data"), (["job-1", "no good"], "NAME")],
    ids=["data", "name"],
)
def test_raise_event_usage_errors_exit_2(
    args: list[str], option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["instance", "raise-event", *args, "--state-dir", str(tmp_path)]) == 2
    assert option in capsys.readouterr().err


def test_raise_event_prints_what_it_raised_and_a_refusal_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = {"Error": {"Code": "FABRIC_E_INSTANCE_NOT_RUNNING", "Message": "is Completed"}}
    agent = FakeAgent(httpx.Response(202), httpx.Response(410, json=gone))
    monkeypatch.setattr("fabrichost.cli._instances.client_for", lambda _state_dir: agent.client())
    assert main(["instance", "raise-event", "job-1", "approval", "--data", '{"a": 1}']) == 0
    assert "raised approval for job-1" in capsys.readouterr().out
    assert json.loads(agent.last.content) == {"a": 1}
    assert main(["instance", "raise-event", "job-1", "approval"]) == 1
    assert "is Completed" in capsys.readouterr().err
    assert agent.last.content == b"null"


# -- end to end, against a real agent -----------------------------------------------------------


def status_of(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], *argv: str
) -> dict[str, object]:
    code, out, err = fh(cluster, capsys, "instance", "status", *argv, "--json")
    assert code == 0, err
    status: dict[str, object] = json.loads(out)
    return status


def wait_running(cluster: Cluster, instance_id: str, deadline: float = 30.0) -> dict[str, object]:
    """The instance's status once it is Running: its ``run`` has begun (journal written).

    Strategy: the API long-polls only until an instance *finishes*, so reaching Running is
    polled, with a short interval and a deadline.
    """
    end = time.monotonic() + deadline
    while True:
        status: dict[str, object] = cluster.client.instance_status(instance_id)
        if status["runtimeStatus"] != "Pending" or time.monotonic() > end:
            assert status["runtimeStatus"] == "Running", status
            return status
        time.sleep(0.05)


@pytest.fixture
def jobs(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """The cluster with ``manifests/SingletonJobs`` deployed as fabric:/Jobs; runs commands."""
    code, _, err = fh(
        cluster, capsys, "app", "deploy", str(MANIFESTS / "SingletonJobs"), "--name", "fabric:/Jobs"
    )
    assert code == 0, err
    return lambda *argv: fh(cluster, capsys, *argv)


@pytest.mark.integration
def test_echo_job_completes_with_its_input_as_output(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {"n": 1, "tags": ["a", "b"]}
    code, out, err = jobs(
        "instance", "start", "EchoJob", "--id", "echo-1", "--input", json.dumps(data), "--json"
    )
    assert code == 0, err
    started = json.loads(out)
    assert started["id"] == "echo-1"
    assert started["statusQueryGetUri"].endswith("/runtime/webhooks/durabletask/instances/echo-1")
    status = status_of(cluster, capsys, "echo-1", "--wait", "--timeout", "30")
    assert status["instanceId"] == "echo-1"
    assert status["name"] == "EchoJob"
    assert status["runtimeStatus"] == "Completed"
    assert status["input"] == data
    assert status["output"] == data
    assert status["error"] is None


@pytest.mark.integration
def test_an_input_read_from_a_file_reaches_the_job(
    jobs: Callable[..., tuple[int, str, str]],
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    data = {"text": "y" * 500_000}  # more than a command line can hold
    (tmp_path / "input.json").write_text(json.dumps(data, indent=2))
    code, _, err = jobs(
        "instance", "start", "EchoJob", "--id", "file-1", "--input", f"@{tmp_path / 'input.json'}"
    )
    assert code == 0, err
    status = status_of(cluster, capsys, "file-1", "--wait", "--timeout", "60")
    assert status["runtimeStatus"] == "Completed", status["error"]
    assert status["output"] == data


@pytest.mark.integration
def test_echo_job_fails_with_the_error_it_raised(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = jobs(
        "instance", "start", "EchoJob", "--id", "echo-f", "--input", '{"fail": "boom"}'
    )
    assert code == 0, err
    status = status_of(cluster, capsys, "echo-f", "--wait", "--timeout", "30")
    assert status["runtimeStatus"] == "Failed"
    assert "boom" in str(status["error"])
    assert status["output"] is None


@pytest.mark.integration
def test_an_eternal_job_runs_until_terminated_then_is_purged(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = jobs("instance", "start", "EternalJob", "--id", "forever")
    assert code == 0, err
    # A wait that times out answers with the status of the moment: still going.
    status = status_of(cluster, capsys, "forever", "--wait", "--timeout", "1")
    assert status["runtimeStatus"] in {"Pending", "Running"}
    code, out, _ = jobs("instance", "list", "--json")
    assert [item["instanceId"] for item in json.loads(out)] == ["forever"]
    # Running: purging is a conflict.
    code, _, err = jobs("instance", "purge", "forever")
    assert code == 3, err
    code, out, err = jobs("instance", "terminate", "forever")
    assert code == 0, err
    assert status_of(cluster, capsys, "forever")["runtimeStatus"] == "Terminated"
    code, _, err = jobs("instance", "terminate", "forever")  # idempotent
    assert code == 0, err
    code, _, err = jobs("instance", "purge", "forever")
    assert code == 0, err
    code, _, err = jobs("instance", "status", "forever")
    assert code == 1
    code, out, _ = jobs("instance", "list", "--json")
    assert json.loads(out) == []


@pytest.mark.integration
def test_starting_a_running_id_again_is_a_conflict(
    jobs: Callable[..., tuple[int, str, str]],
) -> None:
    code, _, err = jobs("instance", "start", "EternalJob", "--id", "only-one")
    assert code == 0, err
    code, _, err = jobs("instance", "start", "EternalJob", "--id", "only-one")
    assert code == 3
    assert "'only-one'" in err
    # use-existing answers with the running one instead.
    code, out, err = jobs(
        "instance",
        "start",
        "EternalJob",
        "--id",
        "only-one",
        "--if-exists",
        "use-existing",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["id"] == "only-one"
    code, _, err = jobs("instance", "terminate", "only-one")
    assert code == 0, err


@pytest.mark.integration
def test_a_retried_start_with_the_same_request_id_is_not_a_conflict(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("instance", "start", "EternalJob", "--id", "retried", "--request-id", "req-1", "--json")
    first, second = jobs(*argv), jobs(*argv)
    assert first[0] == second[0] == 0, (first[2], second[2])
    assert json.loads(first[1])["id"] == json.loads(second[1])["id"] == "retried"
    # The same request id with another input is refused, not taken for a retry.
    code, _, _ = jobs(*argv, "--input", '{"other": true}')
    assert code == 1
    assert status_of(cluster, capsys, "retried")["generation"] is not None
    code, _, err = jobs("instance", "terminate", "retried")
    assert code == 0, err


@pytest.mark.integration
def test_replace_ends_the_old_incarnation_before_the_new_one_starts(
    jobs: Callable[..., tuple[int, str, str]],
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    data = json.dumps({"journal": str(journal)})
    code, _, err = jobs("instance", "start", "EternalJob", "--id", "swap", "--input", data)
    assert code == 0, err
    first = wait_running(cluster, "swap")
    code, _, err = jobs(
        "instance", "start", "EternalJob", "--id", "swap", "--input", data, "--if-exists", "replace"
    )
    assert code == 0, err
    second = wait_running(cluster, "swap")
    assert isinstance(first["generation"], int)
    assert isinstance(second["generation"], int)
    assert second["generation"] > first["generation"]
    code, _, err = jobs("instance", "terminate", "swap")
    assert code == 0, err
    events = read_journal(journal)
    assert [event for event, _, _ in events] == ["start", "end", "start", "end"]
    stamps = [stamp for _, _, stamp in events]
    assert stamps == sorted(stamps)  # the first ended before the second started


@pytest.mark.integration
def test_of_many_concurrent_starts_of_one_id_exactly_one_wins(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster
) -> None:
    def start(_: int) -> str:
        with FabricClient(cluster.client.endpoint, timeout=30.0) as client:
            try:
                client.start_instance("EternalJob", "contested")
            except ConflictError as exc:
                return exc.message
            return "started"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(start, range(16)))
    assert answers.count("started") == 1
    assert set(answers) - {"started"} == {"An instance with ID 'contested' already exists."}
    assert [i["instanceId"] for i in cluster.client.instances()] == ["contested"]
    code, _, err = jobs("instance", "terminate", "contested")
    assert code == 0, err


@pytest.mark.integration
def test_a_finished_id_starts_again_as_a_new_generation(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    generations = []
    for n in (1, 2):
        code, _, err = jobs("instance", "start", "EchoJob", "--id", "again", "--input", str(n))
        assert code == 0, err
        status = status_of(cluster, capsys, "again", "--wait", "--timeout", "30")
        assert (status["runtimeStatus"], status["output"]) == ("Completed", n)
        generations.append(status["generation"])
    assert isinstance(generations[0], int)
    assert isinstance(generations[1], int)
    assert generations[1] > generations[0]


@pytest.mark.integration
def test_an_unknown_or_ambiguous_function_is_an_error_naming_the_candidates(
    jobs: Callable[..., tuple[int, str, str]],
) -> None:
    code, _, err = jobs("instance", "start", "NoSuchJob")
    assert code == 1
    assert "NoSuchJob" in err
    code, _, err = jobs(
        "app", "deploy", str(MANIFESTS / "SingletonJobs"), "--name", "fabric:/Jobs2"
    )
    assert code == 0, err
    code, _, err = jobs("instance", "start", "EchoJob")
    assert code == 1
    assert "fabric:/Jobs" in err
    assert "fabric:/Jobs2" in err


@pytest.mark.integration
def test_approval_job_round_trip_through_the_command_line(
    jobs: Callable[..., tuple[int, str, str]], cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = jobs("instance", "start", "ApprovalJob", "--id", "order-7")
    assert code == 0, err
    # Raised right after the start, maybe while the instance is still Pending: it waits for it.
    code, out, err = jobs(
        "instance", "raise-event", "order-7", "approval", "--data", '{"approved": true}'
    )
    assert code == 0, err
    assert "raised approval for order-7" in out
    status = status_of(cluster, capsys, "order-7", "--wait", "--timeout", "30")
    assert (status["runtimeStatus"], status["output"]) == ("Completed", {"approved": True})
    code, _, err = jobs("instance", "raise-event", "order-7", "approval")
    assert code == 1
    assert "cannot process any raised events" in err
    code, _, err = jobs("instance", "raise-event", "nobody", "approval")
    assert code == 1
    assert "no instance with ID 'nobody'" in err


@pytest.mark.parametrize("text", ["NaN", "Infinity", "1e400", "{not json"])
def test_data_and_input_that_are_not_json_are_usage_errors(
    jobs: Callable[..., tuple[int, str, str]], text: str
) -> None:
    code, _, err = jobs("instance", "raise-event", "order-8", "approval", "--data", text)
    assert code == 2, err
    assert "not valid JSON" in err
    code, _, err = jobs("instance", "start", "EchoJob", "--id", "echo-8", "--input", text)
    assert code == 2, err
    assert "not valid JSON" in err
