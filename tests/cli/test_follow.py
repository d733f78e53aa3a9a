"""The console follower on plain files: labels, whole lines only, tails, selection."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import TYPE_CHECKING

from fabrichost.cli._follow import ConsoleFollower, Selection, origin_of, tail_lines

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


class Names:
    def application(self, node: str, folder: str) -> str | None:
        return {"App_1": "fabric:/App"}.get(folder)

    def code_package(self, node: str, folder: str, prefix: str) -> tuple[str, str] | None:
        return ("Pkg_A", "Code") if prefix == "Code_Pkg_A" else None


def _log_dir(root: Path, node: str = "_Node_0", folder: str = "App_1") -> Path:
    d = root / node / folder / "log"
    d.mkdir(parents=True)
    return d


def test_origin_reads_sf_file_names_and_the_agents_names(tmp_path: Path) -> None:
    d = _log_dir(tmp_path)
    origin = origin_of(d / "Code_Pkg_A_S_3.err", Names())
    assert origin is not None
    assert origin.label == "_Node_0 fabric:/App Pkg_A/Code (setup)"
    assert (origin.stream, origin.code_package_name) == ("err", "Code")
    # Unknown to the agent: the raw names stay.
    unknown = origin_of(_log_dir(tmp_path, folder="Old_2") / "X_Y_M_0.out", Names())
    assert unknown is not None
    assert unknown.label == "_Node_0 Old_2 X_Y"
    assert origin_of(d / "notes.txt", Names()) is None


def test_a_line_is_printed_once_its_newline_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _log_dir(tmp_path) / "Code_Pkg_A_M_0.out"
    path.write_bytes(b"one\ntw")
    follower = ConsoleFollower(tmp_path, labels=Names())
    follower.print_new()
    assert capsys.readouterr().out == "_Node_0 fabric:/App Pkg_A/Code | one\n"
    with path.open("ab") as f:
        f.write(b"o\nthr")
    follower.print_new()
    assert capsys.readouterr().out == "_Node_0 fabric:/App Pkg_A/Code | two\n"
    follower.close()  # the unfinished last line is not lost
    assert capsys.readouterr().out == "_Node_0 fabric:/App Pkg_A/Code | thr\n"


def test_tails_then_follow_from_the_last_whole_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _log_dir(tmp_path)
    (d / "Code_Pkg_A_M_0.out").write_bytes(b"".join(b"line %d\n" % i for i in range(10)) + b"hal")
    (d / "Other_Pkg_B_M_0.out").write_bytes(b"not wanted\n")
    follower = ConsoleFollower(tmp_path, labels=Names(), selection=Selection(code_package="Code"))
    assert follower.print_tails(2, then_follow=True) == 1
    assert capsys.readouterr().out.splitlines() == [
        "_Node_0 fabric:/App Pkg_A/Code | line 8",
        "_Node_0 fabric:/App Pkg_A/Code | line 9",
    ]
    with (d / "Code_Pkg_A_M_0.out").open("ab") as f:
        f.write(b"f\n")
    follower.print_new()
    assert capsys.readouterr().out == "_Node_0 fabric:/App Pkg_A/Code | half\n"
    follower.close()


def test_tail_of_a_big_file_reads_only_its_end(tmp_path: Path) -> None:
    path = tmp_path / "big.out"
    path.write_bytes(b"x" * 1_000_000 + b"\nlast\n")
    lines, end = tail_lines(path, 3, whole_lines_only=False)
    assert lines[-1] == "last"
    assert end == path.stat().st_size
    assert all(len(line) <= 256 * 1024 for line in lines)


def test_a_deleted_file_is_read_to_its_end_then_let_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _log_dir(tmp_path) / "Code_Pkg_A_M_0.out"
    path.write_bytes(b"first\n")
    follower = ConsoleFollower(tmp_path, labels=Names())
    follower.print_new()
    open_fds = len(os.listdir("/proc/self/fd"))
    with path.open("ab") as f:
        f.write(b"last words\n")
    path.unlink()  # rotated away (or its cluster's folder deleted)
    follower.print_new()
    assert capsys.readouterr().out.splitlines() == [
        "_Node_0 fabric:/App Pkg_A/Code | first",
        "_Node_0 fabric:/App Pkg_A/Code | last words",
    ]
    assert len(os.listdir("/proc/self/fd")) == open_fds - 1  # its descriptor is closed
    follower.close()


def test_following_starts_before_any_folder_and_reads_the_last_lines_at_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "_App"  # no application deployed yet: the folder does not exist
    agent = subprocess.Popen(  # stands in for the agent: exits when its stdin closes
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    follower = ConsoleFollower(root, labels=Names())

    async def scenario() -> None:
        following = asyncio.create_task(follower.follow(until_exit_of=agent.pid))
        await asyncio.sleep(0)  # the follower runs to its first wait: the folder is made
        assert root.is_dir()
        log = _log_dir(root)
        (log / "Code_Pkg_A_M_0.out").write_bytes(b"said just before the end\n")
        assert agent.stdin is not None
        agent.stdin.close()  # the agent exits at once
        await asyncio.wait_for(following, timeout=60)

    try:
        asyncio.run(scenario())
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait()
        follower.close()
    assert "_Node_0 fabric:/App Pkg_A/Code | said just before the end" in capsys.readouterr().out
