"""What the collection holds and its metadata: ``GET /folders``, ``GET /tags`` (each with
counts) and ``PATCH /images/{id}`` (tags; metadata only: nothing is embedded again).

The counts are read from the store's own indexes (SQLite: a ``GROUP BY`` on paths and on the tags
table; Milvus: a scan of its scalar fields) in the inference pool, off the event loop.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from retrieval import Collection, ConfigError, ImageRecord
from retrieval.index import KeepsTags, TagEdit, folder_counts, tag_counts
from service.deps import AuthorizedWriter, CollectionDep, ImageId, StateDep
from service.schemas import (
    FolderOut,
    FoldersResponse,
    ImageOut,
    ImagePatch,
    TagOut,
    TagsResponse,
    error_responses,
    image_out,
)

__all__ = ["retag_image", "router"]

router = APIRouter()


@router.get("/folders", response_model=FoldersResponse, responses=error_responses(503))
async def list_folders(state: StateDep, collection: CollectionDep) -> FoldersResponse:
    """Every folder under the indexed folder or the uploads folder holding images (and their
    parents), with how many images each holds directly and in all (what ``?folder=``
    matches)."""
    found = await state.pool.run(partial(folder_counts, collection.index, state.upload_roots))
    return FoldersResponse(folders=[FolderOut(folder=f.folder, images=f.images, under=f.under)
                                    for f in found.folders], elsewhere=found.elsewhere)


@router.get("/tags", response_model=TagsResponse, responses=error_responses(503))
async def list_tags(state: StateDep, collection: CollectionDep) -> TagsResponse:
    """Every tag in use, with how many images hold it (what ``?tag=`` matches)."""
    found = await state.pool.run(partial(tag_counts, collection.index))
    return TagsResponse(tags=[TagOut(tag=t, images=n) for t, n in found.items()])


def retag_image(collection: Collection, image_id: int, patch: ImagePatch) -> ImageRecord:
    """Apply ``patch`` to image ``image_id``'s tags; its new record."""
    index = collection.index
    if not isinstance(index, KeepsTags):
        raise ConfigError("this store keeps no tags")
    edit = TagEdit.of(add=patch.add_tags, remove=patch.remove_tags, replace=patch.tags)
    if edit.empty:
        return index.get(image_id)
    return index.retag([image_id], edit)[0]


@router.patch("/images/{image_id}", response_model=ImageOut, dependencies=[AuthorizedWriter],
              responses=error_responses(401, 403, 404, 422, 503, 507))
async def patch_image(state: StateDep, collection: CollectionDep, image_id: ImageId,
                      patch: ImagePatch) -> ImageOut:
    """Change an image's tags: ``tags`` replaces them all, or ``add_tags`` / ``remove_tags``
    edit them. Durable once this answers; the image is not embedded again."""
    record = await state.pool.run(partial(retag_image, collection, image_id, patch))
    return image_out(record, state.paths)
