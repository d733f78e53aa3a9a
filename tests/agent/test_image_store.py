"""The image store's uploaded content: paths confined to the store, files whole or absent."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent._image_store import (
    MAX_PATH_CHARS,
    ImageStore,
    StoreFile,
    StoreFolder,
    check_store_path,
)
from fabrichost.errors import ApiError, ConflictError, NotFoundError, TooLargeError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def tree(root: Path) -> list[str]:
    """Every file and folder below ``root`` (links included), relative, sorted."""
    return sorted(
        os.path.relpath(os.path.join(here, name), root)
        for here, dirs, files in os.walk(root)
        for name in dirs + files
    )


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "ImageStoreContent")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("", "is required"),
        ("/etc/passwd", "not absolute"),
        ("../outside", "'..'"),
        ("MyApp/../../outside", "'..'"),
        ("MyApp/./x", "'.'"),
        ("MyApp//x", "''"),
        ("MyApp\\x", "'/'"),
        ("MyApp/x\0y", "NUL"),
        ("MyApp/x\ny", "control character"),
        ("Store/MyApp", "reserved by Service Fabric"),
        ("windowsfabricstore", "reserved by Service Fabric"),
        ("MyApp/_.dir/x", "'_.dir' is reserved"),
        ("MyApp/$/UploadChunk", "names an operation"),
        ("x" * (MAX_PATH_CHARS + 1), "at most 1024"),
        ("a/" + "x" * 256, "longer than 255 bytes"),
    ],
)
def test_a_path_that_could_leave_the_store_or_is_reserved_is_refused(path: str, words: str) -> None:
    with pytest.raises(ApiError, match="image store path") as refused:
        check_store_path(path)
    assert words in refused.value.message


def test_paths_inside_the_store_are_accepted() -> None:
    assert check_store_path("MyApp/Pkg/Code/run.sh") == ("MyApp", "Pkg", "Code", "run.sh")
    assert check_store_path("MyApp/Store/x") == ("MyApp", "Store", "x")  # reserved at the top only
    assert check_store_path("MyApp/_.dir", marker=True) == ("MyApp", "_.dir")


async def test_an_upload_is_stored_and_listed(store: ImageStore) -> None:
    await store.put_file("MyApp/ApplicationManifest.xml", chunks(b"<Application", b"/>"))
    await store.put_file("MyApp/Pkg/Code/run.sh", chunks(b"echo"))
    store.mark_folder("MyApp/Pkg/Empty/_.dir")
    assert (store.root / "MyApp" / "ApplicationManifest.xml").read_bytes() == b"<Application/>"
    root = store.listing("")
    assert root.files == ()
    assert root.folders == (StoreFolder("MyApp", 2),)
    app = store.listing("MyApp/")
    assert [(f.path, f.size) for f in app.files] == [("MyApp/ApplicationManifest.xml", 14)]
    assert app.folders == (StoreFolder("MyApp/Pkg", 1),)
    assert store.listing("MyApp/Pkg").folders == (
        StoreFolder("MyApp/Pkg/Code", 1),
        StoreFolder("MyApp/Pkg/Empty", 0),
    )
    (single,) = store.listing("MyApp/Pkg/Code/run.sh").files
    assert isinstance(single, StoreFile)
    assert (single.path, single.size) == ("MyApp/Pkg/Code/run.sh", 4)
    assert store.package_folder("MyApp") == store.root / "MyApp"
    assert tree(store.root.with_name("ImageStoreContent.partial")) == []  # nothing left over


async def test_an_upload_replaces_a_file_but_never_a_folder(store: ImageStore) -> None:
    await store.put_file("MyApp/a.txt", chunks(b"one"))
    await store.put_file("MyApp/a.txt", chunks(b"two"))
    assert (store.root / "MyApp" / "a.txt").read_bytes() == b"two"
    with pytest.raises(ApiError, match="is a folder"):
        await store.put_file("MyApp", chunks(b"x"))
    with pytest.raises(ApiError, match="is a file, not a folder"):
        await store.put_file("MyApp/a.txt/b.txt", chunks(b"x"))
    assert tree(store.root) == ["MyApp", "MyApp/a.txt"]


async def test_a_file_over_the_limit_leaves_nothing_and_the_rest_is_not_read(
    tmp_path: Path,
) -> None:
    store = ImageStore(tmp_path / "content", max_file_bytes=10)
    taken = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            taken.append(1)
            yield b"x" * 4

    with pytest.raises(TooLargeError, match="larger than 10 bytes"):
        await store.put_file("MyApp/big.bin", endless())
    assert len(taken) == 3
    assert tree(store.root) == []
    assert tree(tmp_path / "content.partial") == []


async def test_a_broken_upload_leaves_nothing(store: ImageStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"half"
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_file("MyApp/x.bin", broken())
    assert tree(store.root) == []


async def test_a_link_in_the_store_is_never_followed(store: ImageStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    store.root.mkdir()
    (store.root / "Escape").symlink_to(outside)  # someone else's link
    for attempt in (
        lambda: store.listing("Escape"),
        lambda: store.listing("Escape/secret.txt"),
        lambda: store.package_folder("Escape"),
    ):
        with pytest.raises(ApiError, match="symbolic link"):
            attempt()
    with pytest.raises(ApiError, match="symbolic link"):
        await store.put_file("Escape/new.txt", chunks(b"x"))
    with pytest.raises(ApiError, match="symbolic link"):
        await store.delete("Escape/secret.txt")
    with pytest.raises(ApiError, match="symbolic link"):
        store.mark_folder("Escape/Sub/_.dir")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]  # untouched
    assert store.listing("").folders == ()  # a link is not content


async def test_delete_removes_a_file_or_a_folder(store: ImageStore) -> None:
    await store.put_file("A/x.txt", chunks(b"x"))
    await store.put_file("A/Sub/y.txt", chunks(b"y"))
    await store.put_file("B/z.txt", chunks(b"z"))
    await store.delete("A/x.txt")
    assert tree(store.root) == ["A", "A/Sub", "A/Sub/y.txt", "B", "B/z.txt"]
    await store.delete("A")
    assert tree(store.root) == ["B", "B/z.txt"]
    with pytest.raises(NotFoundError, match="holds nothing at 'A'"):
        await store.delete("A")
    with pytest.raises(NotFoundError):
        store.listing("A")
    assert tree(store.root.with_name("ImageStoreContent.partial")) == []


async def test_provisioning_needs_a_folder(store: ImageStore) -> None:
    await store.put_file("A/x.txt", chunks(b"x"))
    with pytest.raises(ApiError, match="is a file"):
        store.package_folder("A/x.txt")
    with pytest.raises(NotFoundError):
        store.package_folder("Nope")


def test_a_new_store_drops_what_an_earlier_run_was_uploading(tmp_path: Path) -> None:
    partial = tmp_path / "ImageStoreContent.partial"
    partial.mkdir()
    (partial / "half-written").write_bytes(b"x")
    ImageStore(tmp_path / "ImageStoreContent")
    assert not partial.exists()


async def test_a_folder_being_provisioned_cannot_be_deleted(store: ImageStore) -> None:
    await store.put_file("A/Pkg/x.txt", chunks(b"x"))
    await store.put_file("B/y.txt", chunks(b"y"))
    with store.in_use(store.package_folder("A")):
        for busy in ("A", "A/Pkg", "A/Pkg/x.txt"):
            with pytest.raises(ConflictError, match="is being provisioned") as refused:
                await store.delete(busy)
            assert refused.value.code == "FABRIC_E_OPERATION_NOT_COMPLETE"
        await store.delete("B")  # elsewhere: free
    await store.delete("A")
    assert tree(store.root) == []
