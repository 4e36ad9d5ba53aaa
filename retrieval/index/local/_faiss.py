"""The in-memory FAISS index of an image index, keyed by the store's image ids.

Built with ``index_factory(d, factory, metric)`` (``"Flat"``: exact inner product). How ids are
attached depends on the type, because ``IndexIDMap``'s ``remove_ids`` assumes the wrapped index
renumbers its vectors after a removal, which only the flat-code indexes do (faiss issues #1643,
#4535, #4656 report the corrupted mapping an IVF gives):

* IVF indexes (alone or behind a pre-transform such as ``PCA64,IVF1024,PQ16``) store ids in their
  inverted lists: they take the ids directly and remove natively.
* Everything else is wrapped in ``IndexIDMap2``. A leading ``IDMap,``/``IDMap2,`` in the factory
  string is ignored (we add the right wrapper ourselves).

PQ codebooks are trained without faiss's *polysemous* code reordering (``do_polysemous_training``,
on by default for ``PQ`` factories): it only serves polysemous Hamming filtering, which we never
enable, and costs seconds per sub-quantizer (minutes for ``PQ64``).

Graph indexes (``HNSW32``, ``NSG``...) cannot remove at all. For them a removal records a
*tombstone*: searches skip tombstoned ids (through a faiss ``IDSelector``, or by over-fetching
``k + #tombstones`` and filtering when the type ignores selectors), :attr:`VectorIndex.ntotal`
excludes them, the snapshot persists them, and the owner rebuilds the graph from the store
(:meth:`reset` then re-add) once :attr:`needs_compaction` says they are too many.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from itertools import pairwise

import faiss
import numpy as np
import numpy.typing as npt

from retrieval.errors import ArtifactError, ConfigError
from retrieval.index._manifest import DEFAULT_NPROBE

__all__ = ["COMPACTION_RATIO", "DEFAULT_NPROBE", "RECOMMENDED_POINTS_PER_CENTROID", "VectorIndex"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

METRIC_TYPES = {"inner_product": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
COMPACTION_RATIO = 0.25  # rebuild a graph index once this share of its vectors is tombstoned
RECOMMENDED_POINTS_PER_CENTROID = 39  # below this faiss k-means warns
SEARCH_PARAMS = {"nprobe": "nprobe", "ef_search": "efSearch"}


_FAISS_WHERE = re.compile(r"^Error in .*? at \S+:\d+: ")


def _faiss_message(exc: BaseException) -> str:
    """faiss's reason, without the C++ signature and source location it starts with."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    return _FAISS_WHERE.sub("", text.splitlines()[-1]) or text.splitlines()[-1]


def _takes_ids(index: faiss.Index) -> bool:
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return isinstance(index, faiss.IndexIVF)


def _parts(index: faiss.Index) -> Iterator[faiss.Index]:
    """``index`` and the indexes nested in it (id map, pre-transform, HNSW storage, refine)."""
    stack = [index]
    while stack:
        part = stack.pop()
        yield part
        for attr in ("index", "storage", "base_index"):
            child = getattr(part, attr, None)
            if isinstance(child, faiss.Index):
                stack.append(faiss.downcast_index(child))


