from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent._ports import PortAllocator
from fabrichost.errors import ActivationError

if TYPE_CHECKING:
    from pathlib import Path

DEADLINE = 15.0  # generous: only reached when something is broken


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


def test_ports_are_never_given_twice_while_in_use(tmp_path: Path) -> None:
    base = _free_block(3)
    alloc = PortAllocator(base, base + 2, claims_dir=tmp_path)
    ports = {alloc.allocate() for _ in range(3)}
    assert ports == {base, base + 1, base + 2}
    with pytest.raises(ActivationError, match="no free port"):
        alloc.allocate()


def test_a_released_port_can_be_given_again(tmp_path: Path) -> None:
    base = _free_block(2)
    alloc = PortAllocator(base, base + 1, claims_dir=tmp_path)
    first = alloc.allocate()
    alloc.allocate()
    alloc.release(first)
    assert alloc.allocate() == first


def test_a_port_bound_by_another_program_is_skipped(tmp_path: Path) -> None:
    base = _free_block(2)
    with socket.socket() as other:
        other.bind(("127.0.0.1", base))
        other.listen()
        alloc = PortAllocator(base, base + 1, claims_dir=tmp_path)
        assert alloc.allocate() == base + 1


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="bad port range"):
        PortAllocator(10, 5)


def test_two_allocators_sharing_the_claims_never_give_the_same_port(tmp_path: Path) -> None:
    # Nothing is bound between the allocations: only the claims keep the two apart.
    base = _free_block(2)
    first = PortAllocator(base, base + 1, claims_dir=tmp_path)
    second = PortAllocator(base, base + 1, claims_dir=tmp_path)
    assert first.allocate() == base
    assert second.allocate() == base + 1
    with pytest.raises(ActivationError, match="no free port"):
        second.allocate()
    first.release(base)
    assert second.allocate() == base


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o444)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_port_claimed_by_another_process_is_free_again_once_that_process_is_killed(
    tmp_path: Path,
) -> None:
    base = _free_block(2)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / f"{base}.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"held\n"  # blocks until the claim is taken
            alloc = PortAllocator(base, base + 1, claims_dir=tmp_path)
            assert alloc.allocate() == base + 1
            holder.kill()  # an agent killed with its claims: the kernel drops them
            holder.wait(DEADLINE)
            assert alloc.allocate() == base
        finally:
            holder.kill()


def test_claims_fall_back_to_a_directory_of_this_user_when_the_shared_one_is_unusable(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "fabrichost-ports"
    planted.symlink_to(tmp_path)  # as if planted in /tmp by someone else: never followed
    base = _free_block(1)
    alloc = PortAllocator(base, base, claims_dir=planted)
    assert alloc.allocate() == base
    assert (tmp_path / f"fabrichost-ports-{os.getuid()}" / f"{base}.lock").exists()
    assert not (tmp_path / f"{base}.lock").exists()


def test_the_claims_directory_is_made_sticky_and_shared_by_every_user(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    base = _free_block(1)
    PortAllocator(base, base, claims_dir=claims).allocate()
    assert claims.stat().st_mode & 0o7777 == 0o1777  # as /tmp: anyone claims, nobody deletes
    assert (claims / f"{base}.lock").stat().st_mode & 0o777 == 0o444  # flock needs no write
