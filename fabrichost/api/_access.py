"""Who the API serves: the agent's own user, on purpose others, and no web page.

The agent runs code on request, as its own user, so a request is served only when

- the connection comes from a socket owned by the agent's user, by root (who can read the
  token and trace the agent anyway) or by a user allowed on purpose (``--allow-user``), as the
  kernel tells (``_peer.tcp_peer_uid``); sfctl and curl run by that user need nothing more; or
- it carries the agent's token (``Authorization: Bearer <token>``, the ``token`` file of the
  state directory, readable by the agent's user only): the way to let in a client the kernel
  cannot vouch for.

A browser page is refused even then unless it is the agent's own origin: a page of another
site, or of another port of this machine, must not drive the agent through its user's browser.
``docs/security.md`` says all of this for users.
"""

from __future__ import annotations

import hmac
import pwd
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

from fabrichost.api._peer import Address, tcp_peer_uid

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Receive, Scope, Send

ACCESS_DENIED = "FABRIC_E_ACCESS_DENIED"


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"Error": {"Code": code, "Message": message}}, status_code=status)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The users served (``uids``), the token that lets anyone in (None: no token), and how a
    connection's user is found (``peer_uid``; the kernel's answer unless a test injects one)."""

    uids: frozenset[int]
    token: str | None = None
    peer_uid: Callable[[Address, Address], int | None] = field(default=tcp_peer_uid)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request of ``scope`` is refused, or None when it is served.

        A token that is not this agent's (say, an old one: a new one is made on every start)
        does not refuse a user the kernel vouches for; it is only no help.
        """
        presented = _bearer_token(scope)
        if presented and self.token is not None and hmac.compare_digest(presented, self.token):
            return None
        client, server = scope.get("client"), scope.get("server")
        uid = self.peer_uid(tuple(client), tuple(server)) if client and server else None
        if uid is not None and uid in self.uids:
            return None
        if presented is not None:
            return "the token sent (Authorization: Bearer) is not this agent's token"
        if uid is None:
            return (
                "this agent cannot tell which user is connecting; send the agent's token "
                "(the state directory's `token` file) as `Authorization: Bearer <token>`"
            )
        served = ", ".join(user_name(u) for u in sorted(self.uids))
        return (
            f"this agent serves only {served}, not {user_name(uid)}: its owner can allow a "
            "user with `fabrichost up --allow-user NAME`, or give the agent's token "
            "(sent as `Authorization: Bearer <token>`)"
        )


def user_name(uid: int) -> str:
    """``alice (uid 1000)``, or ``uid 1000`` for a uid without a name."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def uid_of(user: str) -> int:
    """The uid of ``user``, a user name or a number; ValueError names an unknown user."""
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ValueError(f"no user named {user!r} on this machine") from None


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None  # no token; another scheme (Basic …) is not this agent's and is ignored


class AccessCheck:
    """ASGI middleware: answer 403 (SF's error JSON) to a request :class:`AccessPolicy`
    refuses, before anything reads it. Only plain HTTP is served: any other kind of
    connection (a WebSocket upgrade) is closed."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reason = self.policy.refusal(scope)
            if reason is not None:
                await error_response(403, ACCESS_DENIED, reason)(scope, receive, send)
                return
        elif scope["type"] != "lifespan":
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


def same_origin(origin: str, scope: Scope) -> bool:
    """True if ``origin`` is the agent's own: ``http://127.0.0.1:<the port it serves on>``.

    Not ``localhost`` nor ``[::1]``: the agent listens on 127.0.0.1 only, and a page served by
    whatever holds ``[::1]:<port>`` (where a browser may send ``localhost``) is not the agent's.
    """
    try:
        parts = urlsplit(origin)
        port = parts.port or (80 if parts.scheme == "http" else None)
    except ValueError:
        return False
    server = scope.get("server")
    own_port = server[1] if server else None
    return (
        parts.scheme == "http"
        and parts.hostname == "127.0.0.1"
        and port is not None
        and port == own_port
        and parts.path in ("", "/")
    )


class OriginCheck:
    """Refuse browser requests from other origins: a page must not drive a local agent, not
    even one served by another local server (another port of localhost is another origin).
    Requests without ``Origin`` (command lines, sfctl) and from the agent's own origin pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            raw = headers.get(b"origin")
            origin = raw.decode("latin-1") if raw is not None else ""
            if origin and not same_origin(origin, scope):
                await error_response(
                    403, ACCESS_DENIED, f"requests from origin {origin} are refused"
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)
