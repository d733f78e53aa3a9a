"""`fabrichost instance ...`: start, watch, terminate and purge singleton instances, and raise
external events for them.

Usage::

    fabrichost app deploy manifests/SingletonJobs --name fabric:/Jobs
    fabrichost instance start EchoJob --id echo-1 --input '{"n": 1}'
    fabrichost instance start EchoJob --id echo-2 --input @input.json
    fabrichost instance status echo-1 --wait --timeout 30
    fabrichost instance start EternalJob --id daemon --if-exists use-existing
    fabrichost instance terminate daemon && fabrichost instance purge daemon
    fabrichost instance start ApprovalJob --id order-7
    fabrichost instance raise-event order-7 approval --data '{"approved": true}'

Exit codes as everywhere: 0 ok, 1 error (no agent, unknown instance, ...), 2 usage (``--input``
that is not JSON, a bad event name), 3 conflict (the ID names an instance that is still running,
or purging one). Raising an event for a finished instance is an error (exit 1), as for an unknown
one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import click

from fabrichost.cli._group import cli
from fabrichost.cli._output import client_for, emit, field, json_option, state_dir_option
from fabrichost.client import IF_EXISTS_POLICIES, check_new_instance_id
from fabrichost.errors import TooLargeError
from fabrichost.protocol import EVENT_NAME_RULE, is_event_name
from fabrichost.wire import (
    INSTANCE_ID_RULE,
    MAX_INSTANCE_INPUT_BYTES,
    check_instance_input,
    parse_json_text,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: ``--input @FILE`` reads at most this much: pretty-printed JSON may shrink to fit, but not 16x.
_MAX_INPUT_FILE_BYTES: Final = 16 * 1024 * 1024


def _compact(value: object) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"))


def _json_of(name: str) -> Callable[[Any], str]:
    return lambda item: _compact(item.get(name))


INSTANCE_COLUMNS = [
    ("ID", field("instanceId")),
    ("Function", field("name")),
    ("Status", field("runtimeStatus")),
    ("Generation", field("generation")),
    ("Created", field("createdTime")),
    ("Updated", field("lastUpdatedTime")),
]
STATUS_COLUMNS = [*INSTANCE_COLUMNS, ("Output", _json_of("output")), ("Error", field("error"))]


def _parse_input(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """``--input``'s text decoded as JSON; absent is a null input, as ``--input null`` is."""
    if value is None:
        return None
    try:
        return parse_json_text(value)
    except ValueError as exc:
        shown = value if len(value) <= 80 else value[:77] + "..."  # it may be a file's text
        raise click.BadParameter(f"not valid JSON ({exc}): {shown!r}") from None


