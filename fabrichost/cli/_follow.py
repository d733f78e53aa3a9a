"""Code packages' console files, labelled and followed: what `fabrichost logs` and `run` print.

The agent writes each code package's stdout and stderr to rotated files in its application's
log folder, ``<state>/_App/<node>/<application folder>/log/`` (SF's names:
``<CodePackage>_<ServicePackage>_<S|M>_<n>.out|.err``, see ``agent/_console.py``). Those files
carry no timestamp per line, so ``--since`` selects files by their last write.

A line is printed with where it came from, ``_Node_1 fabric:/Shop WebPkg/Code | text``, or as
one JSON object per line. What a folder or a file name means (which application, which service
package and code package) is asked of the agent by a :class:`Labels` source; a folder the agent
no longer knows (a deleted application's) keeps its raw name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Protocol

import click
import watchfiles

if TYPE_CHECKING:
    from collections.abc import Iterable

# <CodePackage>_<ServicePackage>_<S|M>_<n>.<out|err>
_FILE_NAME: Final = re.compile(
    r"(?P<prefix>.+)_(?P<kind>[SM])_(?P<number>\d+)\.(?P<stream>out|err)"
)
# The most read from the end of a file to find its last lines: a huge file costs no more.
_TAIL_WINDOW: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a console file's lines come from."""

    node: str
    application: str  # fabric:/... when the agent knows the folder, else the folder's name
    code_package: str  # "<ServicePackage>/<CodePackage>" when known, else the file's prefix
    code_package_name: str | None  # the code package alone, when known
    setup: bool  # the SetupEntryPoint's output (S), else the EntryPoint's (M)
    stream: str  # "out" or "err"

    @property
    def label(self) -> str:
        setup = " (setup)" if self.setup else ""
        return f"{self.node} {self.application} {self.code_package}{setup}"


class Labels(Protocol):
    """Names for an application folder and a file prefix; asked again when unknown."""

    def application(self, node: str, folder: str) -> str | None: ...

    def code_package(self, node: str, folder: str, prefix: str) -> tuple[str, str] | None:
        """``(service package, code package)`` of a file name prefix."""
        ...


def origin_of(path: Path, labels: Labels | None) -> Origin | None:
    """Who writes ``path`` (``<root>/<node>/<folder>/log/<file>``), or None if it is no console
    file."""
    match = _FILE_NAME.fullmatch(path.name)
    if match is None or path.parent.name != "log":
        return None
    node, folder = path.parent.parent.parent.name, path.parent.parent.name
    prefix = match["prefix"]
    application = (labels.application(node, folder) if labels else None) or folder
    names = labels.code_package(node, folder, prefix) if labels else None
    return Origin(
        node=node,
        application=application,
        code_package=f"{names[0]}/{names[1]}" if names else prefix,
        code_package_name=names[1] if names else None,
        setup=match["kind"] == "S",
        stream=match["stream"],
    )


@dataclass(frozen=True, slots=True)
class Selection:
    """Which console files to show; None matches anything."""

    node: str | None = None
    application: str | None = None
    code_package: str | None = None
    since_ns: int | None = None  # files last written at or after this time (ns since the epoch)

    def wants(self, origin: Origin) -> bool:
        return (
            (self.node is None or origin.node == self.node)
            and (self.application is None or origin.application == self.application)
            and (self.code_package is None or origin.code_package_name == self.code_package)
        )


