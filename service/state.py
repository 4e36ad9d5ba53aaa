"""What one app instance holds (on ``app.state.service``; :mod:`service.deps` hands it out).

The collection (index + backbone) is opened by :func:`load_collection` in a thread started by the
lifespan, so ``/healthz`` answers while the weights and the index load and ``/readyz`` says 503
until they are there. With writes enabled the server opens the index for writing (it then owns it)
and first removes what killed writes left in the uploads folder; without, it opens it read-only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from retrieval import Collection, open_collection
from retrieval.index import ImageIndex, KnowsSources, materialise_index, sweep_files
from service.http.inference import InferencePool
from service.http.metrics import Metrics
from service.paths import PathView
from service.settings import Settings
from service.thumbnails import ThumbnailCache

__all__ = ["ServiceState", "load_collection"]

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: Settings
    pool: InferencePool
    metrics: Metrics = field(default_factory=Metrics)
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    collection: Collection | None = None
    load_error: str | None = None
    paths: PathView = field(default_factory=lambda: PathView(""))

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceState:
        return cls(settings, InferencePool(settings.workers, settings.queue_depth),
                   thumbnails=ThumbnailCache(settings.thumbnail_cache_bytes))

    @property
    def upload_roots(self) -> tuple[str, ...]:
        """The roots folders are named in besides the indexed one: the uploads folder."""
        return (str(self.settings.uploads_dir.resolve()),)

    def loaded(self, collection: Collection) -> None:
        """Serve ``collection`` (and show paths relative to its folders)."""
        index = collection.index
        self.paths = PathView(str(self.settings.uploads_dir.resolve()),
                              index.images_root if isinstance(index, KnowsSources) else None,
                              self.settings.absolute_paths)
        self.collection = collection


def load_collection(settings: Settings) -> Collection:
    """Open the index and rebuild its embedder (blocking: torch, weights, FAISS)."""
    weights = str(settings.weights) if settings.weights is not None else None
    if settings.store_uri and settings.collection:
        materialise_index(settings.store_uri, settings.collection, settings.index_dir)
    collection = open_collection(settings.index_dir, device=settings.device, weights_file=weights,
                                 allow_download=settings.allow_download,
                                 read_only=not settings.writes_enabled,
                                 precision=settings.precision, images=None,
                                 engine_cache=settings.engine_cache)
    try:
        collection.index.set_search_params(nprobe=settings.nprobe, ef_search=settings.ef_search)
        if settings.writes_enabled and isinstance(collection.index, ImageIndex):
            sweep_files(collection.index, settings.uploads_dir)  # Milvus keeps no uploads index
    except BaseException:
        collection.close()
        raise
    log.info("serving %s (%s): %d images, d=%d, search params %s", settings.index_dir,
             "writable" if settings.writes_enabled else "read-only, following the store",
             collection.index.count, collection.manifest.dim,
             collection.index.search_params or "faiss defaults")
    return collection