def _parse_start_input(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """``--input`` (JSON, or ``@FILE`` holding it) decoded, and refused before anything is sent
    if its process could not be given it: a command line cannot hold a large input, a file can.
    """
    if value is not None and value.startswith("@"):  # no JSON text starts with "@"
        value = _read_input_file(value[1:])
    parsed = _parse_input(ctx, param, value)
    try:
        check_instance_input(json.dumps(parsed))  # the text the agent stores and delivers
    except TooLargeError as exc:
        raise click.BadParameter(exc.message) from None
    return parsed


def _read_input_file(path: str) -> str:
    """The text of ``--input @FILE``; a file far larger than any input is not read whole."""
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_INPUT_FILE_BYTES + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_INPUT_FILE_BYTES:
        raise click.BadParameter(
            f"{path} is larger than {_MAX_INPUT_FILE_BYTES} bytes; an instance's input takes "
            f"at most {MAX_INSTANCE_INPUT_BYTES} bytes (docs/limits.md)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{path} is not UTF-8 text: {exc}") from None


def _new_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--id`` of a new instance, checked against the agent's rule before anything is sent."""
    if value is None:
        return None
    try:
        return check_new_instance_id(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _known_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An existing instance's ID: any text that can name one (not empty, ``.`` or ``..``)."""
    if value in ("", ".", ".."):
        raise click.BadParameter(f"instance id {value!r} is not valid: {INSTANCE_ID_RULE}")
    return value


def _event_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An external event's name, checked against the agent's rule before anything is sent."""
    if not is_event_name(value):
        raise click.BadParameter(f"{value!r} is not valid: {EVENT_NAME_RULE}")
    return value


@cli.group()
def instance() -> None:
    """Singleton instances: at most one running process per instance ID."""


@instance.command("start")
@click.argument("function")
@click.option(
    "--id",
    "instance_id",
    default=None,
    callback=_new_id,
    help=f"Instance ID (default: a random GUID): {INSTANCE_ID_RULE}.",
)
@click.option(
    "--input",
    "input_",
    metavar="JSON|@FILE",
    default=None,
    callback=_parse_start_input,
    help="The instance's input, any JSON value, or @FILE to read it from FILE (default: null; "
    "at most about 1 MB, see docs/limits.md).",
)
@click.option(
    "--if-exists",
    type=click.Choice(IF_EXISTS_POLICIES),
    default="fail",
    show_default=True,
    help="When the ID names a running instance: fail (exit 3), use the existing one, "
    "or replace it (terminated first; the two never overlap).",
)
@click.option(
    "--request-id",
    default=None,
    help="Idempotency key: retrying the same start with it returns the same instance.",
)
@state_dir_option
@json_option
def instance_start(
    function: str,
    instance_id: str | None,
    input_: object,
    if_exists: str,
    request_id: str | None,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """Start a singleton instance of service type FUNCTION (of a created application)."""
    with client_for(state_dir) as client:
        started = client.start_instance(
            function,
            instance_id,
            input_,
            if_exists=if_exists,
            request_id=request_id,
        )
    if as_json:
        emit(started, True)
    else:
        click.echo(f"started {started['id']} ({function}); status: {started['statusQueryGetUri']}")


@instance.command("status")
@click.argument("instance_id", metavar="ID", callback=_known_id)
@click.option("--wait", is_flag=True, help="Wait until the instance has finished (or --timeout).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=60.0,
    show_default=True,
    help="Seconds --wait waits at most; then the current status is shown.",
)
@state_dir_option
@json_option
def instance_status(
    instance_id: str, wait: bool, timeout: float, state_dir: str | None, as_json: bool
) -> None:
    """Show instance ID: its status, generation, output or error."""
    with client_for(state_dir) as client:
        status = client.instance_status(instance_id, wait=wait, timeout=timeout)
    emit(status, as_json, STATUS_COLUMNS)


@instance.command("list")
@state_dir_option
@json_option
def instance_list(state_dir: str | None, as_json: bool) -> None:
    """List every instance that has not been purged."""
    with client_for(state_dir) as client:
        emit(client.instances(), as_json, INSTANCE_COLUMNS)


@instance.command("terminate")
@click.argument("instance_id", metavar="ID", callback=_known_id)
@state_dir_option
def instance_terminate(instance_id: str, state_dir: str | None) -> None:
    """Stop instance ID; returns once its process is gone (a finished one is left as it is)."""
    with client_for(state_dir) as client:
        client.terminate_instance(instance_id)
    click.echo(f"terminated {instance_id}")


@instance.command("purge")
@click.argument("instance_id", metavar="ID", callback=_known_id)
@state_dir_option
def instance_purge(instance_id: str, state_dir: str | None) -> None:
    """Forget finished instance ID and free its ID (a running one is a conflict: exit 3)."""
    with client_for(state_dir) as client:
        client.purge_instance(instance_id)
    click.echo(f"purged {instance_id}")


@instance.command("raise-event")
@click.argument("instance_id", metavar="ID", callback=_known_id)
@click.argument("name", metavar="NAME", callback=_event_name)
@click.option(
    "--data",
    metavar="JSON",
    default=None,
    callback=_parse_input,
    help="The event's data, any JSON value (default: null).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0, max=3600.0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a Pending instance to be ready for events.",
)
@state_dir_option
def instance_raise_event(
    instance_id: str, name: str, data: object, timeout: float, state_dir: str | None
) -> None:
    """Raise external event NAME for instance ID (Durable Functions' raiseEvent).

    Returns once the instance's process has the event; its code gets it when it waits for
    NAME (an event raised before that is buffered). A finished instance refuses events.
    """
    with client_for(state_dir) as client:
        client.raise_event(instance_id, name, data, timeout=timeout)
    click.echo(f"raised {name} for {instance_id}")
