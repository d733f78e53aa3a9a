"""The agent <-> fork server messages, sans-IO: one JSON object per ``SOCK_SEQPACKET`` message.

A fork server (``fabrichost.runtime``'s ``serve_forks``, see ``docs/fork-server.md``) is a
pre-warmed interpreter that forks runtime hosts when the agent asks. The conversation:

* the server speaks first, once: :class:`ForkServerReady` (its pid, and how many bytes its
  environment and argument areas hold: a host's ``/proc/PID/environ`` and ``cmdline`` are
  rewritten in place, so a larger environment cannot be forked and is spawned instead);
* then, one at a time, the agent sends :class:`ForkRequest` with the descriptors the host gets
  (``SCM_RIGHTS``, in the order of ``ForkRequest.fds``) and the server answers :class:`Forked`
  or :class:`ForkFailed`.

The descriptors themselves travel beside the bytes (the IO layer's job); this module only turns
messages into bytes and back, refusing anything malformed with :class:`ProtocolError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from fabrichost.errors import ProtocolError

__all__ = (
    "MAX_FORK_MESSAGE",
    "ForkFailed",
    "ForkRequest",
    "ForkServerReady",
    "Forked",
    "decode_fork_message",
    "encode_fork_message",
)

#: The largest message either side sends (an environment of a few hundred KiB fits).
MAX_FORK_MESSAGE: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ForkServerReady:
    """The server has imported what hosts need and waits for requests."""

    pid: int
    env_space: int  # bytes of the environment area a host's environment is written into
    argv_space: int  # bytes of the argument area its command line is written into


@dataclass(frozen=True, slots=True)
class ForkRequest:
    """Fork one runtime host that runs ``python -m <module> <args>`` in ``cwd`` with ``env``.

    ``fds`` are the descriptor numbers the host has them at (the n-th descriptor sent goes to
    ``fds[n]``); 0 is always ``/dev/null``, and 1 and 2 are ``/dev/null`` unless sent.
    ``argv0`` is the interpreter as the launcher named it (``sys.orig_argv[0]``).
    ``shell_pwd``: the program was a ``/bin/sh`` launcher, which sets ``PWD`` as dash does.
    """

    module: str
    args: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    fds: tuple[int, ...]
    argv0: str
    shell_pwd: bool = False


@dataclass(frozen=True, slots=True)
class Forked:
    """The host runs: ``pid`` is a child of the agent now (see ``docs/fork-server.md``)."""

    pid: int


@dataclass(frozen=True, slots=True)
class ForkFailed:
    """The host could not be made ready (``error`` says why); ``pid`` is its process, if one
    was made: it has exited, and its parent (the agent) must reap it."""

    error: str
    pid: int | None = None


ForkMessage = ForkServerReady | ForkRequest | Forked | ForkFailed


def encode_fork_message(message: ForkMessage) -> bytes:
    """The bytes of one message (one ``SOCK_SEQPACKET`` send)."""
    body: dict[str, object] = {"type": type(message).__name__}
    for name in message.__slots__:
        value = getattr(message, name)
        body[name] = list(value) if isinstance(value, tuple) else value
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_FORK_MESSAGE:
        raise ProtocolError(f"fork message of {len(data)} bytes is over {MAX_FORK_MESSAGE}")
    return data


def _field(body: dict[str, object], name: str, kind: type) -> object:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"fork message field {name!r} must be {kind.__name__}: {value!r}")
    return value


def _int(body: dict[str, object], name: str) -> int:
    value = _field(body, name, int)
    assert isinstance(value, int)
    return value


def _str(body: dict[str, object], name: str) -> str:
    value = _field(body, name, str)
    assert isinstance(value, str)
    return value


def _strings(body: dict[str, object], name: str) -> tuple[str, ...]:
    value = _field(body, name, list)
    assert isinstance(value, list)
    if not all(isinstance(item, str) for item in value):
        raise ProtocolError(f"fork message field {name!r} must hold strings only")
    return tuple(value)


def _request(body: dict[str, object]) -> ForkRequest:
    env = _field(body, "env", dict)
    assert isinstance(env, dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ProtocolError("fork message field 'env' must map strings to strings")
    fds = _field(body, "fds", list)
    assert isinstance(fds, list)
    if not all(isinstance(fd, int) and not isinstance(fd, bool) and fd >= 1 for fd in fds):
        raise ProtocolError(f"fork message field 'fds' must hold descriptor numbers: {fds!r}")
    return ForkRequest(
        module=_str(body, "module"),
        args=_strings(body, "args"),
        cwd=_str(body, "cwd"),
        env=dict(env),
        fds=tuple(fds),
        argv0=_str(body, "argv0"),
        shell_pwd=body.get("shell_pwd") is True,
    )


def decode_fork_message(data: bytes) -> ForkMessage:
    """The message in ``data`` (one ``SOCK_SEQPACKET`` receive).

    Raises:
        ProtocolError: not JSON, an unknown type, a missing or mistyped field.
    """
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"fork message is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("fork message must be a JSON object")
    kind = body.get("type")
    if kind == "ForkRequest":
        return _request(body)
    if kind == "Forked":
        return Forked(_int(body, "pid"))
    if kind == "ForkFailed":
        pid = body.get("pid")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
            raise ProtocolError(f"fork message field 'pid' must be int or null: {pid!r}")
        return ForkFailed(_str(body, "error"), pid)
    if kind == "ForkServerReady":
        return ForkServerReady(_int(body, "pid"), _int(body, "env_space"), _int(body, "argv_space"))
    raise ProtocolError(f"unknown fork message type {kind!r}")
