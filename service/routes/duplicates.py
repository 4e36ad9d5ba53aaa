"""``GET /duplicates``: paginated near-duplicate groups (``POST /images`` reports its own).

A page looks at no more than :data:`SCAN` images in id order from ``cursor`` (bounded work per
request, run in the inference pool) and returns up to ``limit`` groups whose smallest id lies
there; ``next_cursor`` continues, ``null`` means the end. A page may hold fewer than ``limit``
groups, even none, and still have a ``next_cursor``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from retrieval import Collection
from retrieval.index import (
    DEFAULT_LAYOUT_THRESHOLD,
    DEFAULT_THRESHOLD,
    DuplicateGroup,
    DuplicateRule,
    duplicate_page,
)
from service.deps import CollectionDep, StateDep
from service.paths import PathView
from service.schemas import DuplicateOut, DuplicatesResponse, GroupOut, error_responses, file_url

__all__ = ["router"]

SCAN = 2000
MAX_LIMIT = 100

router = APIRouter()


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


@router.get("/duplicates", response_model=DuplicatesResponse, responses=error_responses(422, 503))
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
