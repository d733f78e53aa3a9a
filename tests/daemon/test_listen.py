"""The agent's HTTP socket: connections it accepts send small writes at once (no Nagle).

A response goes out as two writes (headers, then body). With Nagle's algorithm on, the body
waits until the client acknowledges the headers, and clients delay that ACK by 40 ms: every
request took 40 ms longer than its work. asyncio disables Nagle only on sockets whose protocol
number says TCP, which accepted sockets inherit from the listening one.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from fabrichost.daemon import listen
from fabrichost.errors import FabricHostError


def test_connections_the_agent_accepts_have_nagle_off() -> None:
    async def accepted_nodelay() -> int:
        listener = listen(0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        try:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(seen, timeout=10)
            finally:
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted_nodelay()) != 0


def test_a_port_in_use_says_how_to_get_another() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(FabricHostError) as caught:
            listen(port).close()
    message = str(caught.value)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in message
    assert "--port 0" in message
    assert "fabrichost down" in message
