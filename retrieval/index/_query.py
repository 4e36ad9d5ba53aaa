"""Searching an index with the re-ranking its manifest asks for: αQE on top of FAISS (and DBA).

A search returns the window ``offset … offset + k`` of the ranking (so a page is the tail of the
search for ``k + offset``), without the hits scoring below ``min_score``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from retrieval._arrays import as_k, as_matrix
from retrieval.errors import ConfigError
from retrieval.index._filters import RecordFilter, matching_ids
from retrieval.index._graph_search import diffused_hits
from retrieval.index._manifest import Manifest
from retrieval.index._protocol import AugmentsVectors, IndexStore
from retrieval.index._records import Hit
from retrieval.rerank import Diffusion, Rerank, aqe

__all__ = ["diffusion_of", "search_hits", "similar_hits"]


def search_hits(index: IndexStore, xq: npt.ArrayLike, k: int, *, qe_k: int | None = None,
                qe_alpha: float | None = None, exclude: int | None = None, offset: int = 0,
                min_score: float | None = None, where: RecordFilter | None = None,
                diffusion: Diffusion | bool | str | None = None) -> list[list[Hit]]:
    """Hits of each query row, best first, after αQE with ``qe_k`` neighbours (None: the
    manifest's default, 0: none). The neighbours are the vectors FAISS holds (DBA-augmented
    when the index has DBA), as in the evaluation. ``exclude`` is an id left out of the
    neighbours and of the results (a stored image searching for its look-alikes). The first
    ``offset`` hits are skipped, and hits scoring below ``min_score`` (read as a float32, the
    scores' precision) dropped. With ``where``, only the images it matches are searched (and
    serve as αQE neighbours). ``diffusion``: a
    :class:`Diffusion` re-ranks by diffusion on the store's kept graph (after αQE), True the
    manifest's (or the default) settings, False none, None the manifest's default, a text as
    :func:`diffusion_of` reads it."""
    k, offset = as_k(k), _offset(offset)
    # scores are float32: a threshold copied from a printed score keeps that hit
    min_score = None if min_score is None else float(np.float32(min_score))
    among = matching_ids(index, where) if where is not None and where.active else None
    m = index.manifest
    rr = Rerank(qe_k=m.qe_k if qe_k is None else qe_k,
                qe_alpha=m.qe_alpha if qe_alpha is None else qe_alpha)
    queries = as_matrix(xq, index.d, name="xq")
    extra = 0 if exclude is None else 1
    if rr.qe_k:
        scores, labels = index.search(queries, rr.qe_k + extra, ids=among)
        keep = labels != exclude if exclude is not None else np.ones_like(labels, dtype=bool)
        rows = [(lab[kp][:rr.qe_k], sc[kp][:rr.qe_k])
                for lab, sc, kp in zip(labels, scores, keep, strict=True)]
        neighbours = np.stack([_padded(index, lab, rr.qe_k) for lab, _ in rows])
        sims = np.stack([np.pad(np.where(lab >= 0, sc, -np.inf), (0, rr.qe_k - len(sc)),
                                constant_values=-np.inf) for lab, sc in rows])
        queries = aqe(queries, neighbours, sims, rr.qe_alpha)
    settings = diffusion_of(m, diffusion)
    if settings is not None:
        hits = diffused_hits(index, queries, k, settings, exclude=exclude, among=among,
                             offset=offset)
        return [[h for h in row if min_score is None or h.score >= min_score] for row in hits]
    hits = (index.search_records(queries, offset + k + extra) if among is None
            else _with_records(index, *index.search(queries, offset + k + extra, ids=among)))
    return [[h for h in [h for h in row if h.id != exclude][offset:offset + k]
             if min_score is None or h.score >= min_score] for row in hits]


def diffusion_of(m: Manifest, asked: Diffusion | bool | str | None) -> Diffusion | None:
    """The diffusion a search runs: ``asked``, or the manifest's default (see search_hits); a
    text is :meth:`Diffusion.parse`'s (``on``, ``off``, ``k=30,...`` over the manifest's)."""
    if isinstance(asked, Diffusion):
        return asked
    if isinstance(asked, str):
        return Diffusion.parse(asked, base=m.diffusion_settings)
    if asked is None:
        return m.diffusion_settings
    return (m.diffusion_settings or Diffusion()) if asked else None


def _with_records(index: IndexStore, scores: npt.NDArray[np.float32],
                  labels: npt.NDArray[np.int64]) -> list[list[Hit]]:
    records = {r.id: r for r in index.records(np.unique(labels[labels >= 0]).tolist())}
    return [[Hit(int(i), float(s), records[int(i)]) for s, i in zip(sc, lab, strict=True)
             if int(i) in records] for sc, lab in zip(scores, labels, strict=True)]


def _offset(offset: int) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or offset < 0:
        raise ConfigError(f"offset must be a non-negative integer, got {offset!r}")
    return int(offset)


def _padded(index: IndexStore, labels: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.float32]:
    valid = [int(i) for i in labels if i >= 0]
    out = np.zeros((k, index.d), dtype=np.float32)
    if valid:  # what the search compared against: DBA-augmented where the store keeps DBA
        out[:len(valid)] = (index.indexed_vectors(valid) if isinstance(index, AugmentsVectors)
                            else index.stored_vectors(valid))
    return out


def similar_hits(index: IndexStore, image_id: int, k: int, *, qe_k: int | None = None,
                 qe_alpha: float | None = None, offset: int = 0,
                 min_score: float | None = None, where: RecordFilter | None = None,
                 diffusion: Diffusion | bool | str | None = None) -> list[Hit]:
    """The images most like stored image ``image_id`` (itself left out), from its stored vector:
    nothing is decoded or embedded. :class:`NotFoundError` for an unknown id."""
    xq = index.stored_vectors([image_id])
    return search_hits(index, xq, k, qe_k=qe_k, qe_alpha=qe_alpha, exclude=image_id,
                       offset=offset, min_score=min_score, where=where, diffusion=diffusion)[0]
