"""Console redirection: a child's stdout and stderr into rotated files in the app's log folder.

Service Fabric's ``<ConsoleRedirection FileRetentionCount="2" FileMaxSizeInKb="20480"/>`` writes
each entry point's output to ``<CodePackageName>_<ServicePackageName>_<S|M>_<n>.out`` / ``.err``
in the application's ``log`` folder (S = SetupEntryPoint, M = EntryPoint). Every process
incarnation starts a new file, a file that reaches the size limit is followed by the next one, and
at most FileRetentionCount files per name and stream are kept, the oldest deleted first.

One deliberate difference: SF reuses the deleted oldest file's number; here ``n`` only grows, so
"newest" is decided by the number and not by a coarse file timestamp.

Usage, on the event loop that runs the child::

    read_fd, write_fd = os.pipe()
    log = RotatingLog(log_dir, console_prefix("Code", "SvcPkg", setup=False), ".out",
                      max_bytes=20480 * 1024, retention=2)
    redirector = ConsoleRedirector(read_fd, log)   # owns read_fd from now on
    ... spawn the child with stdout=write_fd, then os.close(write_fd) ...
    await redirector.wait_closed()                  # EOF drained, file closed

No thread per child: the pipe's read end is non-blocking and registered with ``loop.add_reader``.
File writes are plain ``os.write`` calls on the loop thread; they land in the page cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = (
    "ConsoleRedirector",
    "LogFile",
    "RotatingLog",
    "console_prefix",
    "list_log_files",
    "open_console",
    "stderr_tail",
)

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
_TAIL_BYTES = 16 * 1024  # how much of a stderr file an error message reads, from its end
_SUFFIXES = (".out", ".err")


def console_prefix(code_package_name: str, service_package_name: str, *, setup: bool) -> str:
    """SF's file name prefix: ``<CodePackageName>_<ServicePackageName>_<S|M>``."""
    return f"{code_package_name}_{service_package_name}_{'S' if setup else 'M'}"


def _numbered(directory: Path, prefix: str, suffix: str) -> list[tuple[int, Path]]:
    """The existing ``<prefix>_<n><suffix>`` files, sorted by ``n``."""
    pattern = re.compile(re.escape(prefix) + r"_(\d+)" + re.escape(suffix))
    found: list[tuple[int, Path]] = []
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except OSError:  # missing, or not a folder: nothing of ours there
        return found
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is not None:
            found.append((int(match.group(1)), directory / entry.name))
    found.sort()
    return found


class RotatingLog:
    """A byte sink writing to ``<prefix>_<n><suffix>`` files with SF's size and count limits.

    The first file is created lazily, at the first write, so a silent process leaves older logs
    in place. Errors opening or writing a file are logged and the data dropped: a full disk must
    not stop the child (its pipe keeps being drained).

    Args:
        directory: the application's log folder; created if missing.
        prefix: see :func:`console_prefix`.
        suffix: ``".out"`` or ``".err"``.
        max_bytes: size at which the next file is started (SF FileMaxSizeInKb x 1024,
            default 20480 KiB).
        retention: files kept per prefix and suffix, counting the current one (SF
            FileRetentionCount, default 2, at least 1).
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        suffix: str,
        *,
        max_bytes: int = 20480 * 1024,
        retention: int = 2,
    ) -> None:
        if suffix not in _SUFFIXES:
            raise ValueError(f"suffix must be one of {_SUFFIXES}, not {suffix!r}")
        if max_bytes < 1 or retention < 1:
            raise ValueError("max_bytes and retention must be at least 1")
        self.directory = directory
        self.prefix = prefix
        self.suffix = suffix
        self.max_bytes = max_bytes
        self.retention = retention
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0
        self._broken = False

    def write(self, data: bytes) -> None:
        """Append ``data``, starting new files whenever the current one reaches ``max_bytes``."""
        view = memoryview(data)
        while view and not self._broken:
            if self._fd is None or self._size >= self.max_bytes:
                self._open_next()
                continue
            chunk = view[: self.max_bytes - self._size]
            try:
                written = os.write(self._fd, chunk)
            except OSError as exc:
                log.warning("console output to %s dropped: %s", self.path, exc)
                self._broken = True
                return
            self._size += written
            view = view[written:]

    def _open_next(self) -> None:
        self.close()
        existing = _numbered(self.directory, self.prefix, self.suffix)
        number = existing[-1][0] + 1 if existing else 0
        # Keep retention - 1 old files, so with the new one there are `retention`.
        for _, old in existing[: max(0, len(existing) - (self.retention - 1))]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        path = self.directory / f"{self.prefix}_{number}{self.suffix}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            log.warning("cannot create console file %s, output dropped: %s", path, exc)
            self._broken = True
            return
        self.path = path
        self._size = 0

    def close(self) -> None:
        """Close the current file (idempotent); the next write starts a new one."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class ConsoleRedirector:
    """Copies everything readable from a pipe into a :class:`RotatingLog` until EOF.

    Must be created on the running event loop. It owns ``fd`` (made non-blocking) and closes it,
    and closes the log, when EOF is read or :meth:`close` is called.

    Args:
        fd: the read end of the child's stdout or stderr pipe.
        sink: where the bytes go.
    """

    def __init__(self, fd: int, sink: RotatingLog) -> None:
        self._fd = fd
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_readable)

    @property
    def closed(self) -> bool:
        """True once EOF was drained (or :meth:`close` was called) and every fd is closed."""
        return self._closed.done()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("reading console pipe failed: %s", exc)
            self._finish()
            return
        if data:
            self._sink.write(data)
        else:
            self._finish()

    def _finish(self) -> None:
        if self._closed.done():
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._sink.close()
        self._closed.set_result(None)

    def close(self) -> None:
        """Copy whatever is already buffered in the pipe, then stop and close (idempotent).

        For when a writer we cannot kill (an escaped grandchild) keeps the pipe open.
        """
        if self._closed.done():
            return
        while True:
            try:
                data = os.read(self._fd, _READ_CHUNK)
            except OSError:
                break
            if not data:
                break
            self._sink.write(data)
        self._finish()

    async def wait_closed(self) -> None:
        """Wait until EOF was drained and everything closed.

        No time limit: wrap it in ``asyncio.timeout`` and call :meth:`close` on timeout.
        Cancellation leaves the redirector running.
        """
        await asyncio.shield(self._closed)


