"""Response bodies of the HTTP API (they are the OpenAPI schema's components)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from retrieval import ImageRecord
from service.paths import PathView

__all__ = [
    "AddResponse",
    "AddedImage",
    "BatchEntry",
    "BatchResponse",
    "DeleteResponse",
    "DuplicateOut",
    "DuplicatesResponse",
    "ErrorBody",
    "ExplanationOut",
    "FolderOut",
    "FoldersResponse",
    "GroupOut",
    "Health",
    "ImageOut",
    "ImagePatch",
    "ImagesPage",
    "ManifestSummary",
    "Ready",
    "SearchHit",
    "SearchResponse",
    "Stats",
    "TagOut",
    "TagText",
    "TagsResponse",
    "error_responses",
    "file_url",
    "image_out",
]


FOLDER_HELP = ("the file's directory relative to the indexed folder, or to the uploads folder for "
               "uploaded images (\"\": that folder itself; null: stored elsewhere); what "
               "?folder= matches")
PATH_HELP = ("relative to the indexed folder, or to the uploads folder for uploaded images "
             "(the file name alone for anything else); absolute with CBIR_ABSOLUTE_PATHS")


def file_url(image_id: int) -> str:
    """Where the image file of ``image_id`` is served."""
    return f"/images/{image_id}/file"


def image_out(record: ImageRecord, paths: PathView) -> ImageOut:
    """The body of a stored record, its path shown as ``paths`` shows it."""
    return ImageOut(id=record.id, path=paths.show(record.path), sha256=record.sha256,
                    width=record.width, height=record.height, added_at=record.added_at,
                    url=file_url(record.id), tags=list(record.tags),
                    folder=paths.folder(record.path))


class ErrorBody(BaseModel):
    """Every error response: a stable machine-readable code and a human-readable detail."""

    error: str = Field(examples=["invalid_image"])
    detail: Any = Field(examples=["upload.jpg: truncated or corrupt image data"])


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error statuses (``responses=``), each with an :class:`ErrorBody`."""
    return {status: {"model": ErrorBody} for status in statuses}


class SearchHit(BaseModel):
    id: int
    score: float = Field(description="similarity: the inner product of unit vectors, or with "
                         "diffusion its ranking value; higher is closer")
    path: str = Field(description=PATH_HELP)
    url: str = Field(description="the image itself: /images/{id}/file")
    tags: list[str] = Field(default=[], description="the image's tags, sorted")
    folder: str | None = Field(default=None, description=FOLDER_HELP)


class SearchResponse(BaseModel):
    results: list[SearchHit] = Field(description="best first")
    took_ms: float


class BatchEntry(BaseModel):
    """One query of a batch: its results, or the error its image alone met."""

    name: str = Field(description="the uploaded file's name")
    results: list[SearchHit] | None = Field(default=None, description="best first; null when "
                                            "this image failed")
    status: int | None = Field(default=None, description="the status this image alone would "
                               "have answered (400, 415, 422); null when it succeeded")
    error: str | None = Field(default=None, examples=["invalid_image"],
                              description="as ErrorBody's error; null when it succeeded")
    detail: str | None = Field(default=None, description="as ErrorBody's detail")


class BatchResponse(BaseModel):
    queries: list[BatchEntry] = Field(description="one per uploaded image, in upload order")
    took_ms: float


class ImageOut(BaseModel):
    """A stored image record."""

    id: int
    path: str = Field(description=PATH_HELP)
    sha256: str
    width: int
    height: int
    added_at: float = Field(description="seconds since the epoch (UTC)")
    url: str
    tags: list[str] = Field(default=[], description="the image's tags, sorted")
    folder: str | None = Field(default=None, description=FOLDER_HELP)


class ImagesPage(BaseModel):
    images: list[ImageOut] = Field(description="records with ids after cursor, ascending")
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: done")


class AddedImage(ImageOut):
    duplicate: bool = Field(description="true: this content was already stored, and this is the "
                            "existing record (nothing was added for this file)")


class AddResponse(BaseModel):
    added: list[AddedImage] = Field(description="one per uploaded file, in upload order")
    durable: bool = Field(description="true: committed to disk before this response was sent")
    duplicates: list[list[Any]] | None = Field(
        default=None, description="with ?report_duplicates=true: for each added image (in "
        "order), its near-duplicates stored before, best first: {id, score, path, url}")


#: a tag as the API takes it (the library checks the rest: surrounding spaces are stripped).
TagText = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                           pattern=r"^[^,\x00-\x1f\x7f]+$")]


