"""Who is at the other end of a loopback TCP connection: the owner (uid) of the client's socket.

Strategy: both ends of a loopback connection live in this machine's kernel, so the client's
socket can be looked up by its four-tuple and its owner read. The lookup is one exact query of
the kernel's socket diagnostics (``NETLINK_SOCK_DIAG``, what ``ss -e`` uses): one round trip,
the same cost however many sockets the machine has (a scan of ``/proc/net/tcp`` grows with
them). Building the query and reading the answer are pure functions (``diag_request``,
``owner_in_reply``); ``tcp_peer_uid`` does the IO.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Final

# From <linux/netlink.h>, <linux/sock_diag.h> and <linux/inet_diag.h>.
_NETLINK_SOCK_DIAG: Final = 4
_SOCK_DIAG_BY_FAMILY: Final = 20
_NLM_F_REQUEST: Final = 0x1
_NLMSG_ERROR: Final = 2
_NO_COOKIE: Final = 0xFFFFFFFF
# The states of a client socket still held open by its owner: connected, or shut down for
# writing (FIN_WAIT1/2) or read to its end (CLOSE_WAIT). A socket its owner has closed is an
# orphan, or a TIME_WAIT leftover reported in FIN_WAIT2 with uid 0 and inode 0; a LISTEN
# socket is what the kernel falls back to when no connection matches. None of them tells
# who sent a request.
_OWNED_STATES: Final = frozenset({1, 4, 5, 8})  # ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT
_SOCKID_ADDRESSES: Final = 36  # ports and addresses: the part of inet_diag_sockid asked about
_ALL_STATES: Final = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# inet_diag_req_v2: family, protocol, extensions, pad, states, then inet_diag_sockid:
# sport and dport (big-endian), src[4] and dst[4] (network order), interface, cookie[2].
_REQUEST = struct.Struct("=BBBxIHH16s16sIII")
# inet_diag_msg: family, state, timer, retrans, inet_diag_sockid (48 bytes), expires,
# rqueue, wqueue, uid, inode.
_REPLY = struct.Struct("=BBBB48sIIIII")

Address = tuple[str, int]


def diag_request(local: Address, remote: Address, sequence: int = 1) -> bytes:
    """The netlink message asking for the TCP socket bound to ``local`` and connected to
    ``remote`` (both IPv4 or both IPv6)."""
    local_ip, remote_ip = ipaddress.ip_address(local[0]), ipaddress.ip_address(remote[0])
    if local_ip.version != remote_ip.version:
        raise ValueError(f"mixed address families: {local[0]} and {remote[0]}")
    family = socket.AF_INET if local_ip.version == 4 else socket.AF_INET6
    body = _REQUEST.pack(
        family,
        socket.IPPROTO_TCP,
        0,
        _ALL_STATES,
        socket.htons(local[1]),  # ports are big-endian in the query
        socket.htons(remote[1]),
        local_ip.packed.ljust(16, b"\0"),
        remote_ip.packed.ljust(16, b"\0"),
        0,
        _NO_COOKIE,
        _NO_COOKIE,
    )
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, sequence, 0
    )
    return header + body


def owner_in_reply(reply: bytes, request: bytes) -> int | None:
    """The uid in the kernel's answer to ``request`` (:func:`diag_request`), or None unless
    the answer is the very socket asked about, still open in its owner's hands."""
    if len(reply) < _NLMSGHDR.size:
        return None
    length, kind, _flags, _sequence, _port = _NLMSGHDR.unpack_from(reply)
    if kind == _NLMSG_ERROR or kind != _SOCK_DIAG_BY_FAMILY:
        return None  # e.g. ENOENT: the socket is gone (the client hung up)
    if length < _NLMSGHDR.size + _REPLY.size or len(reply) < length:
        return None
    _family, state, _timer, _retrans, sockid, *_queues, uid, inode = _REPLY.unpack_from(
        reply, _NLMSGHDR.size
    )
    asked = request[_NLMSGHDR.size + 8 : _NLMSGHDR.size + 8 + _SOCKID_ADDRESSES]
    if sockid[:_SOCKID_ADDRESSES] != asked or state not in _OWNED_STATES or inode == 0:
        return None
    return int(uid)


def tcp_peer_uid(client: Address, server: Address) -> int | None:
    """The uid owning the socket at ``client`` connected to ``server`` (a connection this
    process accepted), or None if the kernel knows no such socket or cannot be asked."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(2.0)
            request = diag_request(client, server)
            diag.send(request)
            return owner_in_reply(diag.recv(8192), request)
    except (OSError, ValueError):
        return None
