"""The store seam: what every vector store behind an index directory does, and how to open one.

Two engines implement :class:`IndexStore`: :class:`~retrieval.index._index.ImageIndex` (FAISS in
memory + SQLite on disk, one process; the default) and
:class:`~retrieval.index._milvus.MilvusIndex` (vectors *and* records in a Milvus collection, any
number of processes). The CLI and the service only ever hold an ``IndexStore``; the one contract
suite (``tests/retrieval/index/test_store_contract.py``) runs against both.

An index directory always holds ``manifest.json``. A Milvus-backed one adds a ``"store"`` object to
it (``{"kind": "milvus", "uri": ..., "collection": ...}``), which :func:`open_index` reads to
pick the engine; the FAISS+SQLite reader ignores unknown keys, so the file stays one format.
pymilvus is imported only when such a directory is opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from retrieval._atomic import write_atomic
from retrieval.errors import ArtifactError, ConfigError
from retrieval.index._manifest import MANIFEST_NAME, Manifest
from retrieval.index._store import ImageRecord, NewImage
from retrieval.index._unique import AddOutcome

if TYPE_CHECKING:
    from retrieval.index._index import Hit

__all__ = ["STATE_SUFFIX", "IndexStore", "StoreSpec", "create_index", "exact_among",
           "materialise_index", "open_index", "read_state_files", "store_spec"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

#: Fitted state (MOP/VLAD codebooks, PCA-whitening) lives in ``<step>.npz`` files.
STATE_SUFFIX = ".npz"
STORE_KINDS = ("faiss", "milvus")


@dataclass(frozen=True)
class StoreSpec:
    """Where an index keeps its vectors: ``faiss`` (the directory itself) or a Milvus collection."""

    kind: str = "faiss"
    uri: str = ""
    collection: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STORE_KINDS:
            raise ConfigError(f"store must be one of {', '.join(STORE_KINDS)}, got {self.kind!r}")
        if self.kind == "milvus" and not (self.uri and self.collection):
            raise ConfigError("a Milvus store needs a URI (a local ./file.db for Milvus Lite, or "
                              "http://host:19530) and a collection name")

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "uri": self.uri, "collection": self.collection}


@runtime_checkable
class IndexStore(Protocol):
    """An open index: records and vectors, searched by inner product (or l2), ids never reused."""

    path: Path
    manifest: Manifest

    @property
    def d(self) -> int: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def count(self) -> int: ...
    @property
    def ntotal(self) -> int: ...
    @property
    def is_trained(self) -> bool: ...
    @property
    def search_params(self) -> dict[str, int]: ...

    @property
    def images_root(self) -> str | None: ...

    def set_images_root(self, folder: str) -> None: ...

    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None) -> list[int]: ...

    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None, request_key: str | None = None,
                   fingerprint: str = "", key_ttl_s: float = ...) -> AddOutcome: ...

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float = ...) -> AddOutcome | None: ...

    def find_sha256(self, sha256: str) -> list[ImageRecord]: ...

    def refresh(self) -> bool: ...

    def stored_vectors(self, ids: Sequence[int]) -> F32: ...

    def indexed_vectors(self, ids: Sequence[int]) -> F32: ...
    def remove(self, ids: Iterable[int]) -> list[int]: ...
    def search(self, xq: npt.ArrayLike, k: int, *,
               ids: Sequence[int] | None = None) -> tuple[F32, I64]: ...
    def search_records(self, xq: npt.ArrayLike, k: int) -> list[list[Hit]]: ...
    def get(self, image_id: int) -> ImageRecord: ...
    def records(self, ids: Sequence[int]) -> list[ImageRecord]: ...
    def paths_present(self) -> set[str]: ...
    def train(self, sample: int = 100_000, seed: int = 0) -> None: ...
    def set_search_params(self, *, nprobe: int | None = None,
                          ef_search: int | None = None) -> None: ...
    def size_on_disk(self) -> int: ...
    def save_state_blobs(self, blobs: Mapping[str, bytes]) -> None: ...
    def load_state_blobs(self) -> dict[str, bytes]: ...
    def close(self) -> None: ...
    def __enter__(self) -> IndexStore: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def exact_among(xq: F32, k: int, ids: Sequence[int], xb: F32, metric: str) -> tuple[F32, I64]:
    """Exact search of ``xq`` among the candidates ``ids`` (rows of ``xb``), -1 padded."""
    out_d = np.full((len(xq), k), -np.inf if metric == "inner_product" else np.inf, np.float32)
    out_i = np.full((len(xq), k), -1, np.int64)
    if not len(ids) or not len(xq):
        return out_d, out_i
    cand = np.asarray(ids, dtype=np.int64)
    if metric == "inner_product":
        scores = xq @ xb.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        scores = ((xq[:, None, :] - xb[None, :, :]) ** 2).sum(axis=2)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    n = order.shape[1]
    out_d[:, :n] = np.take_along_axis(scores, order, axis=1)
    out_i[:, :n] = cand[order]
    return out_d, out_i


def read_state_files(directory: Path) -> dict[str, bytes]:
    """The fitted-state files (``*.npz``) of an index directory, by file name."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).glob(f"*{STATE_SUFFIX}"))}


