"""``index.faiss``: a FAISS index snapshot that says which store changes it contains.

File layout: one line of JSON (the header), ``\\n``, then the bytes of ``faiss.serialize_index``::

    {"format": "cbir-faiss-snapshot", "version": 1, "seq": 1234, "store_uuid": "...", "d": 512,
     "factory": "Flat", "metric": "inner_product", "tombstones": [], "payload_bytes": N,
     "payload_sha256": "..."}

Crash safety: header and payload live in *one* file written by
:func:`retrieval._atomic.write_atomic` (temporary file, fsync, ``os.replace``, fsync of the
directory), so the recorded ``seq`` can never describe another payload than the one beside it, and
a crash leaves either the previous snapshot or the new one. The payload's length and SHA-256 catch
a truncated or damaged file before faiss parses it; ``store_uuid`` catches a snapshot paired with
another store. Any such problem makes :func:`read_snapshot` raise :class:`ArtifactError`, and the
caller rebuilds from the store, which is always the source of truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval._atomic import write_atomic
from retrieval.errors import ArtifactError

__all__ = ["SNAPSHOT_NAME", "Snapshot", "read_snapshot", "write_snapshot"]

SNAPSHOT_NAME = "index.faiss"
FORMAT = "cbir-faiss-snapshot"
VERSION = 1


@dataclass(frozen=True)
class Snapshot:
    """A decoded snapshot: the store changes up to ``seq`` are in ``payload``."""

    seq: int
    store_uuid: str
    d: int
    factory: str
    metric: str
    tombstones: tuple[int, ...]
    payload: bytes


def write_snapshot(path: Path, payload: bytes, *, seq: int, store_uuid: str, d: int,
                   factory: str, metric: str, tombstones: Iterable[int] = ()) -> None:
    """Atomically replace ``path`` by a snapshot of ``payload`` covering changes up to ``seq``."""
    header = {"format": FORMAT, "version": VERSION, "seq": seq, "store_uuid": store_uuid, "d": d,
              "factory": factory, "metric": metric, "tombstones": sorted(tombstones),
              "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    line = json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n"
    write_atomic(path, line + payload)


def read_snapshot(path: Path) -> Snapshot:
    """Read and verify ``path``; :class:`ArtifactError` says what is wrong with it.

    A missing file raises :class:`FileNotFoundError` (a normal state, not a corruption).
    """
    data = path.read_bytes()
    end = data.find(b"\n")
    try:
        header = json.loads(data[:end]) if end > 0 else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a cbir snapshot (no valid header)")
    if header.get("version") != VERSION:
        raise ArtifactError(f"{path} has snapshot version {header.get('version')!r}, "
                            f"expected {VERSION}")
    payload = data[end + 1:]
    if len(payload) != header.get("payload_bytes") or (
            hashlib.sha256(payload).hexdigest() != header.get("payload_sha256")):
        raise ArtifactError(f"{path} is truncated or damaged (payload checksum mismatch)")
    return _decode(path, header, payload)


def _decode(path: Path, header: dict[str, Any], payload: bytes) -> Snapshot:
    try:
        snapshot = Snapshot(seq=int(header["seq"]), store_uuid=str(header["store_uuid"]),
                            d=int(header["d"]), factory=str(header["factory"]),
                            metric=str(header["metric"]),
                            tombstones=tuple(int(i) for i in header["tombstones"]),
                            payload=payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path} has a malformed header: {exc!r}") from exc
    return snapshot
