"""Console redirection: SF file names, size rotation, retention, and draining a pipe at EOF."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent._console import (
    ConsoleRedirector,
    RotatingLog,
    console_prefix,
    list_log_files,
    stderr_tail,
)

if TYPE_CHECKING:
    from pathlib import Path


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_prefix_is_code_package_service_package_and_s_or_m() -> None:
    assert console_prefix("Code", "SvcPkg", setup=True) == "Code_SvcPkg_S"
    assert console_prefix("Code", "SvcPkg", setup=False) == "Code_SvcPkg_M"


def test_no_file_is_created_until_something_is_written(tmp_path: Path) -> None:
    sink = RotatingLog(tmp_path / "log", "C_P_M", ".out")
    sink.close()
    assert not (tmp_path / "log").exists()


def test_first_file_is_number_0_in_a_created_folder(tmp_path: Path) -> None:
    sink = RotatingLog(tmp_path / "log", "C_P_M", ".err")
    sink.write(b"boom\n")
    sink.close()
    assert (tmp_path / "log" / "C_P_M_0.err").read_bytes() == b"boom\n"


def test_a_full_file_is_followed_by_the_next_and_only_retention_files_stay(tmp_path: Path) -> None:
    sink = RotatingLog(tmp_path, "C_P_M", ".out", max_bytes=4096, retention=2)
    data = bytes(range(256)) * 40  # 10240 bytes: files of 4096, 4096, 2048
    sink.write(data[:1000])
    sink.write(data[1000:])
    sink.close()
    assert names(tmp_path) == ["C_P_M_1.out", "C_P_M_2.out"]
    assert (tmp_path / "C_P_M_1.out").read_bytes() == data[4096:8192]
    assert (tmp_path / "C_P_M_2.out").read_bytes() == data[8192:]


def test_every_incarnation_starts_a_new_file_and_the_oldest_goes(tmp_path: Path) -> None:
    for run in range(4):
        sink = RotatingLog(tmp_path, "C_P_M", ".out", max_bytes=1024, retention=3)
        sink.write(f"run {run}\n".encode())
        sink.close()
    assert names(tmp_path) == ["C_P_M_1.out", "C_P_M_2.out", "C_P_M_3.out"]
    assert (tmp_path / "C_P_M_3.out").read_text() == "run 3\n"


def test_retention_of_one_keeps_only_the_current_file(tmp_path: Path) -> None:
    sink = RotatingLog(tmp_path, "C_P_S", ".out", max_bytes=3, retention=1)
    sink.write(b"abcdefgh")
    sink.close()
    assert names(tmp_path) == ["C_P_S_2.out"]
    assert (tmp_path / "C_P_S_2.out").read_bytes() == b"gh"


def test_other_files_in_the_log_folder_are_left_alone(tmp_path: Path) -> None:
    for name in ("C_P_M_0.err", "C_P_S_0.out", "C_P_MX_0.out", "other.txt", "C_P_M_x.out"):
        (tmp_path / name).write_text("keep")
    sink = RotatingLog(tmp_path, "C_P_M", ".out", max_bytes=2, retention=1)
    sink.write(b"123456")
    sink.close()
    assert names(tmp_path) == sorted(
        ["C_P_M_0.err", "C_P_S_0.out", "C_P_MX_0.out", "other.txt", "C_P_M_x.out", "C_P_M_2.out"]
    )


def test_an_unwritable_log_folder_drops_output_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "log").write_text("a file where the folder should be")
    sink = RotatingLog(tmp_path / "log", "C_P_M", ".out")
    sink.write(b"lost")
    sink.write(b"lost again")
    sink.close()
    assert "output dropped" in caplog.text


def test_invalid_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="suffix"):
        RotatingLog(tmp_path, "p", ".log")
    with pytest.raises(ValueError, match="at least 1"):
        RotatingLog(tmp_path, "p", ".out", retention=0)


def test_log_files_are_listed_newest_last(tmp_path: Path) -> None:
    order = ["Code_Pkg_S_0.out", "Code_Pkg_S_0.err", "Code_Pkg_M_0.out", "Code_Pkg_M_1.out"]
    for i, name in enumerate(order):
        path = tmp_path / name
        path.write_text(name)
        os.utime(path, ns=(1_000_000_000 * (i + 1), 1_000_000_000 * (i + 1)))
    (tmp_path / "Other_Pkg_M_0.out").write_text("not ours")
    files = list_log_files(tmp_path, "Code", "Pkg")
    assert [f.path.name for f in files] == order
    assert [(f.setup, f.stream, f.number) for f in files] == [
        (True, "out", 0),
        (True, "err", 0),
        (False, "out", 0),
        (False, "out", 1),
    ]
    assert files[0].size == len(order[0])


def test_listing_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert list_log_files(tmp_path / "nope", "Code", "Pkg") == []


@pytest.mark.anyio
async def test_redirector_copies_a_pipe_to_the_file_and_drains_at_eof(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    sink = RotatingLog(tmp_path, "C_P_M", ".out", max_bytes=10**6)
    redirector = ConsoleRedirector(read_fd, sink)
    payload = os.urandom(200_000)  # more than one read chunk and more than the pipe buffer
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _write_all_and_close, write_fd, payload)
    async with asyncio.timeout(10):
        await redirector.wait_closed()
    assert redirector.closed
    assert (tmp_path / "C_P_M_0.out").read_bytes() == payload


def _write_all_and_close(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


@pytest.mark.anyio
async def test_close_keeps_what_is_buffered_even_if_a_writer_holds_the_pipe(
    tmp_path: Path,
) -> None:
    read_fd, write_fd = os.pipe()
    try:
        redirector = ConsoleRedirector(read_fd, RotatingLog(tmp_path, "C_P_M", ".err"))
        os.write(write_fd, b"last words\n")
        redirector.close()
        redirector.close()  # idempotent
        assert redirector.closed
        assert (tmp_path / "C_P_M_0.err").read_bytes() == b"last words\n"
    finally:
        os.close(write_fd)


def test_stderr_tail_is_the_last_non_blank_lines_of_the_newest_err_file(tmp_path: Path) -> None:
    (tmp_path / "Code_Pkg_M_1.err").write_text("old incarnation\n")
    (tmp_path / "Code_Pkg_M_2.err").write_text("a\nb\n\n  \nc\nd\ne\nf\ng\n\n")
    (tmp_path / "Code_Pkg_M_2.out").write_text("stdout is not quoted\n")
    (tmp_path / "Code_Pkg_S_3.err").write_text("the setup's own file\n")
    assert stderr_tail(tmp_path, "Code_Pkg_M") == ["b", "c", "d", "e", "f", "g"]
    assert stderr_tail(tmp_path, "Code_Pkg_M", lines=2) == ["f", "g"]


def test_stderr_tail_skips_an_empty_newest_file(tmp_path: Path) -> None:
    (tmp_path / "Code_Pkg_M_1.err").write_text("Traceback...\nValueError: boom\n")
    (tmp_path / "Code_Pkg_M_2.err").write_text("\n")
    assert stderr_tail(tmp_path, "Code_Pkg_M") == ["Traceback...", "ValueError: boom"]


def test_stderr_tail_is_bounded_for_a_flood(tmp_path: Path) -> None:
    (tmp_path / "Code_Pkg_M_1.err").write_text("x" * 100_000 + "\n" + "y" * 5_000 + "\nlast\n")
    tail = stderr_tail(tmp_path, "Code_Pkg_M", width=80)
    assert tail == ["y" * 79 + "…", "last"]  # the cut first line read (all x) is dropped


def test_stderr_tail_of_nothing_is_empty(tmp_path: Path) -> None:
    assert stderr_tail(tmp_path / "missing", "Code_Pkg_M") == []