class ImagePatch(BaseModel):
    """A change of an image's metadata: ``tags`` replaces them all, or ``add_tags`` then
    ``remove_tags`` edit them (not both ways at once). The folder is not editable: it is the
    stored file's directory (an upload's is chosen when it is added)."""

    model_config = ConfigDict(extra="forbid")

    tags: list[TagText] | None = Field(default=None, max_length=64,
                                       description="the new tags (replacing all)")
    add_tags: list[TagText] = Field(default=[], max_length=64, description="tags to add")
    remove_tags: list[TagText] = Field(default=[], max_length=64, description="tags to remove")


class FolderOut(BaseModel):
    folder: str = Field(description="relative to the indexed folder and the uploads folder "
                        "(\".\": those folders themselves); what ?folder= takes")
    images: int = Field(description="images directly in it")
    under: int = Field(description="images in it and its sub-folders (what ?folder= matches)")


class FoldersResponse(BaseModel):
    folders: list[FolderOut] = Field(description="sorted by folder; every folder holding images, "
                                     "and their parents")
    elsewhere: int = Field(description="images stored outside the indexed folder and the "
                           "uploads folder")


class TagOut(BaseModel):
    tag: str
    images: int = Field(description="images holding it")


class TagsResponse(BaseModel):
    tags: list[TagOut] = Field(description="every tag in use, sorted")


class ExplanationOut(BaseModel):
    """Why two images match: each cell's part of their similarity (the parts sum to it)."""

    id: int = Field(description="the hit (a stored image)")
    query_id: int | None = Field(description="the query's id; null for an uploaded query")
    side: str = Field(description="whose feature map the grid covers: stored (the hit) or query")
    pooling: str
    kind: str = Field(description="how the pooling is split over cells: linear (sum, avg, "
                      "spoc, crow: exact shares), winning cells (max, rmac), linear + winning "
                      "cells (mixed), power share (gem, lse: an attribution; stochastic, "
                      "softpool: exact term by term)")
    similarity: float = Field(description="the sum of the grid: the inner product of the two "
                              "descriptors (the search's score without αQE or DBA)")
    grid: list[list[float]] = Field(description="rows × columns of the feature map; cell (i, j) "
                                    "covers rows i·H/h … (i+1)·H/h of the image, columns alike")
    top_cells: list[list[int]] = Field(description="[row, column] of the fewest cells holding "
                                       "half the positive total, largest first (highlighted "
                                       "in the PNG)")
    image_size: list[int] = Field(description="[width, height] of the explained image")
    took_ms: float


class DeleteResponse(BaseModel):
    id: int
    deleted: bool
    durable: bool


class ManifestSummary(BaseModel):
    backbone: str
    weights: str
    max_side: int
    pooling: str
    pooling_params: dict[str, bool | int | float | str]
    whiten: bool
    whiten_dim: int | None
    dim: int
    faiss_factory: str
    metric: str
    created_at: str
    search_params: dict[str, int] = Field(
        description="search-time knobs in force (nprobe, ef_search): the index's, or the server's")
    scales: list[float] = Field(default=[1.0], description="image scales relative to max_side")
    qe_k: int = Field(default=0, description="default αQE neighbours of a search (0: off)")
    qe_alpha: float = 3.0
    dba_k: int = Field(default=0, description="DBA neighbours of the indexed vectors (0: off)")
    dba_alpha: float = 3.0
    diffusion: dict[str, int | float] | None = Field(
        default=None, description="default diffusion re-ranking of a search (null: off)")
    preset: str | None = Field(default=None, description="the --preset the index was built from")
    precision: str = Field(default="fp32", description="what the database was embedded in")


class Stats(BaseModel):
    count: int = Field(description="images stored")
    searchable: int = Field(description="vectors searchable now")
    dimension: int
    index_size_bytes: int
    random_weights: bool = Field(description="the network is untrained: results are meaningless")
    writes_enabled: bool = Field(description="POST/DELETE /images and PATCH /images/{id} are "
                                 "available (API key set)")
    max_k: int
    max_upload_bytes: int
    precision: str = Field(description="what this server embeds queries in (the index's unless "
                           "--precision/CBIR_PRECISION says otherwise)")
    manifest: ManifestSummary


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    count: int


class DuplicateOut(BaseModel):
    """A near-duplicate of another image."""

    id: int
    score: float = Field(description="layout cosine (global cosine for images stored without "
                                     "a layout descriptor)")
    path: str
    url: str


class GroupOut(BaseModel):
    score: float = Field(description="the best pair's score")
    members: list[DuplicateOut] = Field(description="best first; each with its best score in "
                                                    "the group")
    truncated: bool = Field(description="the group was cut at 256 members")


class DuplicatesResponse(BaseModel):
    groups: list[GroupOut] = Field(description="groups whose smallest id is after cursor")
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: done")
    scanned: int = Field(description="images looked at for this page")
    threshold: float
    layout_threshold: float
