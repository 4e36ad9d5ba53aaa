"""``cbir index migrate`` (an index copied to another store, nothing embedded) and ``cbir index
export`` (records and vectors as a Parquet file, for other tools). No torch: only the stores."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.argtypes import Subparsers, from_namespace
from retrieval import ConfigError, migrate_index, stored_pages
from retrieval.index import IndexStore, StoreSpec, open_index, store_spec

__all__ = ["ExportOptions", "MigrateOptions", "add_export_parser", "add_migrate_parser",
           "run_export", "run_migrate"]

EXPORT_PAGE = 5000


def add_migrate_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("migrate", help=help_text)
    p.add_argument("--index", required=True, metavar="DIR",
                   help="the index directory to copy (only read)")
    p.add_argument("--to", required=True, metavar="DIR",
                   help="the new index directory (must not hold an index)")
    p.add_argument("--store", default="faiss", choices=["faiss", "milvus"],
                   help="where the new index keeps its vectors: faiss (FAISS + SQLite in --to, "
                        "the default) or milvus")
    p.add_argument("--milvus-uri", dest="milvus_uri", default=None, metavar="URI",
                   help="with --store milvus: ./file.db (Milvus Lite) or http://host:19530")
    p.add_argument("--collection", default=None, metavar="NAME",
                   help="with --store milvus: the new collection's name")
    p.set_defaults(options=MigrateOptions.from_args, run=run_migrate)


def add_export_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("export", help=help_text)
    p.add_argument("--index", required=True, metavar="DIR", help="the index directory (only read)")
    p.add_argument("--out", required=True, metavar="FILE.parquet",
                   help="the Parquet file to write (replaced if it exists)")
    p.set_defaults(options=ExportOptions.from_args, run=run_export)


@dataclass(frozen=True)
class MigrateOptions:
    """``cbir index migrate``'s flags, typed."""

    index: Path
    to: Path
    store: str = "faiss"
    milvus_uri: str | None = None
    collection: str | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> MigrateOptions:
        return from_namespace(cls, ns, index=Path(ns.index), to=Path(ns.to))

    @property
    def spec(self) -> StoreSpec:
        if self.store == "faiss":
            if self.milvus_uri or self.collection:
                raise ConfigError("--milvus-uri and --collection need --store milvus")
            return StoreSpec()
        return StoreSpec("milvus", self.milvus_uri or "", self.collection or "")


@dataclass(frozen=True)
class ExportOptions:
    """``cbir index export``'s flags, typed."""

    index: Path
    out: Path

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> ExportOptions:
        return from_namespace(cls, ns, index=Path(ns.index), out=Path(ns.out))


def _where(spec: StoreSpec) -> str:
    return "FAISS+SQLite" if spec.kind == "faiss" else f"Milvus {spec.uri} {spec.collection}"


def run_migrate(opts: MigrateOptions) -> int:
    """Copy records, vectors, layouts and fitted state; say in one line what could not go."""
    target = opts.spec
    source_spec = store_spec(opts.index)
    with open_index(opts.index, read_only=True) as source:
        report = migrate_index(source, opts.to, target)
    uploads = f", {report.uploads} uploaded files" if report.uploads else ""
    print(f"migrated {report.records} images from {opts.index} ({_where(source_spec)}) to "
          f"{opts.to} ({_where(target)}): nothing embedded; {report.layouts} layouts, fitted "
          f"state {', '.join(report.state) or 'none'}{uploads}")
    if report.not_carried:
        print(f"not carried over (the target store lacks them): {'; '.join(report.not_carried)}")
    return 0


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("export needs pyarrow: pip install 'cbir[parquet]'") from exc
    return pa, pq


def _table(pa: Any, records: list[Any], xb: Any, schema: Any) -> Any:
    columns = {name: [getattr(r, name) for r in records]
               for name in ("id", "path", "sha256", "width", "height", "added_at")}
    flat = pa.array(xb.reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(flat, xb.shape[1])
    return pa.table({**columns, "vector": vectors}, schema=schema)


def _schema(pa: Any, index: IndexStore) -> Any:
    fields = [("id", pa.int64()), ("path", pa.string()), ("sha256", pa.string()),
              ("width", pa.int32()), ("height", pa.int32()), ("added_at", pa.float64()),
              ("vector", pa.list_(pa.float32(), index.d))]
    meta = {"cbir.manifest": json.dumps(index.manifest.to_dict(), sort_keys=True)}
    return pa.schema(fields, metadata=meta)


def run_export(opts: ExportOptions) -> int:
    """One row per image (id, path, sha256, width, height, added_at, vector: the stored raw
    float32 vector); the manifest is in the file's metadata (``cbir.manifest``)."""
    pa, pq = _pyarrow()
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    partial = opts.out.with_name(opts.out.name + ".partial")
    rows = 0
    with open_index(opts.index, read_only=True) as index:
        schema = _schema(pa, index)
        with pq.ParquetWriter(str(partial), schema) as writer:
            for records, xb in stored_pages(index, EXPORT_PAGE):
                writer.write_table(_table(pa, records, xb, schema))
                rows += len(records)
    partial.replace(opts.out)
    print(f"exported {rows} images ({index.d}-d float32 vectors) from {opts.index} to {opts.out}")
    return 0
