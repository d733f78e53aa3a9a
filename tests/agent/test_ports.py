from __future__ import annotations

import socket

import pytest

from fabrichost.agent._ports import PortAllocator
from fabrichost.errors import ActivationError


def _free_block(size: int) -> int:
    """A base port whose next ``size`` ports are currently free (best effort, real binds)."""
    for base in range(40000, 60000, 97):
        socks = []
        try:
            for p in range(base, base + size):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no free block of ports")


def test_ports_are_never_given_twice_while_in_use() -> None:
    base = _free_block(3)
    alloc = PortAllocator(base, base + 2)
    ports = {alloc.allocate() for _ in range(3)}
    assert ports == {base, base + 1, base + 2}
    with pytest.raises(ActivationError, match="no free port"):
        alloc.allocate()


def test_a_released_port_can_be_given_again() -> None:
    base = _free_block(2)
    alloc = PortAllocator(base, base + 1)
    first = alloc.allocate()
    alloc.allocate()
    alloc.release(first)
    assert alloc.allocate() == first


def test_a_port_bound_by_another_program_is_skipped() -> None:
    base = _free_block(2)
    with socket.socket() as other:
        other.bind(("127.0.0.1", base))
        other.listen()
        alloc = PortAllocator(base, base + 1)
        assert alloc.allocate() == base + 1


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="bad port range"):
        PortAllocator(10, 5)
