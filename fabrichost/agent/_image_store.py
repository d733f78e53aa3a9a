"""The native image store's content: what clients upload (``sfctl application upload``) and
provision from, as files below one folder of the state directory.

Usage::

    store = ImageStore(state_dir / "ImageStoreContent")
    await store.put_file("MyApp/ApplicationManifest.xml", chunks)   # streamed to disk
    store.mark_folder("MyApp/_.dir")                               # sfctl's folder marker
    store.listing("MyApp")                                         # files and folders
    package = store.package_folder("MyApp")                        # for provisioning
    await store.delete("MyApp")

A store path is relative, uses ``/`` and is held to :func:`check_store_path` before anything
is touched: no empty, ``.`` or ``..`` segment, no NUL or control character, no backslash, no
absolute path, none of Service Fabric's reserved names (``Store`` and ``WindowsFabricStore`` at
the top, which hold provisioned types in Service Fabric's own store; ``_.dir`` except as the
folder marker; a ``$`` segment, which names an operation), at most ``MAX_PATH_CHARS`` long. A
path that reaches through a symbolic link, or names a folder where a file goes (or the reverse),
is refused too: the agent never makes a link in the store, so one is someone else's, and it is
never followed. Every refusal is an :class:`ApiError` that quotes the path and changes nothing.

Strategy: an upload is written in chunks to a file in ``<root>.partial`` (beside the root, on
the same file system) and renamed into place once whole, so a reader never sees half a file and
a refused or broken upload leaves nothing in the store. The checks that a path still fits the
store and the rename run on the event loop with no ``await`` between them, so two requests never
interleave there. A delete renames the content out of the store first (atomic), then removes it
in a thread. Upload sessions (``UploadChunk`` and friends) are not built: sfctl's upload sends
each file whole with ``PUT`` and marks each folder with ``_.dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fabrichost.errors import ApiError, ConflictError, NotFoundError, TooLargeError

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterator

#: The largest file one upload may carry (1 GiB): a code package's biggest binaries fit, and
#: a runaway upload cannot fill the disk unseen. ``docs/limits.md``.
MAX_FILE_BYTES: Final = 1 << 30
#: The longest store path, in characters (Service Fabric answers FABRIC_E_PATH_TOO_LONG).
MAX_PATH_CHARS: Final = 1024
#: The longest segment, in UTF-8 bytes: what a Linux file system takes as one name.
MAX_SEGMENT_BYTES: Final = 255
#: sfctl PUTs ``<folder>/_.dir`` (no body) once a folder's files are uploaded.
FOLDER_MARKER: Final = "_.dir"
#: Top-level folders Service Fabric keeps for itself (its provisioned types live there).
RESERVED_ROOTS: Final = frozenset({"store", "windowsfabricstore"})
_WRITE_BATCH: Final = 1 << 20  # bytes gathered before one write to disk


@dataclass(frozen=True, slots=True)
class StoreFile:
    """A file in the store: its path from the store's root, size and modification time."""

    path: str
    size: int
    modified: float


@dataclass(frozen=True, slots=True)
class StoreFolder:
    """A folder in the store and how many files it holds (at any depth)."""

    path: str
    file_count: int


@dataclass(frozen=True, slots=True)
class StoreListing:
    """What a path holds: a file lists itself; a folder its own files and folders."""

    files: tuple[StoreFile, ...]
    folders: tuple[StoreFolder, ...]


def _refuse(path: str, why: str, code: str = "FABRIC_E_INVALID_ARGUMENT") -> ApiError:
    return ApiError(f"image store path {path!r}: {why}", code=code)


def check_store_path(path: str, *, marker: bool = False) -> tuple[str, ...]:
    """The segments of ``path``, a relative store path; ``marker`` lets it end in ``_.dir``.

    Raises:
        ApiError: the path is empty, absolute, too long, or holds a segment that is empty,
            ``.``, ``..``, reserved or not a plain name (the message says which).
    """
    if not path:
        raise _refuse(path, "a path in the store is required")
    if len(path) > MAX_PATH_CHARS:
        raise _refuse(
            path[:64] + "...",
            f"{len(path)} characters, at most {MAX_PATH_CHARS}",
            "FABRIC_E_PATH_TOO_LONG",
        )
    if path.startswith("/"):
        raise _refuse(path, "must be relative to the image store, not absolute")
    if "\\" in path:
        raise _refuse(path, "separate folders with '/', not '\\'")
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise _refuse(path, "holds a NUL or control character")
    segments = tuple(path.split("/"))
    for index, segment in enumerate(segments):
        _check_segment(path, segment, index, last=index == len(segments) - 1, marker=marker)
    return segments


