"""The image store's copy of an application package: links resolved, files streamed.

Usage::

    copy_package(Path("MyApp"), staging / "pkg")   # raises ManifestError naming a bad link
    digest = package_digest(staging / "pkg")

Strategy: the copy holds no symbolic links. A link whose target lies inside the package is
copied as the file or folder it names, so the copy is a snapshot that a later change of the
link, or of what it names, cannot reach. A link that leads outside the package, to nothing, or
round in a loop is refused, named relative to the package with its target; so is anything that
is neither a file nor a folder (a FIFO would block the copy for ever), links that would copy
one file or folder more than ``MAX_COPIES`` times, folders nested over ``MAX_DEPTH`` deep, and
a destination inside the package. Files are read in ``CHUNK``-sized pieces for copying and
hashing, so memory stays bounded whatever the package holds.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final

from fabrichost.errors import Diagnostic, ManifestError

if TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK: Final = 1 << 20  # 1 MiB: large enough for throughput, small enough for any agent
#: How often one file or folder of the package may be copied (once as itself, the rest through
#: links). Without a bound, a few links (two in each of 30 nested folders, each to the next)
#: make a copy exponentially large; with it, a copy is at most this many times the package.
MAX_COPIES: Final = 16
#: Folders nested deeper are refused: the copy recurses, and Python's stack is finite.
MAX_DEPTH: Final = 200


def read_chunks(path: Path, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of the regular file ``path``, ``size`` bytes at a time.

    The last component is not followed if it is a link, and the open never blocks (a FIFO
    put in the file's place is refused, not waited on).

    Raises:
        OSError: the file cannot be opened or read, or it is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        while chunk := stream.read(size):
            yield chunk


def package_digest(root: Path) -> str:
    """A digest of every file's relative path, mode and bytes below ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        for chunk in read_chunks(path):
            digest.update(chunk)
    return digest.hexdigest()


def copy_package(source: Path, dest: Path) -> None:
    """Copy the package folder ``source`` to the new folder ``dest``, links resolved.

    Raises:
        ManifestError: naming ``source`` and the offending entry relative to it: a link that
            leads outside the package, to nothing or into a loop, or an entry that is neither a
            file nor a folder; or ``dest`` is inside ``source``. ``dest`` may then hold a
            partial copy: the caller discards it.
    """
    copier = _Copier(source)
    if Path(os.path.realpath(dest)).is_relative_to(copier.root):
        # The copy would copy itself as it grows (a --state-dir inside the package folder).
        raise copier.refuse(
            PurePosixPath(os.path.relpath(dest, source)),
            "the image store is inside the package: use a state directory outside it",
        )
    copier.copy_folder(copier.root, dest, PurePosixPath(), ())


class _Copier:
    """One package copy: the package's real root, to judge where links lead."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.root = Path(os.path.realpath(source))
        self.copies: Counter[Path] = Counter()  # real path -> times copied so far

    def refuse(self, rel: PurePosixPath, message: str) -> ManifestError:
        return ManifestError(Diagnostic(str(self.source), None, f"{rel}: {message}"))

    def copy_folder(
        self, folder: Path, dest: Path, rel: PurePosixPath, ancestors: tuple[Path, ...]
    ) -> None:
        """Copy the real folder ``folder``; ``ancestors`` are the real folders being copied
        around it, so a link back to one of them is a loop rather than an endless copy."""
        if len(ancestors) >= MAX_DEPTH:
            raise self.refuse(rel, f"folders are nested more than {MAX_DEPTH} deep")
        dest.mkdir()
        ancestors = (*ancestors, folder)
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            self.copy_entry(Path(entry.path), dest / entry.name, rel / entry.name, ancestors)
        os.chmod(dest, stat.S_IMODE(os.stat(folder).st_mode))  # last: it may be read-only

    def copy_entry(
        self, path: Path, dest: Path, rel: PurePosixPath, ancestors: tuple[Path, ...]
    ) -> None:
        try:
            self.copy_real(path, dest, rel, ancestors)
        except OSError as exc:  # unreadable, vanished, or the image store is full
            raise self.refuse(rel, f"cannot be copied: {exc.strerror or exc}") from None

    def copy_real(
        self, path: Path, dest: Path, rel: PurePosixPath, ancestors: tuple[Path, ...]
    ) -> None:
        real = self.follow(path, rel) if path.is_symlink() else path
        self.copies[real] += 1
        if self.copies[real] > MAX_COPIES:
            raise self.refuse(
                rel,
                f"the package's symbolic links would copy {real.relative_to(self.root)} more "
                f"than {MAX_COPIES} times",
            )
        mode = os.stat(real, follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            if real in ancestors:
                raise self.refuse(
                    rel,
                    f"symbolic link to {os.readlink(path)!r} loops back to a folder "
                    "that contains it",
                )
            self.copy_folder(real, dest, rel, ancestors)
        elif stat.S_ISREG(mode):
            _copy_file(real, dest, stat.S_IMODE(mode))
        else:
            raise self.refuse(rel, "neither a file nor a folder: a package holds only those")

    def follow(self, link: Path, rel: PurePosixPath) -> Path:
        """The real path a link inside the package names, if it stays inside the package."""
        target = os.readlink(link)
        try:
            real = Path(os.path.realpath(link, strict=True))
        except OSError as exc:  # ENOENT: dangling; ELOOP: links that name each other
            raise self.refuse(
                rel, f"symbolic link to {target!r} cannot be followed: {exc.strerror}"
            ) from None
        if not real.is_relative_to(self.root):
            raise self.refuse(
                rel,
                f"symbolic link to {target!r} leads outside the package (to {real}); "
                "the image store copy would depend on it: copy it into the package instead",
            )
        return real


def _copy_file(source: Path, dest: Path, mode: int) -> None:
    """Stream ``source`` into the new file ``dest``, then give it ``mode``."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as out:
        for chunk in read_chunks(source):
            out.write(chunk)
    os.chmod(dest, mode)