def tail_lines(path: Path, count: int, *, whole_lines_only: bool) -> tuple[list[str], int]:
    """The last ``count`` lines of ``path`` (from at most its last 256 KiB) and the offset
    reading goes on from: its end, or with ``whole_lines_only`` the end of its last whole line
    (a line still being written is left to the follower). ``([], 0)`` when it cannot be read."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - _TAIL_WINDOW)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return [], 0
    end = start + len(data)
    if whole_lines_only and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        if cut or start == 0:
            data, end = data[:cut], start + cut
    lines = data.decode(errors="replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first line read is probably cut
    return (lines[-count:] if count > 0 else []), end


@dataclass
class _Followed:
    origin: Origin
    file: IO[bytes]
    partial: bytes = b""  # the start of a line whose end is not written yet


@dataclass
class ConsoleFollower:
    """Prints console files below ``root`` (``<root>/<node>/<folder>/log/*``) and then what is
    appended to them, each line with its origin.

    A file is kept open once seen, until it has been read to its end after it was deleted, so
    what a host wrote before its folder was deleted (a temporary cluster stopping) is still read,
    and a rotated file holds nothing for long. A line is printed when its newline is written.
    """

    root: Path
    labels: Labels | None = None
    selection: Selection = field(default_factory=Selection)
    as_json: bool = False
    _files: dict[Path, _Followed] = field(default_factory=dict)
    _skipped: set[Path] = field(default_factory=set)

    def console_files(self) -> list[tuple[Path, Origin, bool]]:
        """The selected console files present now, oldest write first, each with whether it
        was written since ``selection.since_ns``."""
        found: list[tuple[int, Path, Origin]] = []
        for path in self.root.glob("*/*/log/*"):
            origin = origin_of(path, self.labels)
            if origin is None or not self.selection.wants(origin):
                continue
            try:
                found.append((path.stat().st_mtime_ns, path, origin))
            except FileNotFoundError:
                continue  # rotated away while we looked
        found.sort(key=lambda item: (item[0], str(item[1])))
        since = self.selection.since_ns
        return [(path, origin, since is None or mtime >= since) for mtime, path, origin in found]

    def print_tails(self, count: int, *, then_follow: bool) -> int:
        """Print the last ``count`` lines of every selected file written since the selection's
        time; with ``then_follow`` every selected file stays open at its end. Returns how many
        files were printed from."""
        printed = 0
        for path, origin, recent in self.console_files():
            lines, end = tail_lines(path, count if recent else 0, whole_lines_only=then_follow)
            for line in lines:
                self._emit(origin, path, line)
            printed += recent
            if then_follow:
                self._open(path, origin, at=end)
        return printed

    async def follow(self, *, until_exit_of: int) -> None:
        """Print what is appended (and new files from their start) until process
        ``until_exit_of`` exits or the caller is cancelled (Ctrl-C)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(until_exit_of)
        loop.add_reader(pidfd, stop.set)  # the kernel tells us when the agent exits
        # The agent makes the folder at its first deploy; a follower may start before it.
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.print_new()
            async for changes in watchfiles.awatch(self.root, stop_event=stop, recursive=True):
                self._print(sorted(Path(name) for _, name in changes))
            self.print_new()  # what was written just before the agent exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)

    def print_new(self) -> None:
        """Print what was appended to every console file since it was last read."""
        self._print([*self._files, *sorted(self.root.glob("*/*/log/*"))])

    def close(self) -> None:
        """Print any unfinished last lines, and close the files."""
        for path, followed in self._files.items():
            if followed.partial:
                self._emit(followed.origin, path, followed.partial.decode(errors="replace"))
            followed.file.close()
        self._files.clear()

    def _print(self, paths: Iterable[Path]) -> None:
        for path in dict.fromkeys(paths):
            followed = self._files.get(path)
            if followed is None:
                followed = self._first_sight(path)
                if followed is None:
                    continue
            with contextlib.suppress(OSError):
                data = followed.partial + followed.file.read()
                *lines, followed.partial = data.split(b"\n")
                for line in lines:
                    self._emit(followed.origin, path, line.decode(errors="replace"))
            if not path.exists():
                # Rotated away or deleted, and read to its end: its writer is done with it, so
                # it holds no descriptor or disk space any longer (a crash loop makes many).
                self._forget(path)

    def _forget(self, path: Path) -> None:
        followed = self._files.pop(path)
        if followed.partial:
            self._emit(followed.origin, path, followed.partial.decode(errors="replace"))
        followed.file.close()

    def _first_sight(self, path: Path) -> _Followed | None:
        if path in self._skipped:
            return None
        origin = origin_of(path, self.labels)
        if origin is None or not self.selection.wants(origin):
            # Skipped for good only when its application is named: an unnamed folder may be
            # named once the agent has answered for it.
            if origin is None or origin.application != path.parent.parent.name:
                self._skipped.add(path)
            return None
        return self._open(path, origin, at=0)

    def _open(self, path: Path, origin: Origin, *, at: int) -> _Followed | None:
        try:
            f = path.open("rb")
        except OSError:  # rotated away since the change was seen (or out of descriptors)
            return None
        f.seek(at)
        followed = self._files[path] = _Followed(origin, f)
        return followed

    def _emit(self, origin: Origin, path: Path, line: str) -> None:
        if self.as_json:
            record = {
                "Node": origin.node,
                "Application": origin.application,
                "CodePackage": origin.code_package,
                "EntryPoint": "Setup" if origin.setup else "Main",
                "Stream": origin.stream,
                "File": str(path),
                "Line": line,
            }
            click.echo(json.dumps(record))
        else:
            click.echo(f"{origin.label} | {line}")
