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

Besides the core it declares content dedupe, sources, re-pointing and importing records,
filters from scalar expressions, tags and folder counts (:mod:`retrieval.index._protocol`,
:mod:`._metadata`; a collection made before tags has no ``tags`` field: its records have none and
``retag`` is refused); it has no training (Milvus trains its IVF lists itself, per sealed segment),
nothing to follow (every read is current), no request keys, no DBA and no layouts.
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
from retrieval.index._manifest import EMBEDDING_FIELDS, MANIFEST_NAME, Manifest
from retrieval.index._protocol import (
    CountsFolders,
    DedupesContent,
    ImportsRecords,
    IndexStore,
    KeepsTags,
    KnowsSources,
    RepointsRecords,
    SelectsRecords,
)
from retrieval.index._records import AddOutcome, Hit, ImageRecord, NewImage, check_new_images
from retrieval.index._spec import StoreSpec, save_manifest
from retrieval.index._tags import TagEdit
from retrieval.index.milvus._client import absolute, connect, id_lock, record
from retrieval.index.milvus._guard import ensure_loaded
from retrieval.index.milvus._ids import take_tickets
from retrieval.index.milvus._metadata import (
    count_dirs,
    count_tags,
    filter_expression,
    matching_ids,
    retag_rows,
)
from retrieval.index.milvus._rows import (
    fetch_records,
    fetch_vectors,
    ids_after,
    import_images,
    repoint_images,
    search_rows,
    stored_paths,
    upsert_images,
    wait_indexed,
)
from retrieval.index.milvus._schema import (
    RECORD_FIELDS,
    TAGS_FIELD,
    MilvusSpec,
    create_collections,
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
from retrieval.index.milvus._unique import find_sha256, unique_add

__all__ = ["MilvusIndex"]

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
        self._id_base: int | None = None
        self._legacy_ids = False
        self._has_tags: bool | None = None  # read on first use (describe_collection)

    @classmethod
    def create(cls, path: Path, manifest: Manifest, store: StoreSpec, *,
               exist_ok: bool = False) -> MilvusIndex:
        """New collections for ``manifest`` and a directory naming them (neither may exist)."""
        store = absolute(store)
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
            if client.has_collection(store.collection):
                raise ArtifactError(f"collection {store.collection!r} already exists at "
                                    f"{store.uri}; choose another --collection")
            create_collections(client, store.uri, store.collection, manifest.dim, spec)
            put_text(client, f"{store.collection}_meta", "manifest",
                     json.dumps(manifest.to_dict(), sort_keys=True))
            first = take_tickets(client, store.collection, 1)[0]  # spent here: ids start at 1
            put_text(client, f"{store.collection}_meta", "id_base", str(first))
            path.mkdir(parents=True, exist_ok=True)
            save_manifest(path, manifest, store)
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
            names = [store.collection, f"{store.collection}_meta"]
            present = all(client.has_collection(n) for n in names)
            if present:
                ensure_loaded(client, names, store.uri)
            text = get_text(client, names[1], "manifest") if present else None
            if text is None:
                raise ArtifactError(f"{path}: collection {store.collection!r} is missing at "
                                    f"{store.uri}")
            published = Manifest.from_dict(json.loads(text))
            published.check_matches(manifest, fields=(*EMBEDDING_FIELDS, "metric",
                                                      "faiss_factory"))
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

    def _allocate(self, n: int) -> list[int]:
        """``n`` new ids: tickets (unique across processes, :mod:`._ids`), or an older index's
        counter (one writer at a time)."""
        base = self._base()
        if base is not None:
            return [k - base for k in take_tickets(self._client, self._name, n)]
        with id_lock(self.store.uri, self._name):
            start = int(get_text(self._client, self._meta, "next_id") or 1)
            put_text(self._client, self._meta, "next_id", str(start + n))
        return list(range(start, start + n))

    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None) -> list[int]:
        """Store ``items`` with their vectors (upserts bounded by bytes); returns their ids.

        ``layouts`` (near-duplicate descriptors) are not kept: near-duplicate search needs the
        FAISS+SQLite store.
        """
        vectors = as_matrix(xb, self.d, n=len(items))
        check_new_images(items)
        self._check_writable()
        ids = self._allocate(len(items))
        upsert_images(self._client, self._name, ids, items, vectors, tags=self._tags)
        return ids

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
        process writes meanwhile); later ids are allocated above them. ``layouts`` are not kept
        (no layouts in Milvus). :class:`ConfigError` if an id is already stored."""
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
            self._reserve_through(max(ids))
        import_images(self._client, self._name, records, vectors, tags=self._tags)

    def _base(self) -> int | None:
        """The tickets' base (read once), or None for an older index's ``next_id`` counter."""
        if self._id_base is None:
            text = get_text(self._client, self._meta, "id_base")
            self._id_base = int(text) if text is not None else None
            self._legacy_ids = text is None
        return None if self._legacy_ids else self._id_base

    def _reserve_through(self, top: int) -> None:
        """Make every later allocated id greater than ``top`` (lowers the tickets' base)."""
        base = self._base()
        if base is None:
            with id_lock(self.store.uri, self._name):
                start = int(get_text(self._client, self._meta, "next_id") or 1)
                put_text(self._client, self._meta, "next_id", str(max(start, top + 1)))
            return
        ticket = take_tickets(self._client, self._name, 1)[0]
        if ticket - base <= top:
            self._id_base = ticket - top - 1
            put_text(self._client, self._meta, "id_base", str(self._id_base))

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Remove images by id; returns those that existed (Milvus counts every id asked)."""
        self._check_writable()
        present = [r.id for r in self.records(list(dict.fromkeys(int(i) for i in ids)))]
        if present:
            self._client.delete(self._name, ids=present)
        return present

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
                     f"Milvus collection {self._name!r} at {self.store.uri}")

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
                   layouts: npt.ArrayLike | None = None) -> AddOutcome:
        """Add what is not stored yet (by sha256); the rest answer with their existing record.

        Not one transaction (see :mod:`._unique`); ``layouts`` are not kept, as in :meth:`add`.
        """
        vectors = as_matrix(xb, self.d, n=len(items))
        return unique_add(items, vectors, find=self.find_sha256,
                          add=lambda news, xs: self.add(news, xs), records=self.records)

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
    def _declared(index: MilvusIndex) -> tuple[IndexStore, DedupesContent, KnowsSources,
                                                RepointsRecords, ImportsRecords,
                                                SelectsRecords, KeepsTags, CountsFolders]:
        return index, index, index, index, index, index, index, index
