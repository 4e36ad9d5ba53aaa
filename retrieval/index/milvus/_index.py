"""An index whose vectors *and* records live in a Milvus collection (an ``IndexStore``).

The index directory keeps ``manifest.json`` (naming the store's URI and collection) and the fitted
state; both are also published in the ``<collection>_meta`` collection, so an API replica can start
from the URI and collection alone (:func:`~retrieval.index.materialise_index`) and every
open checks the directory's manifest against the published one. Milvus holds no state in the API
process: any number of processes may search one collection, and a change made through one is seen
by the others at once (every read uses Strong consistency).

Ids are tickets from Milvus's own id allocator (:mod:`._ids`): unique across every process that
writes the collection, never reused, no lock and no single writer. Milvus Lite
(a local ``./file.db`` URI) admits one process per database file; a second one is refused with
pymilvus's "Open local milvus failed" — two app instances in one process share it.

Besides the core it declares content dedupe across writers (:mod:`._claims`), request keys
that replay through any replica (:mod:`._keys`), layouts (near-duplicates, :mod:`._layouts`),
sources, re-pointing and importing records, filters from scalar expressions, tags and folder
counts (:mod:`retrieval.index._protocol`, :mod:`._metadata`; a collection made before tags has no
``tags`` field: its records have none and ``retag`` is refused); the writes are :mod:`._writes`'.
It has no training (Milvus trains its IVF lists itself, per sealed segment), nothing to follow
(every read is current) and no DBA: an index with ``dba_k`` is refused when it is created
(:data:`NO_DBA`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from retrieval._arrays import as_k, as_matrix
from retrieval.errors import ArtifactError, ConfigError, NotFoundError
from retrieval.index._manifest import MANIFEST_NAME, Manifest
from retrieval.index._protocol import (
    CountsFolders,
    DedupesContent,
    ImportsRecords,
    IndexStore,
    KeepsLayouts,
    KeepsRequestKeys,
    KeepsTags,
    KnowsSources,
    RepointsRecords,
    SelectsRecords,
)
from retrieval.index._records import (
    DEFAULT_KEY_TTL_S,
    AddOutcome,
    Hit,
    ImageRecord,
    NewImage,
)
from retrieval.index._spec import StoreSpec
from retrieval.index._tags import TagEdit
from retrieval.index.milvus._client import absolute, connect, record
from retrieval.index.milvus._layouts import fetch_layouts, put_layouts
from retrieval.index.milvus._metadata import (
    count_dirs,
    count_tags,
    filter_expression,
    matching_ids,
    retag_rows,
)
from retrieval.index.milvus._publish import check_published, publish_new
from retrieval.index.milvus._rows import (
    fetch_records,
    fetch_vectors,
    ids_after,
    import_images,
    repoint_images,
    search_rows,
    stored_paths,
    wait_indexed,
)
from retrieval.index.milvus._schema import (
    RECORD_FIELDS,
    TAGS_FIELD,
    MilvusSpec,
    default_search_params,
    get_text,
    has_tags_field,
    is_lite,
    lite_size,
    load_blob,
    milvus_index,
    put_text,
    save_blob,
    search_params,
)
from retrieval.index.milvus._unique import find_sha256
from retrieval.index.milvus._writes import MilvusWriter

__all__ = ["NO_DBA", "MilvusIndex"]

#: The most hits one Milvus search returns (its ``topk`` limit).
MAX_LIMIT = 16_384
#: Why an index with DBA cannot keep its vectors in Milvus.
NO_DBA = ("DBA needs the FAISS+SQLite store: every add or remove changes the augmented vectors "
          "of its neighbours, which Milvus cannot rewrite atomically while other replicas write "
          "(drop --dba, or use --store faiss)")

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class MilvusIndex:
    """An index directory whose vectors and records are in Milvus; see the module docstring."""

    def __init__(self, path: Path, manifest: Manifest, store: StoreSpec, client: Any,
                 *, read_only: bool) -> None:
        self.path = path
        self.manifest = manifest
        self.store = store
        self._client = client
        self._name = store.collection
        self._meta = f"{store.collection}_meta"
        self._spec: MilvusSpec = milvus_index(manifest.faiss_factory, manifest.metric,
                                              lite=is_lite(store.uri))
        self._read_only = read_only
        self._knobs: dict[str, int] = dict(manifest.search_params)
        self._closed = False
        self._has_tags: bool | None = None  # read on first use (describe_collection)
        self._writer = MilvusWriter(client, store.uri, store.collection, lambda: self._fields)

    @classmethod
    def create(cls, path: Path, manifest: Manifest, store: StoreSpec, *,
               exist_ok: bool = False) -> MilvusIndex:
        """New collections for ``manifest`` and a directory naming them (neither may exist)."""
        store = absolute(store)
        if manifest.dba_k:
            raise ConfigError(NO_DBA)
        spec = milvus_index(manifest.faiss_factory, manifest.metric, lite=is_lite(store.uri))
        manifest = manifest.with_search_defaults(default_search_params(spec))
        if (path / MANIFEST_NAME).exists():
            if not exist_ok:
                raise ArtifactError(f"{path} already holds an index (pass exist_ok to resume it)")
            index = cls.open(path, store, expect=manifest)
            try:
                index.manifest.check_matches(manifest, fields=("metric", "faiss_factory"))
            except ArtifactError:
                index.close()
                raise
            return index
        if path.exists() and any(path.iterdir()):
            raise ArtifactError(f"{path} is not empty and holds no {MANIFEST_NAME}")
        client = connect(store.uri)
        try:
            publish_new(client, path, manifest, store, spec)
        except BaseException:
            client.close()
            raise
        return cls(path, manifest, store, client, read_only=False)

    @classmethod
    def open(cls, path: Path, store: StoreSpec, *, expect: Manifest | None = None,
             read_only: bool = False) -> MilvusIndex:
        """Open ``path``; its manifest must match ``expect`` and the one Milvus publishes."""
        manifest = Manifest.load(path)
        if expect is not None:
            manifest.check_matches(expect)
        client = connect(store.uri)
        try:
            check_published(client, path, manifest, store)
        except BaseException:
            client.close()
            raise
        return cls(path, manifest, store, client, read_only=read_only)

    @property
    def _tags(self) -> bool:
        """Whether the collection has the ``tags`` field (made since tags exist)."""
        if self._has_tags is None:
            self._has_tags = has_tags_field(self._client, self._name)
        return self._has_tags

    @property
    def _fields(self) -> list[str]:
        return [*RECORD_FIELDS, *([TAGS_FIELD] if self._tags else [])]

    @property
    def d(self) -> int:
        return self.manifest.dim

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def count(self) -> int:
        """Live images (deletes applied, Strong consistency: every acknowledged change)."""
        self._check_open()
        rows = self._client.query(self._name, filter="", output_fields=["count(*)"],
                                  consistency_level="Strong")
        return int(rows[0]["count(*)"])

    @property
    def ntotal(self) -> int:
        return self.count

    @property
    def search_params(self) -> dict[str, int]:
        return dict(self._knobs)

    def _check_open(self) -> None:
        if self._closed:
            raise ArtifactError(f"index {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ConfigError(f"index {self.path} was opened read-only")

    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None) -> list[int]:
        """Store ``items`` with their vectors (upserts bounded by bytes) and ``layouts``; returns
        their ids."""
        vectors = as_matrix(xb, self.d, n=len(items))
        self._check_writable()
        return self._writer.add(items, vectors, layouts)

    def repoint(self, moves: Mapping[int, str]) -> list[int]:
        """New paths for stored ids (moved files): each row upserted again with its stored
        vector, id and ``added_at`` (no transaction: a crash may leave some rows re-pointed,
        each one whole). Returns the ids that existed."""
        self._check_writable()
        for image_id, path in moves.items():
            if not isinstance(path, str) or not path:
                raise ConfigError(f"a record needs a path, got {path!r} for id {image_id}")
        return repoint_images(self._client, self._name, {int(i): p for i, p in moves.items()},
                              self._fields)

    def import_records(self, records: Sequence[ImageRecord], xb: npt.ArrayLike,
                       layouts: Mapping[int, npt.ArrayLike] | None = None) -> None:
        """Rows with the records' own ids and times (a migration into a collection no other
        process writes meanwhile); later ids are allocated above them; ``layouts`` (by id) are
        written first, as an add writes them. :class:`ConfigError` if an id is already stored."""
        vectors = as_matrix(xb, self.d, n=len(records))
        self._check_writable()
        ids = [int(r.id) for r in records]
        if len(set(ids)) != len(ids) or any(i < 1 for i in ids):
            raise ConfigError("imported records need distinct, positive ids")
        taken = fetch_records(self._client, self._name, ids, self._fields)
        if taken:
            raise ConfigError(f"id {taken[0].id} is already stored: records are imported into "
                              "a new, empty index")
        if ids:
            self._writer.reserve_through(max(ids))
        with_layout = [i for i in ids if layouts and i in layouts]
        if layouts and with_layout:
            put_layouts(self._client, self._meta, with_layout,
                        np.stack([np.asarray(layouts[i]) for i in with_layout]))
        import_images(self._client, self._name, records, vectors, tags=self._tags)

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Remove images by id; returns those that existed (Milvus counts every id asked)."""
        self._check_writable()
        return self._writer.remove(ids)

    def search(self, xq: npt.ArrayLike, k: int, *,
               ids: Sequence[int] | None = None) -> tuple[F32, I64]:
        """D, I (nq, k) as FAISS gives them, -1 / worst padded; ``ids`` restricts candidates."""
        distances, labels, _ = self._search(xq, k, ids=ids, fields=[])
        return distances, labels

    def _search(self, xq: npt.ArrayLike, k: int, *, ids: Sequence[int] | None,
                fields: list[str]) -> tuple[F32, I64, list[list[dict[str, Any]]]]:
        queries = as_matrix(xq, self.d, name="xq")
        k = as_k(k)
        self._check_open()
        return search_rows(self._client, self._name, queries, k, ids=ids, fields=fields,
                           params=search_params(self._spec, self._knobs, k),
                           metric=self.manifest.metric)

    def search_records(self, xq: npt.ArrayLike, k: int) -> list[list[Hit]]:
        """:meth:`search` with each hit's record, fetched in the same request."""
        distances, _, entities = self._search(xq, k, ids=None, fields=self._fields[1:])
        return [[Hit(int(e["id"]), float(distances[q, j]), record(e))
                 for j, e in enumerate(row)] for q, row in enumerate(entities)]

    def get(self, image_id: int) -> ImageRecord:
        found = self.records([image_id])
        if not found:
            raise NotFoundError(f"no image with id {image_id}")
        return found[0]

    def records(self, ids: Sequence[int]) -> list[ImageRecord]:
        """Records of ``ids`` in the order asked, unknown ids left out."""
        self._check_open()
        return fetch_records(self._client, self._name, ids, self._fields)

    def stored_vectors(self, ids: Sequence[int]) -> F32:
        """The stored vectors of ``ids`` in order; :class:`NotFoundError` if one is unknown."""
        self._check_open()
        return fetch_vectors(self._client, self._name, ids, self.d)

    def paths_present(self) -> set[str]:
        """Every stored path."""
        self._check_open()
        return stored_paths(self._client, self._name)

    def ids_after(self, cursor: int, limit: int) -> list[int]:
        """Up to ``limit`` stored ids greater than ``cursor``, ascending."""
        self._check_open()
        return ids_after(self._client, self._name, cursor, limit)

    def ids_matching(self, folder: str | None, added_after: float | None,
                     added_before: float | None, tags: Sequence[str] = ()) -> list[int]:
        """Ids under ``folder`` (absolute) added in ``[added_after, added_before)`` holding all
        of ``tags``, ascending: one scalar expression (:mod:`._metadata`)."""
        self._check_open()
        if tags and not self._tags:
            return []
        return matching_ids(self._client, self._name,
                            filter_expression(folder, added_after, added_before, tags))

    def retag(self, ids: Sequence[int], edit: TagEdit) -> list[ImageRecord]:
        """Apply ``edit`` to the tags of ``ids`` (their rows upserted with the same vectors);
        :class:`NotFoundError`, nothing changed, if one is not stored."""
        self._check_writable()
        if not self._tags:
            raise ConfigError(f"collection {self._name!r} was made before tags: it has no tags "
                              "field (build the index again to tag its images)")
        return retag_rows(self._client, self._name, ids, edit)

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use and how many images hold it."""
        self._check_open()
        return count_tags(self._client, self._name) if self._tags else {}

    def dir_counts(self) -> dict[str, int]:
        """Every directory (absolute) holding images, and how many it holds directly."""
        self._check_open()
        return count_dirs(self._client, self._name)

    def flush(self, timeout_s: float = 3600.0) -> None:
        """Seal the growing segment and wait until Milvus has indexed it (bulk loads, bench);
        :class:`StoreTimeoutError` if rows still wait for the index after ``timeout_s``."""
        wait_indexed(self._client, self._name, timeout_s,
                     f"Milvus collection {self._name!r} at {self.store.uri}",
                     server=not is_lite(self.store.uri))

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        wanted = {k: v for k, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None}
        if any(v < 1 for v in wanted.values()):
            raise ConfigError(f"search parameters must be positive, got {wanted}")
        kind = self._spec.index_type
        for name in wanted:
            if (name == "nprobe") != kind.startswith("IVF") or (kind == "FLAT"):
                raise ConfigError(f"{name} does not apply to a Milvus {kind} index")
        self._knobs.update(wanted)

    def size_on_disk(self) -> int:
        """Bytes of the directory's files, plus a Milvus Lite database's (a server's: unknown)."""
        local = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return local + lite_size(self.store.uri)

    def save_state_blobs(self, blobs: Mapping[str, bytes]) -> None:
        """Publish fitted state in the meta collection (each blob, then the list of names)."""
        self._check_writable()
        for name, data in blobs.items():
            save_blob(self._client, self._meta, f"state:{name}", data)
        put_text(self._client, self._meta, "state", json.dumps(sorted(blobs)))

    def load_state_blobs(self) -> dict[str, bytes]:
        self._check_open()
        names = json.loads(get_text(self._client, self._meta, "state") or "[]")
        return {n: load_blob(self._client, self._meta, f"state:{n}") or b"" for n in names}

    def find_sha256(self, sha256: str) -> list[ImageRecord]:
        """Records of the images with this content, oldest first."""
        self._check_open()
        return find_sha256(self._client, self._name, sha256, self._fields)

    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None, request_key: str | None = None,
                   fingerprint: str = "", key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome:
        """Add what no writer has stored yet (by sha256: :mod:`._claims`); the rest answer with
        the existing record. With ``request_key``, a retry through any process replays the
        first answer (:mod:`._keys`)."""
        vectors = as_matrix(xb, self.d, n=len(items))
        self._check_writable()
        return self._writer.add_unique(items, vectors, layouts=layouts, request_key=request_key,
                                       fingerprint=fingerprint, key_ttl_s=key_ttl_s)

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome | None:
        """The committed answer of an earlier add with ``request_key`` (any process's)."""
        self._check_open()
        return self._writer.saved_outcome(request_key, fingerprint, key_ttl_s)

    def layouts(self, ids: Sequence[int]) -> dict[int, F32]:
        """Layout descriptors of those ``ids`` that have one."""
        self._check_open()
        return fetch_layouts(self._client, self._meta, ids)

    def range_search(self, xq: npt.ArrayLike, threshold: float,
                     cap: int) -> list[tuple[I64, F32]]:
        """Per query row, the ids scoring at least ``threshold``, best first, at most ``cap``
        (the ``cap`` nearest, kept from ``threshold`` up)."""
        distances, labels = self.search(xq, max(1, min(int(cap), MAX_LIMIT)))
        keep = (labels >= 0) & (distances >= np.float32(threshold))
        return [(i[m], d[m]) for i, d, m in zip(labels, distances, keep, strict=True)]

    @property
    def images_root(self) -> str | None:
        """The folder the index was built from (kept in the meta collection)."""
        return get_text(self._client, self._meta, "images_root") or None

    def set_images_root(self, folder: str) -> None:
        self._check_writable()
        put_text(self._client, self._meta, "images_root", folder)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"MilvusIndex({str(self.path)!r}, uri={self.store.uri!r}, "
                f"collection={self._name!r}, factory={self.manifest.faiss_factory!r})")


if TYPE_CHECKING:  # mypy checks that MilvusIndex has the core and the capabilities it declares
    def _declared(index: MilvusIndex) -> tuple[IndexStore, DedupesContent, KeepsRequestKeys,
                                               KeepsLayouts, KnowsSources, RepointsRecords,
                                               ImportsRecords, SelectsRecords, KeepsTags,
                                               CountsFolders]:
        return index, index, index, index, index, index, index, index, index, index