def _build(d: int, factory: str, metric: str) -> faiss.Index:
    spec = factory.strip()
    for prefix in ("IDMap2,", "IDMap,"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
    try:
        index = faiss.index_factory(d, spec, METRIC_TYPES[metric])
    except RuntimeError as exc:
        raise ConfigError(f"faiss cannot build {factory!r} for d={d}: "
                          f"{_faiss_message(exc)}") from exc
    for part in _parts(index):
        if hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    return index if _takes_ids(index) else faiss.IndexIDMap2(index)


def _can_remove(index: faiss.Index) -> bool:
    """Whether this (empty, freshly built) index implements ``remove_ids`` (removing nothing
    from an empty index changes nothing)."""
    try:
        index.remove_ids(faiss.IDSelectorBatch(np.empty(0, dtype=np.int64)))
    except RuntimeError:
        return False
    return True


class VectorIndex:
    """A FAISS index plus its tombstones.

    Searches may run concurrently (each builds its own search parameters); adds, removes and
    resets must not overlap anything else: the owner (:class:`ImageIndex`) takes its write lock.
    """

    def __init__(self, index: faiss.Index, *, removable: bool, tombstones: Iterable[int] = ()):
        self._index = index
        self.removable = removable
        self._tombstones = {int(i) for i in tombstones}
        self._use_selector = True
        self._selector: faiss.IDSelector | None = None
        self._keep_alive: tuple[object, ...] = ()
        self._update_filter()

    @classmethod
    def new(cls, d: int, factory: str, metric: str) -> VectorIndex:
        """An empty index (built once); :class:`ConfigError` if faiss rejects the factory string."""
        index = _build(d, factory, metric)
        return cls(index, removable=_can_remove(index))

    @classmethod
    def from_bytes(cls, data: bytes, *, d: int, factory: str, metric: str,
                   tombstones: Iterable[int] = ()) -> VectorIndex:
        """Deserialize a snapshot payload; :class:`ArtifactError` if it is not such an index."""
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise ArtifactError(f"unreadable faiss index: {_faiss_message(exc)}") from exc
        if index.d != d or index.metric_type != METRIC_TYPES[metric]:
            raise ArtifactError(f"faiss index has d={index.d}, metric {index.metric_type}; "
                                f"expected d={d}, {metric}")
        if not (_takes_ids(index) or isinstance(index, faiss.IndexIDMap2)):
            raise ArtifactError(f"faiss index of type {type(index).__name__} carries no ids")
        return cls(index, removable=_can_remove(_build(d, factory, metric)),
                   tombstones=tombstones)

    def default_search_params(self) -> dict[str, int]:
        """``{"nprobe": DEFAULT_NPROBE}`` for IVF indexes, nothing for the others."""
        return {"nprobe": DEFAULT_NPROBE} if _takes_ids(self._index) else {}

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    @property
    def d(self) -> int:
        return int(self._index.d)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def ntotal(self) -> int:
        """Searchable vectors (tombstoned ones excluded)."""
        return int(self._index.ntotal) - len(self._tombstones)

    @property
    def tombstones(self) -> frozenset[int]:
        return frozenset(self._tombstones)

    @property
    def needs_compaction(self) -> bool:
        return len(self._tombstones) > COMPACTION_RATIO * max(int(self._index.ntotal), 1)

    def min_training_points(self) -> int:
        """The fewest vectors faiss can train this index on (0 when trained or untrainable)."""
        if self.is_trained:
            return 0
        need = 1
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            need = max(need, int(ivf.nlist))
            pq = getattr(faiss.downcast_index(ivf), "pq", None)
            if pq is not None:
                need = max(need, 1 << int(pq.nbits))
        return need

    def train(self, xt: F32) -> None:
        """Train on ``xt`` (n, d); :class:`ConfigError` when faiss refuses (e.g. too few rows)."""
        try:
            self._index.train(xt)
        except RuntimeError as exc:
            raise ConfigError(f"faiss could not train on {len(xt)} vectors: "
                              f"{_faiss_message(exc)}") from exc

    def add(self, ids: I64, xb: F32) -> None:
        if not self.is_trained:
            raise ArtifactError("the faiss index is not trained yet")
        if len(ids):
            self._index.add_with_ids(xb, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> None:
        """Remove ``ids`` (all present in the index), natively or by tombstone."""
        wanted = np.fromiter((int(i) for i in ids), dtype=np.int64)
        if not wanted.size or not self._index.ntotal:
            return
        if self.removable:
            self._index.remove_ids(faiss.IDSelectorBatch(wanted))
            return
        self._tombstones.update(wanted.tolist())
        self._update_filter()

    def reset(self) -> None:
        """Drop every vector and tombstone, keeping what training learnt."""
        self._index.reset()
        self._tombstones.clear()
        self._update_filter()

    def set_search_params(self, params: dict[str, float]) -> None:
        """Apply ``{"nprobe": ..., "ef_search": ...}``; :class:`ConfigError` if not applicable."""
        space = faiss.ParameterSpace()
        for name, value in params.items():
            try:
                space.set_index_parameter(self._index, SEARCH_PARAMS[name], value)
            except RuntimeError as exc:
                raise ConfigError(f"{name} does not apply to this faiss index: "
                                  f"{_faiss_message(exc)}") from exc

    def search(self, xq: F32, k: int) -> tuple[F32, I64]:
        """(D, I) of shape (nq, k); missing results have id -1 and the worst possible score."""
        if not self._index.ntotal or not len(xq):
            distances = np.empty((len(xq), k), dtype=np.float32)
            labels = np.full((len(xq), k), -1, dtype=np.int64)
        elif not self._tombstones:
            distances, labels = self._index.search(xq, k)
        else:
            distances, labels = self._search_filtered(xq, k)
        return self._worst_where_missing(distances, labels)

    def _worst_where_missing(self, distances: F32, labels: I64) -> tuple[F32, I64]:
        worst = -np.inf if self._index.metric_type == faiss.METRIC_INNER_PRODUCT else np.inf
        distances[labels < 0] = worst
        return distances, labels

    @property
    def exact(self) -> bool:
        """Whether a search scans every vector (a Flat index): its top-k are the exact ones."""
        return all(isinstance(part, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexFlat))
                   for part in _parts(self._index))

    def search_among(self, xq: F32, k: int, ids: I64) -> tuple[F32, I64]:
        """The ``k`` nearest among ``ids`` (unknown ids ignored), by an id selector inside the
        scan: exact only where :attr:`exact` (the caller checks); shaped and padded as
        :meth:`search`."""
        wanted = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        params = faiss.SearchParameters()  # fresh per call: see _search_filtered
        params.sel = wanted
        return self._worst_where_missing(*self._index.search(xq, k, params=params))

    def range_search(self, xq: F32, threshold: float, cap: int) -> list[tuple[I64, F32]]:
        """Per query, the ids scoring at least ``threshold`` (inner product), best first, at most
        ``cap``; tombstoned ids left out. Types without a range search answer with a ``cap``-NN
        search filtered by ``threshold``.
        """
        if not self._index.ntotal or not len(xq):
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in range(len(xq))]
        # faiss keeps scores strictly above the radius: step one float32 ulp down for ">=".
        radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
        try:
            lims, distances, labels = self._index.range_search(xq, radius)
            rows = [(labels[a:b], distances[a:b]) for a, b in pairwise(lims)]
        except RuntimeError:
            distances, labels = self.search(xq, min(cap, int(self._index.ntotal)))
            rows = [(i[s >= radius], s[s >= radius]) for i, s in zip(labels, distances,
                                                                      strict=True)]
        dead = np.fromiter(self._tombstones, dtype=np.int64)
        out = []
        for ids, scores in rows:
            keep = ~np.isin(ids, dead) & (ids >= 0)
            ids, scores = ids[keep], scores[keep]
            order = np.argsort(-scores, kind="stable")[:cap]
            out.append((ids[order].astype(np.int64), scores[order].astype(np.float32)))
        return out

    def _search_filtered(self, xq: F32, k: int) -> tuple[F32, I64]:
        if self._use_selector:
            try:
                # A fresh SearchParameters per call: IndexIDMap.search swaps ``params.sel``
                # in place while it runs, so one object shared by threads crashes faiss.
                params = faiss.SearchParameters()
                params.sel = self._selector
                return self._index.search(xq, k, params=params)
            except RuntimeError:
                log.info("%s ignores id selectors; filtering tombstones after the search",
                         type(self._index).__name__)
                self._use_selector = False
        kk = min(k + len(self._tombstones), int(self._index.ntotal))
        distances, labels = self._index.search(xq, kk)
        dead = np.isin(labels, np.fromiter(self._tombstones, dtype=np.int64)) | (labels < 0)
        order = np.argsort(dead, axis=1, kind="stable")[:, :k]
        distances = np.take_along_axis(distances, order, axis=1)
        labels = np.where(np.take_along_axis(dead, order, axis=1), -1,
                          np.take_along_axis(labels, order, axis=1))
        if kk < k:
            pad = k - kk
            distances = np.pad(distances, ((0, 0), (0, pad)))
            labels = np.pad(labels, ((0, 0), (0, pad)), constant_values=-1)
        return np.ascontiguousarray(distances), np.ascontiguousarray(labels)

    def _update_filter(self) -> None:
        if not self._tombstones:
            self._selector, self._keep_alive = None, ()
            return
        batch = faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64))
        negated = faiss.IDSelectorNot(batch)
        self._selector, self._keep_alive = negated, (batch,)
