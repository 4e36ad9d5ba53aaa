"""Where an index keeps its vectors (:class:`StoreSpec`), as its ``manifest.json`` names it.

An index directory always holds ``manifest.json``. A Milvus-backed one adds a ``"store"`` object to
it (``{"kind": "milvus", "uri": ..., "collection": ...}``), which :func:`store_spec` reads; the
FAISS+SQLite reader ignores unknown keys, so the file stays one format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval._atomic import write_atomic
from retrieval.errors import ArtifactError, ConfigError
from retrieval.index._manifest import MANIFEST_NAME, Manifest

__all__ = ["STORE_KINDS", "StoreSpec", "save_manifest", "store_spec"]

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


def save_manifest(directory: Path, manifest: Manifest, store: StoreSpec) -> None:
    """``manifest.json`` with the ``store`` it names (written atomically, last)."""
    data = {**manifest.to_dict(), "store": store.to_dict()}
    write_atomic(directory / MANIFEST_NAME,
                 (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
