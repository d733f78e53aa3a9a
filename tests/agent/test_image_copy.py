"""The image store copy of a package: no links in it, none leading out, files streamed."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent._image_copy import (
    MAX_COPIES,
    MAX_DEPTH,
    copy_package,
    package_digest,
    read_chunks,
)
from fabrichost.errors import ManifestError
from tests.integration.conftest import write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

MIB = 1 << 20


def _package(tmp_path: Path) -> Path:
    return write_guest_package(tmp_path / "G", script="pass\n")


def _links(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_symlink()]


def _refusal(package: Path, dest: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        copy_package(package, dest)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.file == str(package)  # the user's package, never the copy
    return diagnostic.message


def test_read_chunks_yields_the_file_in_pieces_of_at_most_the_size_asked(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    (tmp_path / "f").write_bytes(data)
    chunks = list(read_chunks(tmp_path / "f", size=4096))
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert b"".join(chunks) == data


def test_read_chunks_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        list(read_chunks(tmp_path / "pipe"))


def test_read_chunks_does_not_follow_a_link(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(OSError, match=r"symbolic link|too many levels"):
        list(read_chunks(tmp_path / "link"))


def test_links_inside_the_package_become_the_files_and_folders_they_name(tmp_path: Path) -> None:
    package = _package(tmp_path)
    code = package / "GuestPkg" / "Code"
    (code / "lib").mkdir()
    (code / "lib" / "data.txt").write_text("v1")
    (code / "alias.txt").symlink_to("lib/data.txt")
    (code / "alias-of-alias.txt").symlink_to("alias.txt")  # a link to a link
    (code / "absolute.txt").symlink_to(code / "lib" / "data.txt")  # absolute, still inside
    (code / "libdir").symlink_to("lib")
    dest = tmp_path / "copy"
    copy_package(package, dest)
    copied = dest / "GuestPkg" / "Code"
    assert _links(dest) == []
    for name in ("alias.txt", "alias-of-alias.txt", "absolute.txt", "libdir/data.txt"):
        assert (copied / name).read_text() == "v1", name
    assert os.access(copied / "run.sh", os.X_OK)  # modes are kept
    (code / "lib" / "data.txt").write_text("v2")
    assert (copied / "alias.txt").read_text() == "v1"  # a snapshot, not a window


@pytest.mark.parametrize(
    ("name", "target"),
    [("secret.txt", "{outside}"), ("rootdir", "/"), ("up.txt", "../../../outside.txt")],
)
def test_a_link_leading_out_of_the_package_is_refused_naming_it_and_its_target(
    tmp_path: Path, name: str, target: str
) -> None:
    package = _package(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    target = target.format(outside=outside)
    (package / "GuestPkg" / "Code" / name).symlink_to(target)
    message = _refusal(package, tmp_path / "copy")
    assert message.startswith(f"GuestPkg/Code/{name}: symbolic link to {target!r} leads outside")


@pytest.mark.parametrize(
    ("name", "target", "why"),
    [
        ("loop", "..", "loops back to a folder that contains it"),
        ("self", ".", "loops back to a folder that contains it"),
        ("top", "../..", "loops back to a folder that contains it"),
        ("a", "b", "cannot be followed"),  # b links back to a
        ("gone", "nothing-here", "cannot be followed"),
    ],
)
def test_a_link_loop_or_a_dangling_link_is_refused(
    tmp_path: Path, name: str, target: str, why: str
) -> None:
    package = _package(tmp_path)
    code = package / "GuestPkg" / "Code"
    (code / name).symlink_to(target)
    if name == "a":
        (code / "b").symlink_to("a")
    message = _refusal(package, tmp_path / "copy")
    assert message.startswith(f"GuestPkg/Code/{name}: symbolic link to {target!r} "), message
    assert why in message


def test_links_that_would_copy_a_folder_without_bound_are_refused(tmp_path: Path) -> None:
    """Two links in each folder to the next: folder n is reached 2**n times."""
    package = _package(tmp_path)
    data = package / "GuestPkg" / "Data"
    for level in range(8):
        (data / f"d{level}").mkdir(parents=True)
        (data / f"d{level}" / "x.txt").write_text("x")
        if level:
            (data / f"d{level - 1}" / "a").symlink_to(f"../d{level}")
            (data / f"d{level - 1}" / "b").symlink_to(f"../d{level}")
    message = _refusal(package, tmp_path / "copy")
    assert message.startswith("GuestPkg/Data/d0/a/"), message
    assert re.search(
        f"links would copy GuestPkg/Data/d[0-7] more than {MAX_COPIES} times$", message
    )


def test_a_copy_into_the_package_itself_is_refused_before_it_starts(tmp_path: Path) -> None:
    package = _package(tmp_path)
    store = package / "state" / "ImageStore"  # an agent started with --state-dir <package>/state
    store.mkdir(parents=True)
    message = _refusal(package, store / "copy")
    assert message == (
        "state/ImageStore/copy: the image store is inside the package: "
        "use a state directory outside it"
    )
    assert list(store.iterdir()) == []


def test_folders_nested_too_deep_to_copy_are_refused(tmp_path: Path) -> None:
    package = _package(tmp_path)
    deep = package / "GuestPkg" / "Data"
    deep.mkdir()
    for _ in range(MAX_DEPTH):  # a path well within PATH_MAX, deeper than the copy recurses
        deep /= "d"
        deep.mkdir()
    message = _refusal(package, tmp_path / "copy")
    assert message.startswith("GuestPkg/Data/d/d/"), message
    assert message.endswith(f": folders are nested more than {MAX_DEPTH} deep")


def test_a_fifo_in_the_package_is_refused_not_waited_on(tmp_path: Path) -> None:
    package = _package(tmp_path)
    os.mkfifo(package / "GuestPkg" / "Code" / "pipe")
    message = _refusal(package, tmp_path / "copy")
    assert message == "GuestPkg/Code/pipe: neither a file nor a folder: a package holds only those"


def test_a_read_only_folder_is_copied_with_its_mode(tmp_path: Path) -> None:
    package = _package(tmp_path)
    data = package / "GuestPkg" / "Data"
    data.mkdir()
    (data / "x").write_text("x")
    data.chmod(0o555)
    try:
        copy_package(package, tmp_path / "copy")
        assert (tmp_path / "copy" / "GuestPkg" / "Data" / "x").read_text() == "x"
        assert (tmp_path / "copy" / "GuestPkg" / "Data").stat().st_mode & 0o777 == 0o555
    finally:
        data.chmod(0o755)
        (tmp_path / "copy" / "GuestPkg" / "Data").chmod(0o755)


def test_the_digest_of_a_package_without_links_is_what_it_always_was(tmp_path: Path) -> None:
    """Copies already in an image store keep their names: the digest's definition is kept."""
    package = _package(tmp_path)
    before = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        before.update(str(path.relative_to(package)).encode() + b"\0")
        before.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        before.update(path.read_bytes())
    assert package_digest(package) == before.hexdigest()


def test_provisioning_a_large_file_keeps_memory_bounded(tmp_path: Path) -> None:
    """A 512 MiB (sparse) data file is copied and hashed in a fresh interpreter whose peak
    memory must stay far below the file's size."""
    package = _package(tmp_path)
    with (package / "GuestPkg" / "Code" / "big.bin").open("wb") as big:
        big.truncate(512 * MIB)
    script = textwrap.dedent("""
        import resource, sys
        from pathlib import Path
        from fabrichost.agent._provision import provision_package
        provision_package(Path(sys.argv[1]), Path(sys.argv[2]))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """)
    done = subprocess.run(
        [sys.executable, "-c", script, str(package), str(tmp_path / "ImageStore")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    peak_mib = int(done.stdout.split()[-1]) // 1024
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB while provisioning a 512 MiB file"
