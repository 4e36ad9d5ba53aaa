"""An index's int8 engine: calibrated once, kept in ``<index>/engines/``, reused.

``cbir index build --precision int8`` calibrates on a sample of the images it indexes (or of
``--train-images``) and stores the quantised model beside the index with a pointer file
(``engines/int8.json``: its key, calibration set id and max side). Every later opener at int8 —
``index add``, ``search``, the server — loads it in ~1.5 s instead of calibrating again (15-70 s).
The pointer is trusted only while :func:`~retrieval.features._int8.engine_key` recomputed with
this machine's library versions still gives its key; otherwise, and for an index built in another
precision, the opener calibrates on a sample of the index's own stored files and caches the result
the same way: a writer in the index's ``engines/``, a read-only opener (search, a read-only
server) only in the user cache folder its caller names (:func:`user_engines_folder`), never in the
index. A failed write is logged, not fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from retrieval._atomic import write_atomic
from retrieval.errors import ConfigError
from retrieval.features import CALIBRATION_IMAGES, Embedder
from retrieval.features._int8 import engine_key
from retrieval.index import IndexStore, KnowsSources

__all__ = ["ENGINES_DIR", "attach_index_int8", "calibration_sample", "index_engine_ready",
           "save_index_engine", "user_engines_folder"]

log = logging.getLogger(__name__)

ENGINES_DIR = "engines"
POINTER = "int8.json"
T = TypeVar("T")


def calibration_sample(items: Sequence[T], seed: int = 0) -> list[T]:
    """At most :data:`CALIBRATION_IMAGES` of ``items``, sampled reproducibly."""
    if len(items) <= CALIBRATION_IMAGES:
        return list(items)
    return random.Random(seed).sample(list(items), CALIBRATION_IMAGES)


def user_engines_folder(cache_dir: Path, index_dir: Path) -> Path:
    """Where a read-only opener of ``index_dir`` keeps its engine under a user ``cache_dir``
    (one folder per index, named by its resolved path)."""
    digest = hashlib.sha256(str(Path(index_dir).resolve()).encode("utf-8")).hexdigest()[:16]
    return Path(cache_dir) / ENGINES_DIR / digest


def _cached_path(folder: Path, backbone: str, weights_id: str) -> Path | None:
    """The stored engine's .xml in ``folder`` if its pointer is valid for these libraries."""
    try:
        pointer = json.loads((folder / POINTER).read_text(encoding="utf-8"))
        side, calibration = int(pointer["max_side"]), str(pointer["calibration"])
        key = engine_key(backbone, weights_id, side, calibration)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    path = folder / f"{key}.xml"
    return path if key == pointer.get("key") and path.is_file() else None


def _folders(index_dir: Path, cache: Path | None) -> list[Path]:
    """Where an engine may be found: the index's own folder, then the opener's cache."""
    own = Path(index_dir) / ENGINES_DIR
    return [own] + ([cache] if cache is not None and cache != own else [])


def index_engine_ready(index_dir: Path, backbone: str, weights_id: str,
                       cache: Path | None = None) -> bool:
    """Whether an int8 engine this process can load without calibrating is stored for
    ``index_dir`` (in the index, or in ``cache``: see :func:`attach_index_int8`)."""
    return any(_cached_path(f, backbone, weights_id) is not None
               for f in _folders(index_dir, cache))


def save_index_engine(index_dir: Path, embedder: Embedder) -> None:
    """Store ``embedder``'s int8 engine (if it runs one) in ``index_dir/engines``, point to it."""
    _save_engine(Path(index_dir) / ENGINES_DIR, embedder)


def _save_engine(folder: Path, embedder: Embedder) -> None:
    engine, max_side = embedder.int8_engine, embedder.config.image_side
    if engine is None or engine.key is None:
        return
    try:
        path = folder / f"{engine.key}.xml"
        if not path.is_file():
            engine.save(path)
        pointer = {"key": engine.key, "calibration": engine.calibration, "max_side": max_side}
        write_atomic(folder / POINTER, json.dumps(pointer, indent=2).encode("utf-8"))
    except OSError as exc:
        log.warning("int8 engine not cached in %s (%s): the next start calibrates again",
                    folder, exc)


def attach_index_int8(embedder: Embedder, index: IndexStore, index_dir: Path, *,
                      cache: Path | None) -> None:
    """Load a stored int8 engine (the index's own, then ``cache``'s), or calibrate one on the
    index's stored files and store it in ``cache`` (None: kept in memory only).

    A writer passes ``index_dir/engines`` as ``cache``; a read-only opener its user cache
    folder (:func:`user_engines_folder`), so that it never writes into the index.
    """
    index_dir = Path(index_dir)
    for folder in _folders(index_dir, cache):
        path = _cached_path(folder, embedder.backbone_name, embedder.weights_id)
        if path is not None:
            embedder.load_int8_engine(path)
            log.debug("int8 engine loaded from %s", path)
            return
    sources = _stored_files(index, index_dir)
    if not sources:
        raise ConfigError(f"int8 needs calibration images, and none of the files the index at "
                          f"{index_dir} records is readable; use --precision fp32 or bf16")
    embedder.prepare_int8(sources, cache_dir=cache)
    if cache is not None:
        _save_engine(cache, embedder)


def _stored_files(index: IndexStore, index_dir: Path) -> list[Path]:
    """A reproducible sample of the index's stored files that still exist."""
    if not isinstance(index, KnowsSources):
        return []
    roots = [Path(r) for r in (index.images_root, index_dir / "data") if r is not None]
    names = sorted(index.paths_present())
    random.Random(0).shuffle(names)
    found: list[Path] = []
    for name in names[:8 * CALIBRATION_IMAGES]:
        hit = next((p for p in (Path(name), *(r / name for r in roots)) if p.is_file()), None)
        if hit is not None:
            found.append(hit)
        if len(found) == CALIBRATION_IMAGES:
            break
    return found
