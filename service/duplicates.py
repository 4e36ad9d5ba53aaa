"""``GET /duplicates`` (paginated near-duplicate groups) and what ``POST /images`` reports.

A page looks at no more than :data:`SCAN` images in id order from ``cursor`` (bounded work per
request, run in the inference pool) and returns up to ``limit`` groups whose smallest id lies
there; ``next_cursor`` continues, ``null`` means the end. A page may hold fewer than ``limit``
groups, even none, and still have a ``next_cursor``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from retrieval import Collection
from retrieval.index import (
    DEFAULT_LAYOUT_THRESHOLD,
    DEFAULT_THRESHOLD,
    DuplicateGroup,
    DuplicatePair,
    DuplicateRule,
    duplicate_page,
    duplicates_of,
)
from service.paths import PathView
from service.schemas import ErrorBody, file_url
from service.state import CollectionDep, StateDep

__all__ = ["DuplicateOut", "reported_duplicates", "router"]

SCAN = 2000
MAX_LIMIT = 100

router = APIRouter()


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



def _group_out(group: DuplicateGroup, paths: dict[int, str]) -> GroupOut:
    scores = group.member_scores()
    return GroupOut(score=group.score, truncated=group.truncated, members=[
        DuplicateOut(id=m, score=scores[m], path=paths.get(m, ""), url=file_url(m))
        for m in group.members])


def _page(collection: Collection, rule: DuplicateRule, cursor: int, limit: int,
          view: PathView) -> DuplicatesResponse:
    page = duplicate_page(collection.index, rule, cursor=cursor, limit=limit, scan=SCAN)
    ids = sorted({m for g in page.groups for m in g.members})
    paths = {r.id: view.show(r.path) for r in collection.index.records(ids)}
    return DuplicatesResponse(groups=[_group_out(g, paths) for g in page.groups],
                              next_cursor=page.next_cursor, scanned=page.scanned,
                              threshold=rule.threshold, layout_threshold=rule.layout_threshold)


_ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 503: {"model": ErrorBody}}


@router.get("/duplicates", response_model=DuplicatesResponse, responses=_ERRORS)
async def duplicates(
    state: StateDep,
    collection: CollectionDep,
    threshold: Annotated[float, Query(ge=-1.0, le=1.0, description="global cosine of "
                                      "candidates")] = DEFAULT_THRESHOLD,
    layout_threshold: Annotated[float, Query(ge=-1.0, le=1.0, description="layout cosine "
                                             "of duplicates")] = DEFAULT_LAYOUT_THRESHOLD,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="groups per page")] = 20,
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1, description="next_cursor of the "
                                 "previous page (0: the start)")] = 0,
) -> DuplicatesResponse:
    """Groups of near-duplicate images (copies: resized, re-encoded, lightly cropped,
    brightened, greyscale), each best first; paginated by ``cursor``."""
    rule = DuplicateRule(threshold=threshold, layout_threshold=layout_threshold)
    return await state.pool.run(partial(_page, collection, rule, cursor, limit, state.paths))


def reported_duplicates(collection: Collection, ids: list[int],
                        view: PathView) -> list[list[DuplicateOut]]:
    """For each of ``ids`` (just added), its near-duplicates among the images stored before."""
    found = duplicates_of(collection.index, ids, exclude=ids)
    others = {(p.b if p.a == i else p.a) for i in ids for p in found[i]}
    paths = {r.id: view.show(r.path) for r in collection.index.records(sorted(others))}

    def out(i: int, p: DuplicatePair) -> DuplicateOut:
        j = p.b if p.a == i else p.a
        return DuplicateOut(id=j, score=p.score, path=paths.get(j, ""), url=file_url(j))

    return [[out(i, p) for p in found[i]] for i in ids]