def write_state_files(directory: Path, blobs: Mapping[str, bytes]) -> None:
    for name, data in blobs.items():
        if Path(name).name != name or not name.endswith(STATE_SUFFIX):
            raise ConfigError(f"fitted state must be named <step>{STATE_SUFFIX}, got {name!r}")
        write_atomic(Path(directory) / name, data)


def _raw_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} is not an index directory: no {MANIFEST_NAME}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path / MANIFEST_NAME} is unreadable or not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path / MANIFEST_NAME} must be a JSON object")
    return data


def store_spec(path: str | Path) -> StoreSpec:
    """The store an index directory uses (``faiss`` unless its manifest names another)."""
    raw = _raw_manifest(Path(path)).get("store")
    if raw is None:
        return StoreSpec()
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ArtifactError(f"{Path(path) / MANIFEST_NAME}: 'store' must be an object of strings")
    try:
        return StoreSpec(**raw)
    except (TypeError, ConfigError) as exc:
        raise ArtifactError(f"{Path(path) / MANIFEST_NAME}: store: {exc}") from exc


def create_index(path: str | Path, manifest: Manifest, store: StoreSpec | None = None, *,
                 exist_ok: bool = False) -> IndexStore:
    """A new index at ``path`` whose vectors live in ``store`` (default: FAISS+SQLite there)."""
    if store is None or store.kind == "faiss":
        from retrieval.index._index import ImageIndex

        return ImageIndex.create(path, manifest, exist_ok=exist_ok)
    from retrieval.index._milvus import MilvusIndex

    return MilvusIndex.create(Path(path), manifest, store, exist_ok=exist_ok)


def open_index(path: str | Path, *, expect: Manifest | None = None,
               read_only: bool = False) -> IndexStore:
    """Open any index directory with the engine its manifest names (see :func:`create_index`)."""
    spec = store_spec(path)
    if spec.kind == "faiss":
        from retrieval.index._index import ImageIndex

        return ImageIndex.open(path, expect=expect, read_only=read_only)
    from retrieval.index._milvus import MilvusIndex

    return MilvusIndex.open(Path(path), spec, expect=expect, read_only=read_only)


def materialise_index(uri: str, collection: str, directory: str | Path) -> Path:
    """Write the manifest and fitted state a Milvus collection holds into ``directory``.

    How a stateless replica starts from the store alone (``CBIR_STORE_URI``,
    ``CBIR_COLLECTION``): afterwards ``directory`` opens like any index directory. An existing
    manifest there must describe the same embedding (:class:`ManifestMismatchError` otherwise).
    """
    from retrieval.index._milvus import fetch_published

    spec = StoreSpec("milvus", uri, collection)
    manifest, blobs = fetch_published(spec)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    if (target / MANIFEST_NAME).exists():
        Manifest.load(target).check_matches(manifest)
    write_state_files(target, blobs)
    save_manifest(target, manifest, spec)
    return target


def save_manifest(directory: Path, manifest: Manifest, store: StoreSpec) -> None:
    """``manifest.json`` with the ``store`` it names (written atomically, last)."""
    data = {**manifest.to_dict(), "store": store.to_dict()}
    write_atomic(directory / MANIFEST_NAME,
                 (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
