"""The one re-ranking kernel (numpy only): used by the index, the embedder and the evaluation.

* :func:`l2n` — row L2-normalisation (float64 norms, float32 result), the library's only one;
  :func:`combine_scales` — ``l2n(Σ_s v_s)`` of the same images' vectors at several scales.
* :func:`top_k` — neighbours by cosine, ties by the lower id; :func:`weights` — ``max(s, 0)^α``;
  :func:`expand` — ``l2n(x + Σ w_i x_i)``, the one formula αQE and DBA share.
* :func:`aqe` (query side) and :func:`dba` / :class:`DbaState` (database side, incremental, with
  :meth:`DbaState.left_out` for leave-one-out); :class:`Rerank` the settings, at most
  :data:`MAX_RERANK_K` neighbours.
* :class:`NeighbourGraph` — the collection's kNN graph (ids, ``I``, ``D``), the one shape DBA,
  diffusion and near-duplicate candidates read; :func:`knn_graph` builds it exactly.
* :func:`reranked_scores` — αQE / αQE + DBA scores under the strict evaluation protocol.
* :class:`Diffusion` the diffusion settings (parameters declared in :data:`DIFFUSION_PARAMS`);
  :func:`diffusion_ranking` the one diffusion kernel a search calls (shortlist grown through the
  graph, mutual kNN affinity, conjugate gradient); :func:`diffused_rankings` the same under the
  strict evaluation protocol; :func:`without` a graph with some ids removed from its rows.
"""

from retrieval.rerank._dba import DbaState, dba
from retrieval.rerank._diffused import diffused_rankings, without
from retrieval.rerank._diffusion import diffusion_ranking
from retrieval.rerank._expansion import aqe
from retrieval.rerank._graph import NeighbourGraph, knn_graph
from retrieval.rerank._neighbours import expand, top_k, weights
from retrieval.rerank._normalize import combine_scales, l2n
from retrieval.rerank._protocol import reranked_scores
from retrieval.rerank._settings import DIFFUSION_PARAMS, MAX_RERANK_K, Diffusion, Rerank

__all__ = [
    "DIFFUSION_PARAMS",
    "MAX_RERANK_K",
    "DbaState",
    "Diffusion",
    "NeighbourGraph",
    "Rerank",
    "aqe",
    "combine_scales",
    "dba",
    "diffused_rankings",
    "diffusion_ranking",
    "expand",
    "knn_graph",
    "l2n",
    "reranked_scores",
    "top_k",
    "weights",
    "without",
]