def _check_segment(path: str, segment: str, index: int, *, last: bool, marker: bool) -> None:
    if segment in ("", ".", ".."):
        raise _refuse(path, f"segment {segment!r} is not a name: no empty, '.' or '..' segments")
    if len(segment.encode()) > MAX_SEGMENT_BYTES:
        raise _refuse(
            path, f"segment is longer than {MAX_SEGMENT_BYTES} bytes", "FABRIC_E_PATH_TOO_LONG"
        )
    if segment == "$":
        raise _refuse(path, "'$' names an operation, not content")
    if index == 0 and segment.casefold() in RESERVED_ROOTS:
        raise _refuse(
            path,
            f"{segment!r} is reserved by Service Fabric at the image store's root",
            "FABRIC_E_IMAGEBUILDER_RESERVED_DIRECTORY_ERROR",
        )
    if segment == FOLDER_MARKER and not (last and marker):
        raise _refuse(path, f"{FOLDER_MARKER!r} is reserved: it marks an uploaded folder")


class ImageStore:
    """The uploaded content of one agent, below ``root`` (made on first use).

    Uploads in progress live in ``<root>.partial``, emptied when the store is made (an agent's
    start): what an earlier run was writing when it stopped is gone, as it never answered.
    """

    def __init__(self, root: Path, *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self._partial = root.with_name(root.name + ".partial")
        shutil.rmtree(self._partial, ignore_errors=True)
        self._in_use: dict[Path, int] = {}  # folders being provisioned, and by how many

    @contextlib.contextmanager
    def in_use(self, folder: Path) -> Iterator[None]:
        """Hold ``folder`` (a :meth:`package_folder`) while a provision copies it: a delete of
        it, or of what holds it or lies in it, is refused meanwhile instead of pulling the
        files from under the copy."""
        self._in_use[folder] = self._in_use.get(folder, 0) + 1
        try:
            yield
        finally:
            self._in_use[folder] -= 1
            if not self._in_use[folder]:
                del self._in_use[folder]

    # -- reading --------------------------------------------------------------------------------
    def listing(self, path: str = "") -> StoreListing:
        """What ``path`` holds ("" is the root; a trailing ``/`` is ignored).

        Raises:
            ApiError: the path is not a valid store path, or reaches through a link.
            NotFoundError: nothing is stored at ``path``.
        """
        path = path.rstrip("/")
        if not path:
            if not self.root.is_dir():
                return StoreListing((), ())
            return self._folder_listing(self.root)
        target = self._existing(path, check_store_path(path))
        if stat.S_ISREG(os.lstat(target).st_mode):
            return StoreListing((self._file(target),), ())
        return self._folder_listing(target)

    def package_folder(self, path: str) -> Path:
        """The folder ``path`` names, for provisioning an uploaded application package.

        Raises:
            ApiError: the path is not valid, reaches through a link, or names a file.
            NotFoundError: nothing is stored at ``path``.
        """
        path = path.rstrip("/")
        target = self._existing(path, check_store_path(path))
        if not stat.S_ISDIR(os.lstat(target).st_mode):
            raise _refuse(path, "is a file; provision the folder with ApplicationManifest.xml")
        return target

    def _existing(self, path: str, segments: tuple[str, ...]) -> Path:
        target = self._walk(path, segments)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            raise NotFoundError(
                f"the image store holds nothing at {path!r}", code="FABRIC_E_FILE_NOT_FOUND"
            ) from None
        if stat.S_ISLNK(mode):
            raise _refuse(path, "is a symbolic link; the image store follows none")
        return target

    def _walk(self, path: str, segments: tuple[str, ...]) -> Path:
        """``root / segments``, refused if a folder on the way is a link or a file."""
        here = self.root
        for segment in segments[:-1]:
            here = here / segment
            try:
                mode = os.lstat(here).st_mode
            except FileNotFoundError:
                continue  # the rest is missing too: nothing on the way can be a link
            if stat.S_ISLNK(mode):
                raise _refuse(path, f"{segment!r} is a symbolic link; the image store follows none")
            if not stat.S_ISDIR(mode):
                raise _refuse(path, f"{here.relative_to(self.root)} is a file, not a folder")
        return here / segments[-1]

    def _file(self, target: Path) -> StoreFile:
        info = os.lstat(target)
        return StoreFile(self._relative(target), info.st_size, info.st_mtime)

    def _relative(self, target: Path) -> str:
        return target.relative_to(self.root).as_posix()

    def _folder_listing(self, folder: Path) -> StoreListing:
        files, folders = [], []
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_file(follow_symlinks=False):
                    files.append(self._file(Path(entry.path)))
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(
                        StoreFolder(self._relative(Path(entry.path)), _count_files(entry.path))
                    )
                # Anything else (a link someone put here) is not content: never shown.
        return StoreListing(tuple(files), tuple(folders))

    # -- writing --------------------------------------------------------------------------------
    async def put_file(self, path: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the bytes of ``chunks`` at ``path``, replacing a file there.

        The path is checked before the first chunk is read; the file appears whole or not at
        all. Cancellation leaves nothing behind.

        Raises:
            ApiError: the path is not valid, reaches through a link or a file, or is a folder.
            TooLargeError: more than ``max_file_bytes`` arrive (the rest is not read).
        """
        segments = check_store_path(path)
        self._check_target(path, segments)
        self._partial.mkdir(parents=True, exist_ok=True)
        temp = self._partial / uuid.uuid4().hex
        try:
            await self._write(temp, path, chunks)
            self._place(path, segments, temp)  # no await between the last check and the rename
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    async def _write(self, temp: Path, path: str, chunks: AsyncIterable[bytes]) -> None:
        size = 0
        batch = bytearray()
        out = await asyncio.to_thread(open, temp, "xb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_file_bytes:
                    raise TooLargeError(
                        f"image store file {path!r} is larger than {self.max_file_bytes} "
                        "bytes, the most one upload may carry"
                    )
                batch += chunk
                if len(batch) >= _WRITE_BATCH:
                    await asyncio.to_thread(out.write, bytes(batch))
                    batch.clear()
            await asyncio.to_thread(out.write, bytes(batch))
        finally:
            out.close()

    def _check_target(self, path: str, segments: tuple[str, ...]) -> Path:
        target = self._walk(path, segments)
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(target).st_mode
            if stat.S_ISLNK(mode):
                raise _refuse(path, "is a symbolic link; the image store follows none")
            if stat.S_ISDIR(mode):
                raise _refuse(path, "is a folder; a file cannot replace it")
        return target

    def _place(self, path: str, segments: tuple[str, ...], temp: Path) -> None:
        target = self._check_target(path, segments)  # the store may have changed meanwhile
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)

    def mark_folder(self, path: str) -> None:
        """sfctl's ``<folder>/_.dir``: the folder's upload is complete; make sure it exists
        (an empty folder of the package has no file to make it)."""
        segments = check_store_path(path, marker=True)
        if segments[-1] != FOLDER_MARKER:
            raise _refuse(path, f"a folder marker ends in {FOLDER_MARKER!r}")
        if len(segments) == 1:
            self.root.mkdir(parents=True, exist_ok=True)
            return
        folder = self._walk(path, segments)
        folder = folder.parent
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(folder).st_mode
            if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
                raise _refuse(path, f"{self._relative(folder)} is not a folder")
        folder.mkdir(parents=True, exist_ok=True)

    async def delete(self, path: str) -> None:
        """Delete the file or folder (with everything in it) at ``path``.

        Raises:
            ApiError: the path is not valid or reaches through a link.
            NotFoundError: nothing is stored at ``path``.
            ConflictError: a provision is copying it (or a folder it holds, or holds it).
        """
        path = path.rstrip("/")
        target = self._existing(path, check_store_path(path))
        busy = [f for f in self._in_use if f.is_relative_to(target) or target.is_relative_to(f)]
        if busy:
            raise ConflictError(
                f"image store path {path!r} is being provisioned (from "
                f"{self._relative(busy[0])!r}); delete it once the provision is done",
                code="FABRIC_E_OPERATION_NOT_COMPLETE",
            )
        self._partial.mkdir(parents=True, exist_ok=True)
        doomed = self._partial / f"deleted-{uuid.uuid4().hex}"
        os.rename(target, doomed)  # gone from the store at once, whatever the size
        if stat.S_ISDIR(os.lstat(doomed).st_mode):
            await asyncio.to_thread(shutil.rmtree, doomed, ignore_errors=True)
        else:
            doomed.unlink()


def _count_files(folder: str) -> int:
    count = 0
    for _, _, names in os.walk(folder):
        count += len(names)
    return count
