"""Response bodies of the HTTP API (they are the OpenAPI schema's components)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "AddResponse",
    "AddedImage",
    "BatchEntry",
    "BatchResponse",
    "DeleteResponse",
    "DuplicateOut",
    "DuplicatesResponse",
    "ErrorBody",
    "GroupOut",
    "Health",
    "ImageOut",
    "ImagesPage",
    "ManifestSummary",
    "Ready",
    "SearchHit",
    "SearchResponse",
    "Stats",
    "error_responses",
    "file_url",
]


PATH_HELP = ("relative to the indexed folder, or to the uploads folder for uploaded images "
             "(the file name alone for anything else); absolute with CBIR_ABSOLUTE_PATHS")


def file_url(image_id: int) -> str:
    """Where the image file of ``image_id`` is served."""
    return f"/images/{image_id}/file"


class ErrorBody(BaseModel):
    """Every error response: a stable machine-readable code and a human-readable detail."""

    error: str = Field(examples=["invalid_image"])
    detail: Any = Field(examples=["upload.jpg: truncated or corrupt image data"])


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error statuses (``responses=``), each with an :class:`ErrorBody`."""
    return {status: {"model": ErrorBody} for status in statuses}


class SearchHit(BaseModel):
    id: int
    score: float = Field(description="similarity (inner product of unit vectors): higher is closer")
    path: str = Field(description=PATH_HELP)
    url: str = Field(description="the image itself: /images/{id}/file")


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


class Stats(BaseModel):
    count: int = Field(description="images stored")
    searchable: int = Field(description="vectors searchable now")
    dimension: int
    index_size_bytes: int
    random_weights: bool = Field(description="the network is untrained: results are meaningless")
    writes_enabled: bool = Field(description="POST/DELETE /images are available (API key set)")
    max_k: int
    max_upload_bytes: int
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
