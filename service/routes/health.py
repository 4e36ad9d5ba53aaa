"""Operational routes: ``/healthz``, ``/readyz``, ``/stats``, ``/metrics`` (and its gauges)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from retrieval import StoreTimeoutError, StoreUnavailableError
from service.deps import CollectionDep, StateDep
from service.errors import RETRY_AFTER_S, ServiceError
from service.http.metrics import CONTENT_TYPE, Gauge
from service.schemas import Health, ManifestSummary, Ready, Stats, error_responses
from service.state import ServiceState

__all__ = ["gauges", "router"]

router = APIRouter()


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (the index may still be loading)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=error_responses(503))
def readyz(collection: CollectionDep) -> Ready:
    """The index and the model are loaded and the store answers: searches can be served (503
    with the reason otherwise: ``not_ready`` while loading, ``store_unavailable`` naming what the
    vector store said)."""
    try:
        count = collection.index.count
    except (StoreUnavailableError, StoreTimeoutError) as exc:
        raise ServiceError(503, "store_unavailable", f"the vector store is not ready: {exc}",
                           {"Retry-After": str(RETRY_AFTER_S)}) from exc
    return Ready(status="ready", count=count)


@router.get("/stats", response_model=Stats, responses=error_responses(503))
def stats(state: StateDep, collection: CollectionDep) -> Stats:
    """Counts, the manifest, the size on disk; ``random_weights`` means results are meaningless."""
    index = collection.index
    m = index.manifest
    manifest = ManifestSummary(
        backbone=m.backbone, weights=m.weights, max_side=m.max_side, pooling=m.pooling,
        pooling_params=dict(m.pooling_params), whiten=m.whiten, whiten_dim=m.whiten_dim,
        dim=m.dim, faiss_factory=m.faiss_factory, metric=m.metric, created_at=m.created_at,
        search_params=index.search_params, scales=list(m.scales), qe_k=m.qe_k,
        qe_alpha=m.qe_alpha, dba_k=m.dba_k, dba_alpha=m.dba_alpha,
        diffusion=None if m.diffusion is None else dict(m.diffusion), preset=m.preset,
        precision=m.precision)
    settings = state.settings
    return Stats(count=index.count, searchable=index.ntotal, dimension=m.dim,
                 index_size_bytes=index.size_on_disk(),
                 random_weights=m.weights.startswith("random:"),
                 writes_enabled=settings.writes_enabled, max_k=settings.max_k,
                 max_upload_bytes=settings.max_upload_bytes,
                 precision=collection.embedder.precision, manifest=manifest)


def gauges(state: ServiceState) -> list[Gauge]:
    """What ``/metrics`` reads at every scrape."""
    pool, collection = state.pool, state.collection
    index = collection.index if collection is not None else None
    return [
        Gauge("ready", "1 when the index and the model are loaded.", float(index is not None)),
        Gauge("inference_workers", "Inference threads.", pool.workers),
        Gauge("inference_capacity", "Requests admitted at most (workers + queue depth).",
              pool.capacity),
        Gauge("inference_admitted", "Inference requests running or queued.", pool.admitted),
        Gauge("inference_queue_depth", "Inference requests waiting for a thread.", pool.waiting),
        Gauge("index_images", "Images stored in the index.", index.count if index else 0),
        Gauge("index_vectors", "Vectors searchable now.", index.ntotal if index else 0),
        Gauge("index_size_bytes", "Bytes of the index directory's files.",
              index.size_on_disk() if index else 0),
        Gauge("thumbnail_cache_bytes", "Bytes of cached thumbnails.", state.thumbnails.size_bytes),
    ]


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}},
                             "description": "Prometheus text exposition"}})
def metrics(state: StateDep) -> Response:
    """Prometheus metrics: requests by route and status, latency, queue depth, index size,
    and the process's CPU, memory and open files."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
