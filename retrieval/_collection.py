"""An index directory together with the embedder its manifest describes.

This is where the two halves meet: :func:`create_collection` fits what needs fitting, writes the
fitted state and the manifest, and creates the index; :func:`open_collection` rebuilds exactly the
embedder the manifest describes (refusing weights that are not the ones the index was built with)
and opens the index. Both the CLI and the service go through here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from retrieval._atomic import write_atomic
from retrieval._engines import (
    ENGINES_DIR,
    attach_index_int8,
    index_engine_ready,
    save_index_engine,
    user_engines_folder,
)
from retrieval.errors import ArtifactError, ConfigError, WeightsError
from retrieval.features import (
    Embedder,
    EmbedderConfig,
    Failure,
    Probe,
    Source,
    check_query_precision,
    cpu_features,
    resolve_precision,
)
from retrieval.index import IndexStore, StoreSpec, VectorIndex, create_index, open_index
from retrieval.index._manifest import Manifest, library_versions
from retrieval.rerank import Diffusion, Rerank

__all__ = [
    "Collection",
    "check_index_plan",
    "config_from_manifest",
    "create_collection",
    "fit_embedder",
    "manifest_for",
    "open_collection",
]

log = logging.getLogger(__name__)

_RANDOM = re.compile(r"random:seed=(-?\d+)")
_IVF = re.compile(r"IVF\d+")
POINTS_PER_CENTROID = 39  # faiss's k-means warns below this many training points per list


@dataclass
class Collection:
    """An open index and the embedder that makes queries comparable to it."""

    path: Path
    index: IndexStore
    embedder: Embedder

    @property
    def manifest(self) -> Manifest:
        return self.index.manifest

    def close(self) -> None:
        self.index.close()


def manifest_for(
    embedder: Embedder, *, factory: str, weights_file: str | None,
    search_params: Mapping[str, int] | None = None, rerank: Rerank | None = None,
    graph_k: int = 0,
    diffusion: Diffusion | None = None, preset: str | None = None,
) -> Manifest:
    """The manifest describing vectors made by a fitted ``embedder``.

    ``rerank`` sets the default αQE of searches and the DBA of the indexed vectors; ``graph_k``
    the neighbours per image the index keeps (the kept graph diffusion reads; DBA keeps its own
    ``dba_k`` anyway); ``diffusion`` the default diffusion of searches (None: off); ``preset``
    names the preset the settings came from (information only).

    ``search_params`` (``nprobe``, ``ef_search``) are stored and applied whenever the index is
    opened; by default an IVF index probes :data:`~retrieval.index.DEFAULT_NPROBE` lists (the
    store adds that default when it creates the index).
    """
    c = embedder.config
    wanted = dict(search_params or {})
    rr = rerank or Rerank()
    return Manifest(
        backbone=c.backbone,
        weights=embedder.weights_id,
        weights_file=weights_file,
        max_side=c.image_side,
        scales=c.scales,
        pooling=c.pooling,
        pooling_params=dict(c.pooling_params),
        whiten=c.whiten,
        whiten_dim=embedder.whitening.dim if embedder.whitening is not None else None,
        dim=embedder.dim,
        faiss_factory=factory,
        search_params=wanted,
        qe_k=rr.qe_k, qe_alpha=rr.qe_alpha, dba_k=rr.dba_k, dba_alpha=rr.dba_alpha,
        graph_k=graph_k, versions=library_versions(),
        precision=embedder.precision,
        diffusion=None if diffusion is None else diffusion.to_dict(),
        preset=preset,
    )


def config_from_manifest(m: Manifest) -> EmbedderConfig:
    """The embedder configuration a manifest records (the inverse of :func:`manifest_for`)."""
    seed = 0
    weights = m.weights_file or m.weights
    if m.weights.startswith("imagenet:"):
        weights = "imagenet"
    elif match := _RANDOM.fullmatch(m.weights):
        weights, seed = "random", int(match.group(1))
    return EmbedderConfig(
        backbone=m.backbone, weights=weights, max_side=m.max_side, pooling=m.pooling,
        pooling_params=m.pooling_params, whiten=m.whiten, whiten_dim=m.whiten_dim, seed=seed,
        scales=m.scales,
    )


def fit_embedder(
    embedder: Embedder, sources: Iterable[tuple[str, Source]], *, batch_size: int | None = None,
    workers: int | None = None,
) -> int:
    """Extract feature maps of the training ``sources`` and fit the embedder; returns how many."""
    maps: list[torch.Tensor] = []
    scaled: list[list[torch.Tensor]] = []
    for item in embedder.extract(sources, batch_size=batch_size, workers=workers):
        if isinstance(item, Failure):
            log.warning("training image skipped: %s", item.error)
        else:
            maps.extend(item.fmaps)
            scaled.extend(item.per_image())
    embedder.fit(maps, scaled)
    return len(maps)


def check_index_plan(
    dim: int, factory: str, *, images: int | None = None,
    metric: str = "inner_product", where: str = "",
) -> None:
    """Refuse, before anything is created or embedded, a FAISS index that cannot work.

    :class:`ConfigError` when faiss cannot build ``factory`` for ``dim``, or when ``images``
    (how many will be indexed, counted in ``where``) are too few for faiss to train the type at
    all: an IVF with more lists than images is refused with a smaller one suggested, not trained
    on what there is (that would silently be another index than the one asked for).
    """
    vectors = VectorIndex.new(dim, factory, metric)
    need = vectors.min_training_points()
    if images is None or images >= need:
        return
    found = f"{images} images were found{f' under {where}' if where else ''}"
    raise ConfigError(f"--faiss {factory} needs at least {need} images to train "
                      f"({POINTS_PER_CENTROID * need} recommended) and {found}; choose "
                      f"{_smaller_factory(dim, factory, metric, images)}")


def _smaller_factory(dim: int, factory: str, metric: str, images: int) -> str:
    """What to suggest instead of ``factory`` for ``images`` vectors: fewer IVF lists, or Flat."""
    lists = images // POINTS_PER_CENTROID
    if lists >= 2 and _IVF.search(factory):
        nlist = 1 << (lists.bit_length() - 1)
        smaller = _IVF.sub(f"IVF{nlist}", factory, count=1)
        try:
            if VectorIndex.new(dim, smaller, metric).min_training_points() <= images:
                return f"a smaller nlist, e.g. --faiss {smaller}, or Flat (exact)"
        except ConfigError:
            pass
    return "--faiss Flat (exact, and fast enough for this many images)"


def create_collection(
    path: Path, embedder: Embedder, *, factory: str = "Flat", weights_file: str | None = None,
    search_params: Mapping[str, int] | None = None, rerank: Rerank | None = None,
    store: StoreSpec | None = None, graph_k: int = 0, diffusion: Diffusion | None = None,
    preset: str | None = None,
) -> Collection:
    """Create a new index directory for a fitted ``embedder`` (see :func:`manifest_for`).

    ``store`` says where the vectors live (default: FAISS+SQLite in the directory; or a Milvus
    collection, which also receives the manifest and the fitted state). ``graph_k`` > 0 keeps
    each image's top-k neighbours (local store only).
    """
    if not embedder.is_fitted:
        raise ConfigError("the embedder must be fitted before an index is created")
    if graph_k and store is not None and store.kind != "faiss":
        raise ConfigError(f"a kept neighbour graph (graph_k={graph_k}) needs the local store "
                          "(--store faiss); a Milvus collection keeps none")
    manifest = manifest_for(embedder, factory=factory, weights_file=weights_file,
                            search_params=search_params, rerank=rerank, graph_k=graph_k,
                            diffusion=diffusion, preset=preset)
    if store is None or store.kind == "faiss":
        check_index_plan(manifest.dim, factory, metric=manifest.metric)
    index = create_index(path, manifest, store)
    save_index_engine(path, embedder)
    blobs = embedder.state_blobs()
    index.save_state_blobs(blobs)
    if store is not None and store.kind != "faiss":  # the directory keeps a copy, as always
        for name, data in blobs.items():
            write_atomic(Path(path) / name, data)
    return Collection(path, index, embedder)


def open_collection(
    path: Path, *, device: str = "cpu", weights_file: str | None = None,
    allow_download: bool = True, precision: str | None = None, channels_last: bool = False,
    read_only: bool = False, images: int | None = 1, probe: Probe = cpu_features,
    engine_cache: Path | None = None,
) -> Collection:
    """Open an index directory and rebuild the embedder its manifest describes.

    ``read_only``: without the write lock (see :meth:`ImageIndex.open`); another process may be
    writing, and :meth:`ImageIndex.refresh` follows it.

    ``precision``: None (the default) runs the precision the index was embedded in, as its
    manifest records (fp32 where that one cannot run here, e.g. int8 off the CPU); a choice (or
    ``auto``, resolved for ``images`` to embed — None: a long-lived server — and this CPU, see
    :func:`~retrieval.features.resolve_precision`) overrides it. A precision whose measured loss
    against the index's is not negligible is refused. ``channels_last`` is a runtime option of
    the backbone. int8 loads a stored engine or calibrates one on the index's stored files
    (:mod:`retrieval._engines`), cached in the index's ``engines/`` by a writer and, by a
    read-only opener, in ``engine_cache`` (a user cache folder; None: not cached) — a read-only
    open never writes into the index.
    """
    manifest = Manifest.load(path)
    config = config_from_manifest(manifest)
    cache = (Path(path) / ENGINES_DIR if not read_only
             else user_engines_folder(engine_cache, path) if engine_cache is not None else None)
    ready = index_engine_ready(path, manifest.backbone, manifest.weights, cache)
    chosen = _precision(precision, manifest.precision, device, images=images, int8_ready=ready,
                        probe=probe)
    check_query_precision(manifest.precision, chosen)
    embedder = Embedder.create(config, device=device, weights_file=weights_file,
                               allow_download=allow_download, precision=chosen,
                               channels_last=channels_last)
    if embedder.weights_id != manifest.weights:
        raise WeightsError(
            f"weights {weights_file or config.weights} are {embedder.weights_id}, but "
            f"the index at {path} was built with {manifest.weights}"
        )
    index = open_index(path, expect=manifest, read_only=read_only)
    try:
        embedder.load_state_blobs(index.load_state_blobs(), origin=str(path))
        if embedder.dim != manifest.dim:
            raise ArtifactError(f"{path}: fitted state gives dimension {embedder.dim}, "
                                f"manifest says {manifest.dim}")
        if chosen == "int8":
            attach_index_int8(embedder, index, path, cache=cache)
    except BaseException:
        index.close()
        raise
    return Collection(path, index, embedder)


def _precision(asked: str | None, built: str, device: str, *, images: int | None,
               int8_ready: bool, probe: Probe) -> str:
    """The precision to run: ``asked``, or (None) the index's where it can run here."""
    if asked is not None:
        return resolve_precision(asked, device, images=images, int8_ready=int8_ready,
                                 probe=probe)
    try:
        return resolve_precision(built, device, images=images, int8_ready=int8_ready,
                                 probe=probe)
    except ConfigError as exc:
        log.warning("the index was embedded in %s, which cannot run here (%s); running fp32",
                    built, exc)
        return "fp32"
