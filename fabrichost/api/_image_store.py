"""Service Fabric's native image store over REST: upload, list and delete content.

``PUT /ImageStore/{path}`` stores the body as a file (streamed to disk, at most
``MAX_FILE_BYTES``); ``PUT /ImageStore/{folder}/_.dir`` with no body marks a folder as uploaded,
as sfctl's ``application upload`` does after each folder's files. ``GET /ImageStore`` and ``GET
/ImageStore/{path}`` answer SF's ImageStoreContent JSON (``StoreFiles``, ``StoreFolders``);
``DELETE /ImageStore/{path}`` removes a file or a folder. The paths' rules and the files are
the agent's (:class:`fabrichost.agent.ImageStore`); this module only speaks HTTP.

Upload sessions (``/ImageStore/$/UploadChunk``, ``CommitUploadSession``, ``GetUploadSession``,
``DeleteUploadSession``), ``Copy``, ``FolderSize`` and ``Info`` are not built: a path with a
``$`` segment is answered 501 naming the operation.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from fabrichost.agent import MAX_FILE_BYTES
from fabrichost.api._body import read_body, stream_body
from fabrichost.errors import ApiError, NotSupportedError, TooLargeError

if TYPE_CHECKING:
    from starlette.requests import Request

    from fabrichost.agent import ImageStore, StoreListing

log = logging.getLogger(__name__)

FOLDER_MARKER = "_.dir"


def image_store_content(listing: StoreListing) -> dict[str, Any]:
    """SF's ImageStoreContent: sizes and counts as strings, as Service Fabric sends them."""
    return {
        "StoreFiles": [
            {
                "StoreRelativePath": f.path,
                "FileSize": str(f.size),
                "ModifiedDate": datetime.fromtimestamp(f.modified, UTC)
                .isoformat()
                .replace("+00:00", "Z"),
            }
            for f in listing.files
        ],
        "StoreFolders": [
            {"StoreRelativePath": d.path, "FileCount": str(d.file_count)} for d in listing.folders
        ],
    }


def _refuse_operations(path: str) -> None:
    """A ``$`` segment names an image store operation; fabrichost builds none of them."""
    segments = path.split("/")
    if "$" in segments:
        operation = "/".join(segments[segments.index("$") + 1 :]) or "(none)"
        raise NotSupportedError(
            f"the image store operation {operation!r} is not built in fabrichost; upload "
            "each file with PUT /ImageStore/{path} (what `sfctl application upload` does)"
        )


class ImageStoreRoutes:
    """The route handlers of one agent's image store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    async def content(self, request: Request) -> Any:
        """``/ImageStore/{path}``: one route for its methods, so a 405 lists them all."""
        handler = {
            "GET": self.get,
            "HEAD": self.get,  # starlette answers HEAD with the GET handler, without the body
            "PUT": self.put,
            "DELETE": self.delete,
            "POST": self.post,
        }
        return await handler[request.method](request)

    async def root(self, request: Request) -> Any:
        return image_store_content(self.store.listing(""))

    async def get(self, request: Request) -> Any:
        path = request.path_params["path"]
        _refuse_operations(path)
        return image_store_content(self.store.listing(path))

    async def put(self, request: Request) -> Any:
        path = request.path_params["path"]
        _refuse_operations(path)
        if path.rsplit("/", 1)[-1] == FOLDER_MARKER:
            try:
                await read_body(request, limit=0, what="a folder marker's body")
            except TooLargeError:
                raise ApiError(
                    f"image store path {path!r}: {FOLDER_MARKER!r} marks an uploaded folder "
                    "and takes no body; it cannot name a file"
                ) from None
            self.store.mark_folder(path)
            return {}
        what = f"image store file {path!r}"
        try:
            await self.store.put_file(path, stream_body(request, limit=MAX_FILE_BYTES, what=what))
        except ClientDisconnect:
            # The client went away mid-upload: the store has dropped the partial file, and
            # there is no one to answer.
            log.info("upload of %s cut short: the client disconnected", path)
            return Response(status_code=400)
        return {}

    async def delete(self, request: Request) -> Any:
        path = request.path_params["path"]
        _refuse_operations(path)
        await self.store.delete(path)
        return {}

    async def post(self, request: Request) -> Any:
        path = request.path_params["path"]
        _refuse_operations(path)
        raise ApiError(f"POST is not an image store operation on {path!r}: use PUT, GET or DELETE")