def open_console(
    log_dir: Path, prefix: str, *, max_bytes: int, retention: int
) -> tuple[int, int, list[ConsoleRedirector]]:
    """Pipes for a child's stdout and stderr, each drained into its own rotated files.

    Must run on the event loop. Returns the stdout and stderr write ends, for the child, and the
    two redirectors. The caller closes both write ends right after spawning (and, if the spawn
    failed, closes the redirectors too).
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    redirectors = [
        ConsoleRedirector(
            fd, RotatingLog(log_dir, prefix, suffix, max_bytes=max_bytes, retention=retention)
        )
        for fd, suffix in ((out_r, ".out"), (err_r, ".err"))
    ]
    return out_w, err_w, redirectors


@dataclass(frozen=True, slots=True)
class LogFile:
    """One console file of a code package, as listed by :func:`list_log_files`."""

    path: Path
    setup: bool  # True for the SetupEntryPoint (S), False for the EntryPoint (M)
    stream: str  # "out" or "err"
    number: int
    size: int
    mtime_ns: int


def list_log_files(
    log_dir: Path, code_package_name: str, service_package_name: str
) -> list[LogFile]:
    """A code package's console files in ``log_dir``, newest last (for ``fabrichost logs``).

    Ordered by modification time; files of one entry point and stream with equal times are
    ordered by their number.
    """
    files: list[LogFile] = []
    for setup in (True, False):
        prefix = console_prefix(code_package_name, service_package_name, setup=setup)
        for suffix in _SUFFIXES:
            for number, path in _numbered(log_dir, prefix, suffix):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # rotated away while we looked
                files.append(LogFile(path, setup, suffix[1:], number, st.st_size, st.st_mtime_ns))
    files.sort(key=lambda f: (f.mtime_ns, f.number))
    return files


def stderr_tail(log_dir: Path, prefix: str, *, lines: int = 6, width: int = 300) -> list[str]:
    """The last non-blank lines of the newest ``<prefix>_<n>.err`` file, for error messages.

    Use it to say *why* a code package keeps exiting: the cause (a traceback's last line, a
    refused registration) is in its stderr, not in its exit code. Bounded, so a chatty process
    cannot flood a message: reads the file's last 16 KiB at most and keeps ``lines`` lines of at
    most ``width`` characters. Returns ``[]`` when there is no such file or it cannot be read.
    """
    files = _numbered(log_dir, prefix, ".err")
    for _, path in reversed(files):  # a silent incarnation leaves no file: take the last written
        try:
            with path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - _TAIL_BYTES))
                data = f.read(_TAIL_BYTES)
        except OSError:
            continue
        text = data.decode("utf-8", errors="replace")
        kept = [line.rstrip() for line in text.splitlines() if line.strip()]
        if size > _TAIL_BYTES and kept:
            kept = kept[1:]  # the first line read is probably cut
        if kept:
            return [_shorten(line, width) for line in kept[-lines:]]
    return []


def _shorten(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"
